"""Everything that turns a configuration plus a data file into a data set, splits and a model.

This is the ONE place where "auto" settings are resolved against the data and the model, so that
train, evaluate and predict agree and the run directory records the outcome:

* window: ``protocol`` fills unset fields; unset ``past_frames`` = the model's
  ``num_past_frames`` (ESTAG) or, for models without a frame count (SAKE, EGNN), 1 when the data
  has velocities and 2 otherwise (the last frame plus a finite-difference velocity); a model's
  ``num_past_frames`` is set to the window length.
* node inputs: ``node_attr_dim`` = the data's node attribute width (1 with charges, else 0);
  a one-hot species encoding without a vocabulary gets the data's species.
* graph "auto": the bonds (+ hops) when every system has bonds, else all pairs for systems of at
  most `MAX_ALL_PAIRS_PARTICLES` particles; larger bond-less systems must choose a radius graph.
* split "auto": "systems" for 10 or more systems (independent trajectories such as the N-body
  set), else "chronological".
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynforecast.data.graphs import GraphSpec
from dynforecast.data.splits import split_windows
from dynforecast.data.windows import PROTOCOLS, WindowDataset, WindowSpec
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel, create_model, model_names
from dynforecast.train.checkpoint import DataSignature
from dynforecast.train.config import TrainConfig

#: Largest bond-less system that "auto" connects with all pairs (N(N-1) edges per window).
MAX_ALL_PAIRS_PARTICLES = 200
#: Fewest systems for which split "auto" assigns whole systems to train/val/test.
MIN_SYSTEMS_FOR_SYSTEM_SPLIT = 10
#: Options that mean "the number of past frames" / "node attribute columns" in model signatures.
FRAMES_OPTION, NODE_ATTR_OPTION = "num_past_frames", "node_attr_dim"
#: Kinetic models take steps of target_dt / L when trained here (see models/sake.py, dt_scale).
DT_SCALE_OPTION, TRAIN_DT_SCALE = "dt_scale", "target_dt/L"
SPECIES_ENCODING_OPTIONS = ("node_input", "species")


def resolve_device(name: str) -> torch.device:
    """auto = cuda if available else cpu; asking for CUDA without it is a UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {name}: CUDA is not available here (torch {torch.__version__}); "
            "use --device cpu or --device auto"
        )
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:<index>")
    return device


def model_class(name: str) -> type[ForecastModel]:
    """The class of a learnable registered model; UsageError names the valid choices."""
    classes = {n: type(create_model(n)) for n in model_names()}
    learnable = [n for n, cls in classes.items() if cls.learnable]
    if name not in learnable:
        problem = "has nothing to learn" if name in classes else "is unknown"
        raise UsageError(f"model {name!r} {problem}; choose one of {', '.join(learnable)}")
    return classes[name]


def _model_options(cls: type[ForecastModel]) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(cls.__init__).parameters
    return {k: p for k, p in parameters.items() if k != "self"}


def recommended_protocol(systems: Sequence[Trajectory]) -> str | None:
    """The window protocol every system's generator recorded (None if absent or mixed)."""
    from dynforecast.data.nbody import RECOMMENDED_PROTOCOL_KEY

    named = {str(s.parameters.get(RECOMMENDED_PROTOCOL_KEY, "")) for s in systems}
    return named.pop() if len(named) == 1 and "" not in named else None


def resolve_config(
    config: TrainConfig, systems: Sequence[Trajectory], *, builtin: bool = False
) -> TrainConfig:
    """Replace every "auto"/unset value by its value for these systems and this model."""
    cls = model_class(config.model.name)
    options = _model_options(cls)
    hyper = dict(config.model.hyperparameters)
    unknown = sorted(set(hyper) - set(options))
    if unknown:
        raise UsageError(
            f"unknown configuration key 'model.{unknown[0]}' for model {config.model.name!r}; "
            f"valid: {', '.join('model.' + k for k in options)}"
        )
    has_velocities = all(s.velocities is not None for s in systems)
    has_charges = all(s.charges is not None for s in systems)

    window = config.data.window
    protocol = (
        window.protocol
        or recommended_protocol(systems)
        or ("nbody-multiframe" if builtin else None)
    )
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise UsageError(
                f"configuration key 'data.window.protocol': expected one of "
                f"{sorted(PROTOCOLS)} (got {protocol!r})"
            )
        named = PROTOCOLS[protocol]
        window = dataclasses.replace(
            window,
            protocol=protocol,
            past_frames=window.past_frames or named.past_frames,
            spacing=window.spacing or named.spacing,
            horizon=window.horizon if window.horizon is not None else named.horizon,
            anchor_frame=window.anchor_frame
            if window.anchor_frame is not None
            else named.anchor_frame,
        )
    if FRAMES_OPTION in options:
        model_frames = hyper.get(FRAMES_OPTION)
        if window.past_frames is None:
            window = dataclasses.replace(
                window, past_frames=model_frames or options[FRAMES_OPTION].default
            )
        elif model_frames is not None and model_frames != window.past_frames:
            raise UsageError(
                f"model.{FRAMES_OPTION}={model_frames} differs from "
                f"data.window.past_frames={window.past_frames}; set one of them"
            )
        hyper[FRAMES_OPTION] = window.past_frames
    elif window.past_frames is None:
        window = dataclasses.replace(window, past_frames=1 if has_velocities else 2)
    window = dataclasses.replace(window, spacing=window.spacing or 1)

    if DT_SCALE_OPTION in options and DT_SCALE_OPTION not in hyper:
        hyper[DT_SCALE_OPTION] = TRAIN_DT_SCALE  # dimensionally consistent steps (models/sake.py)
    if NODE_ATTR_OPTION in options and NODE_ATTR_OPTION not in hyper:
        hyper[NODE_ATTR_OPTION] = 1 if has_charges else 0
    for option in SPECIES_ENCODING_OPTIONS:
        if hyper.get(option) == "one_hot" and not hyper.get("species_vocabulary"):
            hyper["species_vocabulary"] = sorted(
                {int(z) for s in systems for z in np.unique(s.species)}
            )

    graph = config.data.graph
    if graph.kind == "auto":
        if all(len(s.bonds) > 0 for s in systems):
            kind = "bonds"
        elif max(s.n_particles for s in systems) <= MAX_ALL_PAIRS_PARTICLES:
            kind = "all_pairs"
        else:
            raise UsageError(
                f"the data has systems without bonds and up to "
                f"{max(s.n_particles for s in systems)} particles; set "
                "--set graph.kind=radius --set graph.cutoff=<length>"
            )
        graph = dataclasses.replace(graph, kind=kind)
    split = config.data.split
    if split.mode == "auto":
        mode = "systems" if len(systems) >= MIN_SYSTEMS_FOR_SYSTEM_SPLIT else "chronological"
        split = dataclasses.replace(split, mode=mode)

    data = dataclasses.replace(config.data, window=window, graph=graph, split=split)
    model = dataclasses.replace(config.model, hyperparameters=hyper)
    return dataclasses.replace(config, data=data, model=model)


def window_spec(config: TrainConfig) -> WindowSpec:
    """The data layer's spec of a resolved configuration."""
    window = config.data.window
    if window.past_frames is None or window.spacing is None:
        raise ValueError("expected a resolved configuration (got unset window fields)")
    return WindowSpec(window.past_frames, window.spacing, window.horizon, window.anchor_frame)


def graph_spec(config: TrainConfig) -> GraphSpec:
    graph = config.data.graph
    return GraphSpec(graph.kind, graph.hops, graph.cutoff, graph.max_neighbours)


def build_dataset(systems: Sequence[Trajectory], config: TrainConfig) -> WindowDataset:
    dtype = getattr(torch, config.dtype)
    return WindowDataset(systems, window_spec(config), graph_spec(config), dtype=dtype)


def build_splits(dataset: WindowDataset, config: TrainConfig) -> dict[str, np.ndarray]:
    split = config.data.split
    return split_windows(
        dataset.windows, split.mode, split.fractions, config.seed, spec=dataset.spec
    )


def build_model(config: TrainConfig) -> ForecastModel:
    """The model of a resolved configuration; bad hyperparameter values become UsageError."""
    try:
        return create_model(config.model.name, **dict(config.model.hyperparameters))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"model {config.model.name!r}: {exc}") from None


def with_model_config(config: TrainConfig, model: ForecastModel) -> TrainConfig:
    """Record every resolved hyperparameter of the built model (defaults included)."""
    hyper = {k: _plain(v) for k, v in model.config.items() if k != "name"}
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, hyperparameters=hyper)
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def uses_velocities(model: ForecastModel, dataset: WindowDataset, window_ids: np.ndarray) -> bool:
    """Whether the model's output depends on the batch's velocities (autograd reachability).

    Zero-initialised output layers would hide a value-based test; a gradient path does not.
    """
    if not dataset.has_velocities or len(window_ids) == 0:
        return False
    batch = dataset.batch(np.asarray(window_ids[:1]))
    velocities = batch.velocities.clone().requires_grad_(True)  # type: ignore[union-attr]
    output = model(batch.replace(velocities=velocities))
    (gradient,) = torch.autograd.grad(output.sum(), velocities, allow_unused=True)
    return gradient is not None


def data_signature(
    systems: Sequence[Trajectory], dataset: WindowDataset, *, velocities_used: bool
) -> DataSignature:
    """What a model trained on these systems needs from any data it is later given."""
    return dataclasses.replace(
        systems_signature(systems),
        frame_time=float(dataset.time_step),
        node_attr_width=int(dataset.node_attr_dim),
        has_velocities=velocities_used,
    )


def systems_signature(systems: Sequence[Trajectory]) -> DataSignature:
    """The signature of data offered to a trained model (for `DataSignature.check`)."""
    first = systems[0]
    steps = [s.time_step for s in systems if s.n_frames > 1]
    return DataSignature(
        length_unit=first.length_unit,
        time_unit=first.time_unit,
        frame_time=float(steps[0]) if steps else 0.0,
        species=tuple(sorted({int(z) for s in systems for z in np.unique(s.species)})),
        node_attr_width=1 if all(s.charges is not None for s in systems) else 0,
        has_velocities=all(s.velocities is not None for s in systems),
        particle_counts=tuple(sorted({s.n_particles for s in systems})),
    )


def data_path_or_builtin(path: Path | None) -> tuple[Path, bool]:
    """The data file to use, and whether it is the built-in N-body set (generated on first use)."""
    if path is not None:
        return path, False
    from dynforecast.data.builtin import builtin_dataset_path

    return builtin_dataset_path(), True


#: Non-learned baselines reported beside every learned model's error.
BASELINES = ("stay", "constant_velocity")


def baseline_models(dataset: WindowDataset) -> dict[str, ForecastModel]:
    """The baselines that can predict on this data set's windows.

    constant_velocity needs two past frames or velocities; with neither it is left out (and
    reported as null) instead of failing.
    """
    usable = [
        name
        for name in BASELINES
        if name != "constant_velocity" or dataset.spec.past_frames >= 2 or dataset.has_velocities
    ]
    return {name: create_model(name) for name in usable}


def squared_unit(length_unit: str) -> str:
    """The unit of an MSE of positions: "nm^2", "Angstrom^2"; dimensionless data stays "1"."""
    return "1" if length_unit == "1" else f"{length_unit}^2"
