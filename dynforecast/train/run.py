"""`dynforecast train` as a library call: data file + configuration -> a run directory.

A run directory holds:

    config.json   the resolved configuration, seed, versions, data file and its SHA-256,
                  data signature (written once, before the first epoch)
    metrics.csv   one row per epoch: epoch, train_mse, val_mse, lr, seconds
    best.pt       the checkpoint with the lowest validation MSE so far
    last.pt       the latest checkpoint (end of an epoch, or the step a stop signal arrived)

Running the same command again resumes from last.pt: the same epoch, batch, optimiser, scheduler
and RNG states. Resuming refuses a different configuration (only ``optim.epochs`` may grow, and
``device`` may change) and a data file with a different checksum.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynforecast import console
from dynforecast.data.loading import load_systems
from dynforecast.errors import CompatibilityError, UsageError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.checksum import file_checksum
from dynforecast.train import setup
from dynforecast.train.checkpoint import load_checkpoint, versions
from dynforecast.train.config import TrainConfig, config_from_dict
from dynforecast.train.distributed import barrier, init_from_env, local_device
from dynforecast.train.loop import LAST, EpochHook, fit
from dynforecast.train.metrics import evaluate_errors

CONFIG_FILE = "config.json"
#: Keys a resumed run may change.
RESUMABLE_CHANGES = ("optim.epochs", "device", "optim.compile")


@dataclass(frozen=True)
class TrainSummary:
    """What `train` reports: where the run is and how good its best checkpoint is."""

    run_dir: Path
    model: str
    epochs_completed: int
    best_epoch: int
    best_val_mse: float
    baselines_val_mse: dict[str, float | None]
    unit: str
    resumed_from_epoch: int | None
    seconds: float

    def line(self) -> str:
        """One result line for stdout."""
        baselines = ", ".join(
            f"{name} {'n/a' if value is None else format(value, '.6g')}"
            for name, value in self.baselines_val_mse.items()
        )
        return (
            f"{self.run_dir}: {self.model}, {self.epochs_completed} "
            f"epoch{'' if self.epochs_completed == 1 else 's'}, best val MSE "
            f"{self.best_val_mse:.6g} [{self.unit}] at epoch {self.best_epoch} "
            f"(baselines: {baselines}); {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model": self.model,
            "epochs": self.epochs_completed,
            "best_epoch": self.best_epoch,
            "best_val_mse": self.best_val_mse,
            "baselines": self.baselines_val_mse,
            "unit": self.unit,
            "resumed_from_epoch": self.resumed_from_epoch,
            "seconds": round(self.seconds, 2),
        }


def default_run_dir(model: str) -> Path:
    """runs/<model>-<YYYYmmdd-HHMMSS> in the working directory."""
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def seed_everything(seed: int) -> None:
    """Seed every RNG a model's initialisation or a library might draw from."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code draws from the legacy global RNG
    torch.manual_seed(seed)


def train(
    data: Path | None,
    config: TrainConfig,
    run_dir: Path | None = None,
    *,
    on_epoch_end: EpochHook | None = None,
) -> TrainSummary:
    """Train (or resume) a run; see the module docstring for what the run directory holds."""
    started = time.perf_counter()
    device = setup.resolve_device(config.device)
    context = init_from_env(device)
    device = local_device(device, context)
    data_path, builtin = setup.data_path_or_builtin(data)
    systems = load_systems(data_path, config.data.systems)
    resolved = setup.resolve_config(config, systems, builtin=builtin)
    dataset = setup.build_dataset(systems, resolved)
    splits = setup.build_splits(dataset, resolved)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise UsageError(
            f"configuration key 'data.split.fractions': training needs train and validation "
            f"windows (got {len(splits['train'])} and {len(splits['val'])}); give both a "
            "positive fraction"
        )
    seed_everything(resolved.seed)
    model = setup.build_model(resolved).to(dtype=getattr(torch, resolved.dtype))
    resolved = setup.with_model_config(resolved, model)
    run_dir = run_dir or default_run_dir(resolved.model.name)
    checksum = file_checksum(data_path)

    resume = None
    if (run_dir / LAST).is_file():
        resume = load_checkpoint(run_dir / LAST)
        _check_resumable(resume, resolved, checksum, run_dir, data_path)
        if context.is_main:
            console.log(
                f"resuming {run_dir / LAST}: {resume['epoch']} epochs done"
                + (
                    f", {resume['batch_in_epoch']} batches into the next"
                    if resume["batch_in_epoch"]
                    else ""
                )
            )
    signature = setup.data_signature(
        systems, dataset, velocities_used=setup.uses_velocities(model, dataset, splits["train"])
    )
    metadata = {
        "train_config": resolved.to_dict(),
        "data_signature": signature.to_dict(),
        "data_checksum": checksum,
        "data_path": str(data_path),
        "versions": versions(),
    }
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:
            _write_json(run_dir / CONFIG_FILE, {**metadata, "seed": resolved.seed})
    barrier(context)
    result = fit(
        model,
        dataset,
        splits,
        resolved,
        run_dir,
        n_systems=len(systems),
        device=device,
        metadata=metadata,
        resume=resume,
        context=context,
        on_epoch_end=on_epoch_end,
    )
    dtype = getattr(torch, resolved.dtype)
    baselines = evaluate_errors(
        setup.baseline_models(dataset),
        dataset,
        splits["val"],
        len(systems),
        batch_size=resolved.optim.batch_size,
        device=device,
        dtype=dtype,
        context=context,
    )
    return TrainSummary(
        run_dir=run_dir,
        model=resolved.model.name,
        epochs_completed=result.epochs_completed,
        best_epoch=result.best_epoch,
        best_val_mse=result.best_val_mse,
        baselines_val_mse={
            name: baselines[name].mse if name in baselines else None for name in setup.BASELINES
        },
        unit=setup.squared_unit(signature.length_unit),
        resumed_from_epoch=int(resume["epoch"]) if resume is not None else None,
        seconds=time.perf_counter() - started,
    )


def _check_resumable(
    checkpoint: dict[str, Any], config: TrainConfig, checksum: str, run_dir: Path, data: Path
) -> None:
    saved = _flatten(config_from_dict(checkpoint["train_config"]).to_dict())
    wanted = _flatten(config.to_dict())
    differing = sorted(
        key
        for key in set(saved) | set(wanted)
        if saved.get(key) != wanted.get(key) and key not in RESUMABLE_CHANGES
    )
    if differing:
        key = differing[0]
        raise UsageError(
            f"{run_dir}: holds a run with {key}={saved.get(key)!r}, not {wanted.get(key)!r}; "
            "use the same configuration to resume, or another --out for a new run"
        )
    if checkpoint["data_checksum"] != checksum:
        raise CompatibilityError(
            f"{data}: differs from the data file the run in {run_dir} was trained on "
            f"({checkpoint['data_path']}, checksum {checkpoint['data_checksum'][:12]}...)"
        )


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and not (prefix == "" and key == "model"):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, dict):
            out.update({f"model.{k}": v for k, v in value.items()})
        else:
            out[prefix + key] = value
    return out


def _write_json(path: Path, values: dict[str, Any]) -> None:
    with atomic_output(path, overwrite=True) as scratch:
        scratch.write_text(json.dumps(values, indent=2) + "\n")
