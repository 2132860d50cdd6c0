"""The divergence guard: roll back to the best checkpoint with a lower learning rate.

Why: a run can blow up without its loss ever becoming NaN (EGNN at lr 5e-3 on aspirin went from
a validation MSE of 1.6e-4 to about 1e3 A^2 at epoch 166 and trained 334 more epochs diverged).
After every validation `DivergenceGuard.check` compares the validation MSE with

    threshold = optim.divergence_factor x min(best validation MSE so far, "stay" on val)

("stay" = the last-frame baseline `train` measures before epoch 1; either may be missing). A
validation MSE above it, or a non-finite training or validation MSE, is a divergence: the guard
warns, loads best.pt's weights (and its EMA and optimiser moments), multiplies the learning rate
in use by ``optim.rollback_lr_factor`` (a cosine schedule's curve and base rates with it, so the
schedule goes on from the current epoch at the lower level) and training continues. The event is
recorded in metrics.csv's ``event`` column (``rollback to epoch 12, lr 0.005 -> 0.0005``). After
``optim.max_rollbacks`` rollbacks the next divergence stops training (best.pt is kept).
``optim.divergence_factor=none`` turns the guard off (a non-finite training loss then stops
training with exit 6, as before).

Resumable: the rollback count lives in the checkpoint (`FitState.rollbacks`), the lowered rate in
its optimiser and scheduler states. Under DDP every rank sees the same all-reduced validation MSE
and so rolls back together, each reading best.pt (written atomically by rank 0 epochs earlier).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dynforecast import console
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import OptimSection

#: metrics.csv column of guard events (empty in epochs without one).
EVENT = "event"


@dataclass(frozen=True)
class Verdict:
    """What `DivergenceGuard.check` found: ``diverged`` and a one-line reason."""

    diverged: bool
    reason: str = ""


class DivergenceGuard:
    """Detects exploding validation errors and rolls the run back (module docstring).

    Args:
        optim: the run's optimiser section (divergence_factor, rollback_lr_factor, max_rollbacks).
        baselines: the baselines' validation MSE by name (``"stay"`` used if present and finite).
    """

    def __init__(self, optim: OptimSection, baselines: Mapping[str, Any] | None = None) -> None:
        self.factor = optim.divergence_factor
        self.lr_factor = optim.rollback_lr_factor
        self.max_rollbacks = optim.max_rollbacks
        stay = (baselines or {}).get("stay")
        self.stay = float(stay) if isinstance(stay, (int, float)) and math.isfinite(stay) else None

    @property
    def enabled(self) -> bool:
        return self.factor is not None

    def can_roll_back(self, best_path: Path) -> bool:
        """Whether a divergence now can be rolled back (guard on, best.pt written)."""
        return self.enabled and best_path.is_file()

    def threshold(self, best_val: float) -> tuple[float, str]:
        """(factor x min(best so far, stay), which of the two); (inf, "") when neither is known
        or the guard is off."""
        known = [
            (value, label)
            for value, label in ((best_val, "the best validation MSE"), (self.stay, '"stay"'))
            if value is not None and math.isfinite(value) and value > 0
        ]
        if self.factor is None or not known:
            return math.inf, ""
        value, label = min(known)
        return self.factor * value, f"{self.factor:g} x {label} {value:.6g}"

    def check(self, train_mse: float, val_mse: float | None, best_val: float) -> Verdict:
        """Whether this epoch diverged (always False with the guard off)."""
        if not self.enabled:
            return Verdict(False)
        if not math.isfinite(train_mse):
            return Verdict(True, f"training MSE {train_mse}")
        if val_mse is None:
            return Verdict(False)
        if not math.isfinite(val_mse):
            return Verdict(True, f"validation MSE {val_mse}")
        limit, why = self.threshold(best_val)
        if val_mse > limit:
            return Verdict(True, f"validation MSE {val_mse:.6g} above {why}")
        return Verdict(False)

    def roll_back(
        self,
        best_path: Path,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        average: Any,
        training_state_key: str,
    ) -> tuple[int, float, float]:
        """Load best.pt's weights, EMA and optimiser moments; lower the learning rate.

        Returns (best epoch, learning rate before, after). The scheduler keeps its own epoch
        count (the run goes on in time); a cosine schedule's base rates are lowered too.
        """
        best = load_checkpoint(best_path)
        before = [group["lr"] for group in optimizer.param_groups]
        model.load_state_dict(best.get(training_state_key) or best["model_state"])
        if average is not None:
            average.load(best["model_state"], int(best.get("ema_updates", 0)))
        optimizer.load_state_dict(best["optimizer_state"])
        for group, lr in zip(optimizer.param_groups, before, strict=True):
            group["lr"] = lr * self.lr_factor
        if isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            scheduler.base_lrs = [lr * self.lr_factor for lr in scheduler.base_lrs]
            scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        return int(best["epoch"]), before[0], before[0] * self.lr_factor


def divergence_action(
    guard: DivergenceGuard,
    state: Any,
    epoch: int,
    train_mse: float,
    val_mse: float | None,
    best_path: Path,
    is_main: bool,
    training: tuple[Any, ...],
) -> str:
    """What the loop does after an epoch's validation: nothing (""), or a rollback / a stop,
    warned on stderr (rank 0) and returned as metrics.csv's ``event`` text.

    ``state`` is the loop's `FitState` (its ``rollbacks`` counted, ``finished`` set on a stop);
    ``training`` = (model, optimizer, scheduler, EMA or None, the checkpoint key of raw weights).
    """
    verdict = guard.check(train_mse, val_mse, state.best_val)
    if not verdict.diverged:
        return ""
    if not best_path.is_file():
        action = "no best checkpoint yet to go back to; training goes on"
        event = "diverged (no best checkpoint yet)"
    elif state.rollbacks >= guard.max_rollbacks:
        state.finished = True
        action = (
            f"stopped after {state.rollbacks} rollback{'s' if state.rollbacks != 1 else ''} "
            f"(optim.max_rollbacks); {best_path} holds epoch {state.best_epoch}"
        )
        event = f"diverged; stopped after {state.rollbacks} rollbacks"
    else:
        best_epoch, before, after = guard.roll_back(best_path, *training)
        state.rollbacks += 1
        action = (
            f"back to {best_path} (epoch {best_epoch}) with lr {before:.3g} -> {after:.3g} "
            f"(rollback {state.rollbacks} of {guard.max_rollbacks}; "
            "optim.divergence_factor=none turns this off)"
        )
        event = f"rollback to epoch {best_epoch}, lr {before:.3g} -> {after:.3g}"
    if is_main:
        console.log(f"warning: training diverged in epoch {epoch} ({verdict.reason}); {action}")
    return event


def with_event_column(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every metrics row an ``event`` value (rows of runs from before the guard had none),
    so metrics.csv keeps one header; returns ``history``."""
    for row in history:
        row.setdefault(EVENT, "")
    return history
