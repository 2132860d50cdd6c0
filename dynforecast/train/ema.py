"""An exponential moving average (EMA) of a model's weights, as MACE, NequIP, SchNetPack and
DeePMD-kit keep one.

After every optimiser step each floating-point parameter and buffer ``w`` moves its average
``a`` by ``a <- d * a + (1 - d) * w``. The decay ``d`` warms up as ``min(decay, (1 + n) / (10 + n))``
after ``n`` updates (the schedule of TensorFlow's ExponentialMovingAverage with ``num_updates``,
used by NequIP's torch-ema), so that the random initial weights are forgotten within the first
steps instead of after ~1 / (1 - decay) of them.

The training loop validates and checkpoints the average (`swapped_in`): best.pt therefore holds
the averaged weights that evaluate and predict load, while last.pt keeps the raw training weights
as well (``training_model_state``) so that a resumed run continues bit for bit. Own code rather
than ``torch.optim.swa_utils.AveragedModel``: that wraps a deep copy under other state-dict key
names and has no warm-up, and the loop needs exactly this swap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


class WeightAverage:
    """The EMA of ``model``'s floating-point parameters and buffers (same devices and dtypes).

    Args:
        model: the module being trained (not a DDP/compile wrapper: its state-dict keys are used).
        decay: the asymptotic decay d in (0, 1) per optimiser step.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"expected an EMA decay in (0, 1) (got {decay})")
        self.decay = decay
        self.updates = 0
        self._names = [
            name for name, value in model.state_dict().items() if torch.is_floating_point(value)
        ]
        live = model.state_dict(keep_vars=True)
        self._live: list[Tensor] = [live[name] for name in self._names]
        self._average: list[Tensor] = [t.detach().clone() for t in self._live]

    def current_decay(self) -> float:
        """The decay the next update uses (warm-up, see the module docstring)."""
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights; call after each optimiser step."""
        weight = 1.0 - self.current_decay()
        live = [t.detach() for t in self._live]
        torch._foreach_lerp_(self._average, live, weight)
        self.updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged tensors by state-dict key, on the CPU (a checkpoint's model_state part)."""
        return {
            name: t.detach().cpu().clone()
            for name, t in zip(self._names, self._average, strict=True)
        }

    @torch.no_grad()
    def load(self, averaged: dict[str, Any], updates: int) -> None:
        """Restore an average written by `state_dict` (on resume); KeyError if a key is missing."""
        for target, name in zip(self._average, self._names, strict=True):
            target.copy_(averaged[name])
        self.updates = int(updates)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; the training weights after."""
        with torch.no_grad():
            saved = [t.detach().clone() for t in self._live]
            for live, average in zip(self._live, self._average, strict=True):
                live.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for live, value in zip(self._live, saved, strict=True):
                    live.copy_(value)
