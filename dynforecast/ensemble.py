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

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from dynforecast.errors import CompatibilityError, Interrupted, UsageError
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch
from dynforecast.train.config import TrainConfig
from dynforecast.train.trained import TrainedModel, checkpoint_path, load_trained

if TYPE_CHECKING:
    from dynforecast.predict import Rollout

#: Split modes whose windows depend on the seed (members with different seeds disagree).
SEEDED_SPLITS = ("random", "random_systems")


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
    seeded = {m.config.seed for m in members}
    if first.config.data.split.mode in SEEDED_SPLITS and len(seeded) > 1:
        raise CompatibilityError(
            f"{first.path}: the members were split with {first.config.data.split.mode!r} under "
            f"different seeds ({', '.join(map(str, sorted(seeded)))}), so each was tested on "
            "windows another trained on; train members with a chronological or systems split"
        )
    return members


def check_all(members: Sequence[TrainedModel], systems: Sequence[Any], data: Path) -> None:
    """CompatibilityError (exit 5) unless every member can serve ``systems`` of file ``data``."""
    for member in members:
        member.check_data(systems, data)


def default_members_dir(data: Path | None, config: TrainConfig) -> Path:
    """runs/<model>-seeds-<digest>: the same for the same data and configuration whatever the seed,
    so that rerunning ``train DATA --seeds N`` without ``--out`` resumes every member."""
    from dynforecast.io.checksum import file_checksum
    from dynforecast.train.run import run_digest
    from dynforecast.train.setup import data_path_or_builtin

    data_path, _ = data_path_or_builtin(data)
    digest = run_digest(config, file_checksum(data_path), leave_out=("seed",))
    return Path("runs") / f"{config.model.name}-seeds-{digest}"


def train_members(
    data: Path | None,
    config: TrainConfig,
    out: Path | None,
    seeds: int,
    threads: int | None = None,
    command: Sequence[str] | None = None,
) -> list:
    """Train ``seeds`` ensemble members, seeds config.seed .. config.seed + seeds - 1, into
    ``out/seed-<seed>`` (each an ordinary run directory: rerunning resumes every member).

    ``out`` None: `default_members_dir`. ``command`` (the CLI's argv after the program name)
    makes a stop message name the command that resumes all members. Returns each member's
    `dynforecast.train.run.TrainSummary`; raises as `dynforecast.train.run.train` does.
    """
    from dynforecast.train.run import naming_resume
    from dynforecast.train.run import train as run_training

    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: expected at least 1")
    if config.data.split.mode in SEEDED_SPLITS:
        raise UsageError(
            f"--seeds with split {config.data.split.mode!r}: each seed would split the windows "
            "differently; use a chronological or systems split for ensemble members"
        )
    base = out or default_members_dir(data, config)
    summaries = []
    for i in range(seeds):  # one training run per member
        try:
            summaries.append(
                run_training(
                    data,
                    dataclasses.replace(config, seed=config.seed + i),
                    base / f"seed-{config.seed + i}",
                    threads=threads,
                )
            )
        except Interrupted as stop:
            if command is None:
                raise
            raise naming_resume(stop, command, base) from None
    return summaries


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


def ensemble_rollout(
    models: Sequence[ForecastModel], run: Callable[[ForecastModel], Rollout]
) -> tuple[Rollout, np.ndarray, str | None]:
    """Roll every member out with ``run`` (one `dynforecast.predict.rollout` each) and average.

    Returns the mean forecast (as far as every member got before the divergence guard stopped
    it), the per-particle spread float32 [F, N] (0 at given frames) and the first stopped
    member's reason ("member i: ...") or None.
    """
    results = [run(model) for model in models]
    predicted = min(r.predicted for r in results)
    frames = results[0].trajectory.n_frames - results[0].predicted + predicted
    stack = torch.stack([torch.from_numpy(r.trajectory.positions[:frames]) for r in results])
    mean, spread = mean_and_spread(stack.double())
    first = results[0]
    given = frames - predicted
    positions = mean.float().numpy()
    positions[:given] = first.trajectory.positions[:given]  # given frames exactly as read
    spread_np = spread.float().numpy()
    spread_np[:given] = 0.0
    velocities = first.trajectory.velocities
    trajectory = dataclasses.replace(
        first.trajectory,
        positions=positions,
        time=first.trajectory.time[:frames],
        step=first.trajectory.step[:frames],
        velocities=None if velocities is None else _mean_velocities(results, frames),
        box=None if first.trajectory.box is None else first.trajectory.box[:frames],
    )
    stops = [(r.predicted, i, r.divergence) for i, r in enumerate(results) if r.divergence]
    reason = None
    if stops:
        _, index, why = min(stops)
        reason = f"member {index} ({len(models)} members): {why}"
    from dynforecast.predict import Rollout

    rollout = Rollout(trajectory, first.is_forecast[:frames], predicted, reason)
    return rollout, spread_np, reason


def _mean_velocities(results: Sequence[Rollout], frames: int) -> np.ndarray:
    """Members' mean velocity per frame (each member's own, data's at the given frames)."""
    stack = np.stack([np.asarray(r.trajectory.velocities)[:frames] for r in results])
    return stack.mean(axis=0).astype(np.float32)
