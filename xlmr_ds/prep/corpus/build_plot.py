"""stats.png of `corpus build`: what each stage removed, and what is left per language."""

from __future__ import annotations

from pathlib import Path

from xlmr_ds.outputs import replaced_file


def plot_build_stats(summary: dict, path: Path) -> None:
    """Two panels: documents and paragraphs through the stages; megabytes kept per language (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    read, removed = summary["read"], summary["removed"]
    stages = ["read", "dedup", *[stage for stage in removed if stage != "dedup"]]
    left_documents = [read["documents"]]
    for stage in stages[1:]:
        left_documents.append(left_documents[-1] - removed[stage]["documents"])
    languages = sorted(summary["languages"], key=lambda lang: -summary["languages"][lang]["bytes"])

    figure, (funnel, per_language) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(1, 2))
    funnel.bar(range(len(stages)), left_documents, color="tab:blue")
    funnel.set_xticks(range(len(stages)), [f"after {s}" if i else s for i, s in enumerate(stages)], rotation=30,
                      ha="right")
    funnel.set_ylabel("documents")
    funnel.set_title(f"documents: {read['documents']:,} read, {summary['kept']['documents']:,} kept\n"
                     f"paragraphs dropped as copies: {summary['duplicate_paragraphs']['paragraphs']:,} of "
                     f"{read['paragraphs']:,}", fontsize=9)
    per_language.bar(range(len(languages)), [summary["languages"][lang]["bytes"] / 1e6 for lang in languages],
                     color="tab:green")
    per_language.set_xticks(range(len(languages)), languages, rotation=90, fontsize=7)
    per_language.set_yscale("log")
    per_language.set_ylabel("MB kept")
    per_language.set_title(f"{len(languages)} languages, {summary['kept']['bytes'] / 1e6:,.2f} MB kept", fontsize=9)
    figure.tight_layout()
    with replaced_file(path) as staged:
        figure.savefig(staged, format="png", dpi=100)
    plt.close(figure)
