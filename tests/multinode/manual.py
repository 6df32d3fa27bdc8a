"""The multi-node blocks of docs/multi-node.md, which the tests run word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def manual_block(name: str) -> str:
    """The bash block under `<!-- multinode:NAME ... -->` in docs/multi-node.md, exactly as written there."""
    text = (ROOT / "docs" / "multi-node.md").read_text()
    match = re.search(rf"<!-- multinode:{re.escape(name)}[ >].*?-->\n```bash\n(.*?)```", text, re.S)
    assert match, f"docs/multi-node.md has no block marked <!-- multinode:{name} -->"
    return match.group(1)
