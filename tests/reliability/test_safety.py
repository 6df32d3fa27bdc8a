"""Loading and launching stay safe, checked over the source: no shell strings, no pickles we could avoid.

- No subprocess gets a shell string (shell=True, os.system, os.popen): arguments from users (paths, hosts)
  can never be parsed by a shell.
- Every torch.load of ours passes weights_only=True (only tensors and plain containers, no code). DeepSpeed's
  own loads of its checkpoint files are pickles (its checkpoint engine hard-codes weights_only=False): load
  only checkpoints you trust; docs/training.md says so.
- Hugging Face weights are read only from safetensors: transformers' from_pretrained/pipeline calls on models
  pass use_safetensors=True. (That a pytorch_model.bin-only directory is refused is a row of test_bad_input.)
Each checker is first shown to catch what it looks for.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SOURCES = sorted(p for folder in ("xlmr_ds", "kernels", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py"))


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _name(node: ast.AST) -> str:
    """Dotted name of a call's function: os.system, subprocess.run, AutoModel.from_pretrained, pipeline."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def shell_strings(tree: ast.AST) -> list[str]:
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _name(call.func)
        shell = _keyword(call, "shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{name}(shell=...) at line {call.lineno}")
        if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            found.append(f"{name} at line {call.lineno}")
    return found


def unsafe_loads(tree: ast.AST) -> list[str]:
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if _name(call.func) == "torch.load":
            weights_only = _keyword(call, "weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"torch.load without weights_only=True at line {call.lineno}")
    return found


def _passes_use_safetensors(call: ast.Call) -> bool:
    direct = _keyword(call, "use_safetensors")
    if isinstance(direct, ast.Constant) and direct.value is True:
        return True
    kwargs = _keyword(call, "model_kwargs")
    return isinstance(kwargs, ast.Dict) and any(
        isinstance(k, ast.Constant) and k.value == "use_safetensors" and isinstance(v, ast.Constant) and v.value is True
        for k, v in zip(kwargs.keys, kwargs.values))


def pickled_weights(tree: ast.AST) -> list[str]:
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _name(call.func)
        loads_model = (name.endswith(".from_pretrained") and not name.split(".")[-2].endswith(("Tokenizer", "Config"))
                       or name.split(".")[-1] == "pipeline")
        if loads_model and not _passes_use_safetensors(call):
            found.append(f"{name} without use_safetensors=True at line {call.lineno}")
    return found


CHECKERS = {"shell strings": shell_strings, "unsafe torch.load": unsafe_loads, "pickled weights": pickled_weights}

# Each checker on code it must flag and on code it must accept.
PROBES = [
    ("shell strings", "subprocess.run(cmd, shell=True)", 1),
    ("shell strings", "subprocess.Popen(' '.join(a), shell=flag)", 1),
    ("shell strings", "os.system('rm -rf ' + path)", 1),
    ("shell strings", "subprocess.run(['ssh', host, shlex.join(cmd)], shell=False)", 0),
    ("unsafe torch.load", "torch.load(path)", 1),
    ("unsafe torch.load", "torch.load(path, weights_only=False)", 1),
    ("unsafe torch.load", "torch.load(path, map_location='cpu', weights_only=True)", 0),
    ("pickled weights", "AutoModelForMaskedLM.from_pretrained(d)", 1),
    ("pickled weights", "pipeline('fill-mask', model=d)", 1),
    ("pickled weights", "AutoModelForMaskedLM.from_pretrained(d, use_safetensors=True)", 0),
    ("pickled weights", "pipeline('fill-mask', model=d, model_kwargs={'use_safetensors': True})", 0),
    ("pickled weights", "XLMRobertaTokenizer.from_pretrained(d)", 0),
]


@pytest.mark.parametrize("checker,code,flagged", PROBES, ids=[f"{c}: {code}" for c, code, _ in PROBES])
def test_each_checker_catches_what_it_looks_for(checker, code, flagged):
    assert len(CHECKERS[checker](ast.parse(code))) == flagged


# Tests may load Hugging Face models the way a user of the export would (they check our export), never pickles.
ALLOWED = {"pickled weights": ("tests/",)}


@pytest.mark.parametrize("checker", sorted(CHECKERS))
def test_no_source_file_does_what_the_checker_forbids(checker):
    assert len(SOURCES) > 50
    problems = []
    for path in SOURCES:
        relative = str(path.relative_to(ROOT))
        if relative.startswith(ALLOWED.get(checker, ())):
            continue
        problems += [f"{relative}: {problem}" for problem in CHECKERS[checker](ast.parse(path.read_text()))]
    assert problems == []
