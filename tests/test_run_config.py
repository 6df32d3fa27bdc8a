"""The run's settings (xlmr_ds/config.py): one typed config, and what a resumed run reports as changed."""

from dataclasses import replace

from xlmr_ds.config import CheckpointSettings, OptimizationSettings, RunConfig
from xlmr_ds.dataset.config import DataConfig


def test_a_resumed_run_names_the_settings_that_changed():
    saved = RunConfig(DataConfig("data"), OptimizationSettings("ds.json", 4, exit_at_step=2))
    resumed = replace(saved, optimization=OptimizationSettings("ds.json", 6),
                      checkpointing=CheckpointSettings(save_every=2))
    assert resumed.changes_since(saved.to_dict()) == [
        "checkpointing.save_every: 0 -> 2", "optimization.exit_at_step: 2 -> None", "optimization.steps: 4 -> 6"]
    assert saved.changes_since(saved.to_dict()) == []


def test_every_setting_has_a_docstring():
    import ast
    import inspect

    import xlmr_ds.config as config

    tree = ast.parse(inspect.getsource(config))
    for node in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = node.body
        for index, statement in enumerate(body):
            if isinstance(statement, ast.AnnAssign):
                following = body[index + 1] if index + 1 < len(body) else None
                documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                assert documented, f"{node.name}.{statement.target.id} has no docstring"
