"""The README's multi-node blocks, which the tests run word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def readme_block(name: str) -> str:
    """The bash block under `<!-- multinode:NAME ... -->` in README.md, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- multinode:{re.escape(name)}[ >].*?-->\n```bash\n(.*?)```", text, re.S)
    assert match, f"README.md has no block marked <!-- multinode:{name} -->"
    return match.group(1)
