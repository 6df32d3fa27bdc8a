"""constraints.txt pins what `make` installs: every requirement of setup.py (and its dev extra) except torch, at a
version setup.py allows, one `name==version` per line."""

import ast
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def _setup_requirements() -> list[str]:
    """install_requires and extras_require["dev"], read from setup.py's literals (not from the installed metadata,
    which is as old as the last installation)."""
    call = next(node for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    return keywords["install_requires"] + keywords["extras_require"]["dev"]


def _pins() -> dict[str, Version]:
    pins = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt:{number}: {line!r} is not name==version"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


REQUIREMENTS = [Requirement(r) for r in _setup_requirements()]


@pytest.mark.parametrize("requirement", [r for r in REQUIREMENTS if r.name != "torch"], ids=lambda r: r.name)
def test_each_requirement_is_pinned_at_a_version_setup_py_allows(requirement):
    pinned = _pins().get(canonicalize_name(requirement.name))
    assert pinned is not None, f"{requirement.name} is not in constraints.txt: run `make constraints`"
    assert requirement.specifier.contains(pinned, prereleases=True), \
        f"constraints.txt pins {requirement.name}=={pinned}, outside setup.py's {requirement}"


def test_torch_is_left_to_torch_version():
    # `make` installs torch first at TORCH_VERSION; a pin here would clash with a CUDA build's local label (+cu128).
    assert "torch" in {r.name for r in REQUIREMENTS}
    assert "torch" not in _pins()
