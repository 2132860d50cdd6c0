"""`dynforecast evaluate`: the MSE of a checkpoint on a split of a data file, beside its baselines.

Every number comes with the `stay` and `constant_velocity` errors on the same windows, so that a
model's error can be judged at a glance. The split is recomputed from the split configuration the
checkpoint recorded (mode, fractions, seed), so evaluating on the training data file gives the
test windows that training never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dynforecast.data.loading import load_systems
from dynforecast.errors import UsageError
from dynforecast.train import setup
from dynforecast.train.metrics import evaluate_errors
from dynforecast.train.trained import load_trained

SPLITS = ("test", "val", "train", "all")


@dataclass(frozen=True)
class EvaluationReport:
    """MSE of the model and the baselines on one split, overall and per system.

    ``baselines`` values are None where a baseline cannot predict (constant_velocity with one
    past frame and no velocities).
    """

    checkpoint: Path
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
            f"{self.checkpoint} (epoch {self.epoch}) on {self.data}, split {self.split}: "
            f"MSE {_unit_phrase(self.unit)}",
            header,
            _row("all", self.windows, [self.mse, *self.baselines.values()]),
        ]
        if len(self.per_system) > 1:
            for name, values in self.per_system.items():
                rows.append(_row(name, values["windows"], [values[n] for n in ("mse", *names[1:])]))
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
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
    checkpoint: Path,
    data: Path,
    split: str = "test",
    *,
    device: str = "auto",
    batch_size: int | None = None,
) -> EvaluationReport:
    """Evaluate ``checkpoint`` on ``split`` of ``data`` (see the module docstring)."""
    if split not in SPLITS:
        raise UsageError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    torch_device = setup.resolve_device(device)
    trained = load_trained(checkpoint)
    config = trained.config
    systems = load_systems(data, config.data.systems)
    trained.check_data(systems, data)
    trained.to(torch_device)
    dataset = setup.build_dataset(systems, config)
    if split == "all":
        ids = np.arange(len(dataset), dtype=np.int64)
    else:
        ids = setup.build_splits(dataset, config)[split]
    if len(ids) == 0:
        raise UsageError(f"{data}: the {split} split has no windows; try --split all")
    models = {"model": trained.model, **setup.baseline_models(dataset)}
    sums = evaluate_errors(
        models,
        dataset,
        ids,
        len(systems),
        batch_size=batch_size or config.optim.batch_size,
        device=torch_device,
        dtype=_dtype(config.dtype),
    )
    window_counts = np.bincount(dataset.windows.system[ids], minlength=len(systems))
    per_system = {}
    for index in np.flatnonzero(window_counts):
        per_system[systems[index].name] = {
            "windows": int(window_counts[index]),
            "mse": float(sums["model"].per_system()[index]),
            **{
                name: float(sums[name].per_system()[index]) if name in sums else None
                for name in setup.BASELINES
            },
        }
    return EvaluationReport(
        checkpoint=checkpoint,
        data=data,
        split=split,
        model=config.model.name,
        epoch=trained.epoch,
        windows=len(ids),
        mse=sums["model"].mse,
        unit=setup.squared_unit(trained.signature.length_unit),
        baselines={name: sums[name].mse if name in sums else None for name in setup.BASELINES},
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
