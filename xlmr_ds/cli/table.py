"""Plain aligned text tables for command summaries."""

from __future__ import annotations


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Right-aligned columns, first column left-aligned (it holds names)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
