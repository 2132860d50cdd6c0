"""`dynforecast evaluate`: the MSE of a checkpoint on a split of a data file, beside its baselines.

Every number comes with the `stay`, `constant_velocity` and `linear` (fitted on the training
windows of at most 500 training systems, `dynforecast.data.scored`;
`dynforecast.models.baselines.fit_linear`) errors on the same windows, and, where the file
stores velocities and the window has several past frames, `file_velocity` (the last frame moved on
by the file's own velocities), so that a model's error can be judged at a glance. Several checkpoints (or run directories) are evaluated as an
ensemble: the mean of their predictions (`dynforecast.ensemble`). `--rollout K` is
`dynforecast.evaluate_rollout`. The split is recomputed from the split configuration the
checkpoint recorded (mode, fractions, seed), so evaluating on the training data file gives the
test windows that training never saw; it is computed from frame counts before any system is read,
and only the systems holding scored (or fitted) windows are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dynforecast.data.scored import load_scored
from dynforecast.ensemble import EnsembleModel, check_all, load_members
from dynforecast.errors import UsageError
from dynforecast.models.base import create_model
from dynforecast.models.baselines import fit_linear
from dynforecast.train import setup
from dynforecast.train.metrics import evaluate_errors

SPLITS = ("test", "val", "train", "all")
#: Baselines of every evaluation: setup's non-learned ones and the fitted linear model.
BASELINES = (*setup.BASELINES, "linear")
# Reported only where it differs from constant_velocity (velocities in the file and several past
# frames; with one past frame constant velocity already is the file's velocity extrapolation).
OPTIONAL_BASELINES = ("file_velocity",)


@dataclass(frozen=True)
class EvaluationReport:
    """MSE of the model and the baselines on one split, overall and per system.

    ``baselines`` values are None where a baseline cannot predict (constant_velocity with one
    past frame and no velocities).
    """

    checkpoint: Path | list[Path]
    data: Path
    split: str
    model: str
    epoch: int
    windows: int
    mse: float
    unit: str
    baselines: dict[str, float | None]
    per_system: dict[str, dict[str, Any]]

    def table(self) -> str:
        """Plain-text table of the model and baselines, overall then per system."""
        names = ["model", *self.baselines]
        header = f"{'system':<20} {'windows':>8} " + " ".join(
            f"{self.model if n == 'model' else n:>18}" for n in names
        )
        rows = [
            f"{self._label()} (epoch {self.epoch}) on {self.data}, split {self.split}: "
            f"MSE {_unit_phrase(self.unit)}",
            header,
            _row("all", self.windows, [self.mse, *self.baselines.values()]),
        ]
        if len(self.per_system) > 1:
            for name, values in self.per_system.items():
                rows.append(_row(name, values["windows"], [values[n] for n in ("mse", *names[1:])]))
        return "\n".join(rows)

    def _label(self) -> str:
        if isinstance(self.checkpoint, list):
            return " + ".join(map(str, self.checkpoint))
        return str(self.checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": [str(p) for p in self.checkpoint]
            if isinstance(self.checkpoint, list)
            else str(self.checkpoint),
            "data": str(self.data),
            "split": self.split,
            "model": self.model,
            "epoch": self.epoch,
            "windows": self.windows,
            "mse": self.mse,
            "unit": self.unit,
            "baselines": self.baselines,
            "per_system": self.per_system,
        }


def evaluate_checkpoint(
    checkpoint: Path | Sequence[Path],
    data: Path,
    split: str = "test",
    *,
    device: str = "auto",
    batch_size: int | None = None,
) -> EvaluationReport:
    """Evaluate ``checkpoint`` (one, or several as an ensemble) on ``split`` of ``data``.

    See the module docstring; an epoch of an ensemble is its first member's.
    """
    if split not in SPLITS:
        raise UsageError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    torch_device = setup.resolve_device(device)
    paths = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    members = load_members([Path(p) for p in paths])
    trained = members[0]
    config = trained.config
    scored = load_scored(data, config, split, check=lambda read: check_all(members, read, data))
    systems, dataset, splits, ids = scored.systems, scored.dataset, scored.splits, scored.ids
    for member in members:
        member.to(torch_device)
    model = trained.model if len(members) == 1 else EnsembleModel([m.model for m in members])
    if len(ids) == 0:
        raise UsageError(f"{data}: the {split} split has no windows; try --split all")
    _log_window_and_split(config, dataset, splits, split, systems[0].time_unit)
    _log_systems_read(len(systems), scored.systems_in_file)
    models = {"model": model, **setup.baseline_models(dataset)}
    train_ids = scored.train_ids
    if len(train_ids):
        models["linear"] = fit_linear(dataset, train_ids, use_velocity=dataset.has_velocities)
    if dataset.has_velocities and dataset.spec.past_frames >= 2:
        models["file_velocity"] = create_model("file_velocity")
    sums = evaluate_errors(
        models,
        dataset,
        ids,
        len(systems),
        batch_size=batch_size or config.optim.batch_size,
        device=torch_device,
        dtype=_dtype(config.dtype),
    )
    reported = [*BASELINES, *(name for name in OPTIONAL_BASELINES if name in sums)]
    window_counts = np.bincount(dataset.windows.system[ids], minlength=len(systems))
    per_system = {}
    for index in np.flatnonzero(window_counts):
        per_system[systems[index].name] = {
            "windows": int(window_counts[index]),
            "mse": float(sums["model"].per_system()[index]),
            **{
                name: float(sums[name].per_system()[index]) if name in sums else None
                for name in reported
            },
        }
    return EvaluationReport(
        checkpoint=trained.path if len(members) == 1 else [m.path for m in members],
        data=data,
        split=split,
        model=config.model.name,
        epoch=trained.epoch,
        windows=len(ids),
        mse=sums["model"].mse,
        unit=setup.squared_unit(trained.signature.length_unit),
        baselines={name: sums[name].mse if name in sums else None for name in reported},
        per_system=per_system,
    )


def _unit_phrase(unit: str) -> str:
    """'in nm^2', or 'dimensionless' for H5MD's unit '1' ('MSE in 1' reads like a count)."""
    return "(dimensionless)" if unit == "1" else f"in {unit}"


def _row(name: str, windows: int, values: list[float | None]) -> str:
    cells = " ".join(f"{'n/a' if v is None else format(v, '.6g'):>18}" for v in values)
    return f"{name:<20} {windows:>8} {cells}"


def _dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _log_systems_read(read: int, in_file: int) -> None:
    """Where a file has systems that nothing scores, one stderr line says how many were read."""
    if read < in_file:
        from dynforecast.console import log

        log(f"read {read} of the file's {in_file} systems (those with scored or fitted windows)")


def _log_window_and_split(
    config: Any, dataset: Any, splits: dict[str, np.ndarray], scored: str, time_unit: str
) -> None:
    """One stderr line each: the checkpoint's window and split, and which split is scored."""
    from dynforecast.console import log
    from dynforecast.train.summary import split_line, window_line

    log(f"window {window_line(dataset.spec, dataset.time_step, time_unit)}")
    log(f"split {split_line(config, splits)}; scoring {scored}")
