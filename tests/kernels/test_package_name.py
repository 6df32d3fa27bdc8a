"""The repository's kernels/ folder must not stand in for the PyPI package `kernels` (kernels/__init__.py).

From the repository root the current directory is first on sys.path, so `import kernels` finds the folder before
site-packages. transformers >= 5.25 requires the PyPI package and imports names from it at start-up: when the folder
answered, every `import transformers` there failed (CI of 2026-12-03)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_in_checkout(code: str, *python_flags: str) -> str:
    """Run `code` with the checkout as the current directory, as `python -m xlmr_ds ...` from there is."""
    result = subprocess.run([sys.executable, *python_flags, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_transformers_imports_from_the_checkout_and_kernels_is_the_installed_package():
    out = run_in_checkout("from transformers import AutoModelForMaskedLM, XLMRobertaForMaskedLM, pipeline\n"
                          "import kernels\n"
                          "print(kernels.__file__)")
    try:
        importlib.metadata.version("kernels")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("transformers >= 5.25 installs the PyPI package `kernels`: it is missing, so this test "
                    "cannot check that the checkout's folder gives way to it")
    assert not Path(out).resolve().is_relative_to(ROOT / "kernels"), out


@pytest.mark.parametrize("name, code, expected", [
    ("our names under xlmr_ds.kernels",
     "from xlmr_ds.kernels import attention, mlm_mask; print(attention.__module__, mlm_mask.__module__)",
     "xlmr_ds.kernels.dispatch xlmr_ds.kernels.dispatch"),
    ("both names in one process",
     "import kernels, xlmr_ds.kernels; print(kernels is xlmr_ds.kernels, hasattr(xlmr_ds.kernels, 'attention'))",
     "False True"),
])
def test_xlmr_ds_kernels_keeps_its_names(name, code, expected):
    assert run_in_checkout(code) == expected


def test_with_no_kernels_package_installed_the_folder_is_empty_and_unversioned():
    """Without site-packages (-S) nothing else is named `kernels`: the folder answers, with nothing transformers
    could take for the package (it reads a module without __version__ as not available)."""
    out = run_in_checkout("import kernels\n"
                          "print(kernels.__file__, hasattr(kernels, '__version__'), hasattr(kernels, 'attention'))",
                          "-S")
    assert out == f"{ROOT / 'kernels' / '__init__.py'} False False"
