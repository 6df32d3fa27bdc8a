"""The import graph points one way: each module imports only from its own layer or the layers below, sibling
packages of one layer stay independent, and no modules import each other in a cycle (lazy imports inside
functions count: they are still an arrow between the modules).

The layers, top to bottom (README's layout table says what each holds):

    cli                 argument parsing and printing; xlmr_ds.train and xlmr_ds.finetune are the launchers'
                        modules of it
    tools               bench, report
    engine              DeepSpeed: trainer, checkpoints, evaluation, export, guards
    config              the run's settings
    tasks               fine-tuning task files, their encoding, settings and scores
    estimate | prep | launch       FLOPs, memory, plans | offline data preparation | multi-node pre-flight
    dataset | model | tokenizer    the online dataset and loader | the model | text to XLM-R ids (run time)
    kernels             Triton kernels and their references (the repo's kernels/, installed as xlmr_ds.kernels)
    foundation          errors, jsonfile, outputs, vocab, world, accelerator, logs and the package itself

The graph is read from the source with `ast`, so the test needs no import to run and checks every module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ("xlmr_ds", "xlmr_ds.errors", "xlmr_ds.jsonfile", "xlmr_ds.vocab", "xlmr_ds.world",
              "xlmr_ds.accelerator", "xlmr_ds.logs", "xlmr_ds.outputs")
# Top to bottom; a tuple of several packages is one layer of siblings that must not import each other.
LAYERS = (
    ("xlmr_ds.cli", "xlmr_ds.train", "xlmr_ds.finetune", "xlmr_ds.__main__"),
    ("xlmr_ds.tools",),
    ("xlmr_ds.engine",),
    ("xlmr_ds.config",),
    ("xlmr_ds.tasks",),
    ("xlmr_ds.estimate", "xlmr_ds.prep", "xlmr_ds.launch"),
    ("xlmr_ds.dataset", "xlmr_ds.model", "xlmr_ds.tokenizer"),
    ("xlmr_ds.kernels",),
    FOUNDATION,
)
# The entry-point modules of the cli layer belong to it as one unit, not as independent siblings.
ONE_UNIT = {("xlmr_ds.cli", "xlmr_ds.train", "xlmr_ds.finetune", "xlmr_ds.__main__")}


def source_modules() -> dict[str, Path]:
    """Module name -> file, for the package and the kernels folder it installs as xlmr_ds.kernels."""
    modules = {}
    for folder, package in ((ROOT / "xlmr_ds", "xlmr_ds"), (ROOT / "kernels", "xlmr_ds.kernels")):
        for path in folder.rglob("*.py"):
            if folder.name == "xlmr_ds" and "kernels" in path.relative_to(folder).parts[:1]:
                continue  # a link to kernels/ made by benchmarks/gpu_kernels.sh
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The xlmr_ds modules a file imports, anywhere in it (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` names module a.b.c when c is a module, else an attribute of a.b.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: imports_of(path, set(modules)) - {name} for name, path in modules.items()}


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the package of that layer the module is in)."""
    if module in FOUNDATION:
        return len(LAYERS) - 1, module
    for index, packages in enumerate(LAYERS[:-1]):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return index, ("cli" if packages in ONE_UNIT else package)
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layering.py")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every arrow that points up or across to a sibling package, and every cycle."""
    problems = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            (own, package), (other, other_package) = layer_of(module), layer_of(target)
            if other < own:
                problems.append(f"{module} imports {target}: an arrow up (layer {own} -> {other})")
            elif other == own and package != other_package and own != len(LAYERS) - 1:
                problems.append(f"{module} imports {target}: sibling packages {package} and {other_package} "
                                f"must stay independent")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component) + [sorted(component)[0]])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_points_one_way_and_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "xlmr_ds.kernels.flash_attention" in graph  # the walk saw both folders
    assert violations(graph) == []


# The checker itself, on small graphs: each row is (graph, the problems it must report).
CHECKER_CASES = [
    ("a clean graph", {"xlmr_ds.engine.trainer": {"xlmr_ds.model.modeling", "xlmr_ds.errors"},
                       "xlmr_ds.model.modeling": {"xlmr_ds.kernels.dispatch"}}, []),
    ("kernels importing the dataset", {"xlmr_ds.kernels.mlm_masking": {"xlmr_ds.dataset.loader"}},
     ["xlmr_ds.kernels.mlm_masking imports xlmr_ds.dataset.loader: an arrow up (layer 7 -> 6)"]),
    ("the model importing the dataset", {"xlmr_ds.model.modeling": {"xlmr_ds.dataset.loader"}},
     ["xlmr_ds.model.modeling imports xlmr_ds.dataset.loader: sibling packages xlmr_ds.model and xlmr_ds.dataset "
      "must stay independent"]),
    ("a cycle inside one package", {"xlmr_ds.model.hf": {"xlmr_ds.model.modeling"},
                                    "xlmr_ds.model.modeling": {"xlmr_ds.model.hf"}},
     ["import cycle: xlmr_ds.model.hf -> xlmr_ds.model.modeling -> xlmr_ds.model.hf"]),
    ("the cli entry points as one unit", {"xlmr_ds.train": {"xlmr_ds.cli.train"},
                                          "xlmr_ds.finetune": {"xlmr_ds.cli.finetune"}}, []),
    ("task files reading the engine", {"xlmr_ds.tasks.formats": {"xlmr_ds.engine.finetune"}},
     ["xlmr_ds.tasks.formats imports xlmr_ds.engine.finetune: an arrow up (layer 4 -> 2)"]),
]


@pytest.mark.parametrize("graph,expected", [case[1:] for case in CHECKER_CASES], ids=[c[0] for c in CHECKER_CASES])
def test_the_checker_reports_arrows_up_siblings_and_cycles(graph, expected):
    assert violations(graph) == expected


def test_lazy_imports_inside_functions_are_arrows_too(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from xlmr_ds.model.hf import load_hf\n    import xlmr_ds.vocab\n")
    assert imports_of(module, {"xlmr_ds.model.hf", "xlmr_ds.vocab", "xlmr_ds.model"}) == {"xlmr_ds.model.hf",
                                                                                          "xlmr_ds.vocab"}
