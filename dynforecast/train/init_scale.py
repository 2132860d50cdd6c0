"""Data-derived initial scales: every learned model starts near constant velocity.

Why: the models' updates have no unit of their own. SAKE's spatial displacement δ is a mean of
unit vectors (O(1) per layer) added to a velocity, so on a molecule in Angstrom and fs (speeds
~0.01 A/fs) the untrained SAKE moved atoms by 0.3-2.6 A and started 25-225x worse than constant
velocity; ESTAG's temporal pooling starts at the last frame ("stay"), 62x worse than constant
velocity on a 30 fps skeleton. Training then spends its first epochs (or all of them) undoing the
start. So `resolve_initial_scales` fills, from the training windows, the options that fix the
start, where the configuration leaves them unset:

* ``delta_scale`` (SAKE, a velocity in length per time unit): the RMS deviation of the training
  targets from constant-velocity extrapolation, divided by target_dt, times `DELTA_FRACTION`. δ
  then starts as a perturbation a fraction of the constant-velocity error in size: large enough
  to learn from, small enough not to spoil the start (models/sake.py).
* ``extrapolation_init`` (ESTAG): horizon / spacing = target_dt / past_dt, which starts the ETP
  pooling at constant-velocity extrapolation of the refined frames (models/estag.py).

The values go into the model's hyperparameters, hence config.json and the checkpoint, so
evaluate and predict rebuild the same model; a checkpoint without them loads as before (the class
defaults are the references' starts). EGNN needs nothing here: its velocity term is scaled by
target_dt and starts at 1/L per layer (models/egnn.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
import torch

from dynforecast.models.baselines import ConstantVelocity
from dynforecast.train.config import TrainConfig

#: δ starts at this fraction of the constant-velocity error (per target_dt).
DELTA_FRACTION = 0.1
#: Most training windows the statistics are taken over (evenly spaced), and windows per batch.
MAX_WINDOWS, CHUNK = 2048, 256
DELTA_OPTION, EXTRAPOLATION_OPTION = "delta_scale", "extrapolation_init"


def constant_velocity_rms(dataset: Any, window_ids: np.ndarray) -> float:
    """RMS over coordinates of (target - constant-velocity prediction) on up to `MAX_WINDOWS`
    evenly spaced windows, in the data's length unit (0.0 without windows). Shapes: ids [W]."""
    ids = np.asarray(window_ids, dtype=np.int64)
    if ids.size == 0:
        return 0.0
    if ids.size > MAX_WINDOWS:
        ids = ids[np.linspace(0, ids.size - 1, MAX_WINDOWS).round().astype(np.int64)]
    baseline = ConstantVelocity()
    squared, count = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, ids.size, CHUNK):
            batch = dataset.batch(ids[start : start + CHUNK]).to(dtype=torch.float64)
            error = (baseline(batch) - batch.target).pow(2).sum(dim=1)  # type: ignore[operator]
            mask = torch.ones_like(error) if batch.node_mask is None else batch.node_mask.double()
            squared += float((error * mask).sum())
            count += 3.0 * float(mask.sum())
    return float(np.sqrt(squared / count)) if count else 0.0


def resolve_initial_scales(
    config: TrainConfig, dataset: Any, train_ids: np.ndarray, notes: list[str]
) -> TrainConfig:
    """Fill unset ``delta_scale`` / ``extrapolation_init`` of the configured model (module
    docstring) from the training windows; other models and given values are left as they are.

    Needs a resolved window (`setup.resolve_config`); ``notes`` receives one line per choice.
    """
    from dynforecast.train.setup import model_class

    options = inspect.signature(model_class(config.model.name).__init__).parameters
    hyper = dict(config.model.hyperparameters)
    first = dataset.systems[0]
    if DELTA_OPTION in options and DELTA_OPTION not in hyper:
        rms = constant_velocity_rms(dataset, train_ids)
        target_dt = float(dataset.target_dt)
        if rms > 0 and np.isfinite(rms) and target_dt > 0:
            hyper[DELTA_OPTION] = DELTA_FRACTION * rms / target_dt
            length = "" if first.length_unit == "1" else f" {first.length_unit}"
            per = "time unit" if first.time_unit == "1" else first.time_unit
            notes.append(
                f"init: sake's displacement scaled to {hyper[DELTA_OPTION]:.3g}{length} per {per} "
                f"({DELTA_FRACTION:g} x the constant-velocity RMS error {rms:.3g}{length} "
                f"of the training targets / target_dt), so it starts near constant velocity"
            )
    if EXTRAPOLATION_OPTION in options and EXTRAPOLATION_OPTION not in hyper:
        spec = dataset.spec
        ratio = float(dataset.target_dt) / float(dataset.past_dt)
        if spec.past_frames >= 2 and ratio > 0:
            hyper[EXTRAPOLATION_OPTION] = ratio
            notes.append(
                "init: estag's temporal pooling starts at constant-velocity extrapolation "
                f"(theta[T-2] = -{ratio:g} = -horizon/spacing)"
            )
    model = dataclasses.replace(config.model, hyperparameters=hyper)
    return dataclasses.replace(config, model=model)
