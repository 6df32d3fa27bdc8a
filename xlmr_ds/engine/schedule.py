"""A recipe's learning-rate curve as a torch scheduler that DeepSpeed steps and checkpoints.

DeepSpeed's own schedulers (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle) have no stable phase and no
1-sqrt decay, and none is piecewise over phases; a run without lr pieces keeps the DeepSpeed config's
scheduler. The rate is a pure function of the step (PhasePlan.learning_rate), so a resumed run, whatever
DeepSpeed restored, continues the same curve.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from xlmr_ds.dataset.phases import PhasePlan


class RecipeLearningRate(LRScheduler):
    """Every parameter group at the recipe's rate of step `last_epoch` (the optimizer steps taken)."""

    def __init__(self, optimizer: Optimizer, plan: PhasePlan):
        self.plan = plan
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.plan.learning_rate(self.last_epoch)] * len(self.optimizer.param_groups)

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch}  # the plan is the run's, not the checkpoint's

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        for group, rate in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = rate
        self._last_lr = self.get_lr()
