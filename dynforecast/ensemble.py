"""Ensembles of trained models: several checkpoints (or run directories) used as one forecaster.

Members are models trained on the same data with the same window, graph and split (typically
different seeds: `dynforecast train --seeds 3`). The forecast is the members' mean. Each member
rolls out on its own (its own predictions fed back), so that the spread across members grows with
the horizon as their forecasts part; the spread of particle i at a frame is

    s_i = sqrt( (1/3) sum_c var_c ),  var_c = sample variance (ddof 1) over members of x_ic,

the isotropic per-coordinate standard deviation, in the data's length unit (0 for one member).
For a one-step evaluation the ensemble is `EnsembleModel`, the mean of the members' predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dynforecast.errors import CompatibilityError, InputError, UsageError
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch
from dynforecast.train.trained import TrainedModel, load_trained

#: Checkpoint names looked for, in order, when a run directory is given.
RUN_CHECKPOINTS = ("best.pt", "last.pt")


def checkpoint_path(path: Path) -> Path:
    """A checkpoint file, or a run directory's best.pt (else last.pt); InputError if neither."""
    if path.is_dir():
        for name in RUN_CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path}: run directory without {' or '.join(RUN_CHECKPOINTS)}")
    return path


def load_members(paths: Sequence[Path]) -> list[TrainedModel]:
    """Load every member; CompatibilityError (exit 5) if they differ in data or window setup.

    Members must agree on the data signature and on ``data`` (window, graph, split) so that
    their forecasts are of the same frames from the same inputs.
    """
    if not paths:
        raise UsageError("expected at least one checkpoint or run directory")
    resolved = [checkpoint_path(Path(p)) for p in paths]
    if len(set(map(str, resolved))) != len(resolved):
        raise UsageError("the same checkpoint is given twice; an ensemble needs distinct members")
    members = [load_trained(p) for p in resolved]
    first = members[0]
    for member in members[1:]:
        for what, mine, theirs in (
            ("window", first.config.data.window, member.config.data.window),
            ("graph", first.config.data.graph, member.config.data.graph),
            ("split", first.config.data.split, member.config.data.split),
            ("data signature", first.signature, member.signature),
        ):
            if mine != theirs:
                raise CompatibilityError(
                    f"{member.path}: its {what} differs from {first.path}'s; ensemble members "
                    f"must be trained on the same data with the same {what}"
                )
    return members


class EnsembleModel(ForecastModel):
    """The mean of the members' predictions of the same batch: [V, 3]."""

    learnable = False

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, batch: WindowBatch) -> Tensor:
        return torch.stack([member(batch) for member in self.members]).mean(dim=0)


def mean_and_spread(stack: Tensor) -> tuple[Tensor, Tensor]:
    """Members' mean [..., V, 3] and spread [..., V] (module docstring) of ``stack`` [M, ..., V, 3]."""
    mean = stack.mean(dim=0)
    if stack.shape[0] < 2:
        return mean, torch.zeros(mean.shape[:-1], dtype=mean.dtype, device=mean.device)
    variance = stack.var(dim=0, correction=1).mean(dim=-1)
    return mean, variance.sqrt()


def member_label(paths: Sequence[Path]) -> str:
    """How a report names the forecaster: the checkpoint, or 'ensemble of M'."""
    return str(paths[0]) if len(paths) == 1 else f"ensemble of {len(paths)}"
