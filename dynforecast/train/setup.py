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

from dynforecast.console import counted
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.splits import SPLIT_MODES, split_windows
from dynforecast.data.windows import PROTOCOLS, WindowDataset, WindowIndex, WindowSpec
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel, create_model, model_names
from dynforecast.train import auto
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
    config: TrainConfig,
    systems: Sequence[Trajectory],
    *,
    builtin: bool = False,
    notes: list[str] | None = None,
) -> TrainConfig:
    """Replace every "auto"/unset value by its value for these systems and this model.

    ``notes`` (if given) receives one line per choice made here and why, for the start-of-run
    summary. Batch size is resolved later, once the split is known (`resolve_batch_size`).
    """
    notes = [] if notes is None else notes
    cls = model_class(config.model.name)
    options = _model_options(cls)
    hyper = dict(config.model.hyperparameters)
    unknown = sorted(set(hyper) - set(options))
    if unknown:
        raise UsageError(
            f"unknown configuration key 'model.{unknown[0]}' for model {config.model.name!r}; "
            f"valid: {', '.join('model.' + k for k in options)}"
        )
    config = apply_recorded_protocol(config, systems, notes)
    has_charges = all(s.charges is not None for s in systems)

    split = config.data.split
    if split.mode == "auto":
        if len(systems) >= MIN_SYSTEMS_FOR_SYSTEM_SPLIT:
            mode, why = "systems", f"{len(systems)} independent systems"
        else:
            mode = "chronological"
            why = f"{len(systems)} system{'s' if len(systems) > 1 else ''}: blocks in time"
        split = dataclasses.replace(split, mode=mode)
        notes.append(f"split: {mode} ({why})")

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
        notes.append(f"window: protocol {protocol}")
    model_frames = hyper.get(FRAMES_OPTION) if FRAMES_OPTION in options else None
    if model_frames is not None and window.past_frames not in (None, model_frames):
        raise UsageError(
            f"model.{FRAMES_OPTION}={model_frames} differs from "
            f"data.window.past_frames={window.past_frames}; set one of them"
        )
    past = window.past_frames or model_frames
    if protocol is None and not (past and window.spacing and split.fractions):
        chosen = auto.choose_window(
            systems,
            split.mode,
            past_frames=past,
            spacing=window.spacing,
            horizon=window.horizon,
            fractions=split.fractions,
        )
        window = dataclasses.replace(window, past_frames=chosen.past_frames, spacing=chosen.spacing)
        split = dataclasses.replace(split, fractions=chosen.fractions)
        notes.append(f"window: {chosen.reason}")
    window = dataclasses.replace(
        window, past_frames=window.past_frames or past, spacing=window.spacing or 1
    )
    if FRAMES_OPTION in options:
        hyper[FRAMES_OPTION] = window.past_frames
    split = _split_fractions(split, notes)

    if DT_SCALE_OPTION in options and DT_SCALE_OPTION not in hyper:
        hyper[DT_SCALE_OPTION] = TRAIN_DT_SCALE  # dimensionally consistent steps (models/sake.py)
    if NODE_ATTR_OPTION in options and NODE_ATTR_OPTION not in hyper:
        varying = has_charges and _varies([s.charges for s in systems])
        hyper[NODE_ATTR_OPTION] = 1 if varying else 0
        if has_charges and not varying:
            notes.append("node inputs: charges left out (one value over the data)")
    for option in SPECIES_ENCODING_OPTIONS:
        if option in options and option not in hyper and "none" in _species_choices(cls):
            if not _varies([s.species for s in systems]):
                hyper[option] = "none"
                notes.append(f"node inputs: species left out (all {int(systems[0].species[0])})")
        if hyper.get(option) == "one_hot" and not hyper.get("species_vocabulary"):
            hyper["species_vocabulary"] = sorted(
                {int(z) for s in systems for z in np.unique(s.species)}
            )

    graph = _resolve_graph(config.data.graph, systems, notes)
    data = dataclasses.replace(config.data, window=window, graph=graph, split=split)
    model = dataclasses.replace(config.model, hyperparameters=hyper)
    return dataclasses.replace(config, data=data, model=model)


#: Split modes that use data.split.fractions (the others pin their own cuts).
FRACTION_MODES = ("chronological", "random", "systems", "random_systems")


def _split_fractions(split: Any, notes: list[str]) -> Any:
    if split.mode not in FRACTION_MODES:
        return dataclasses.replace(split, fractions=None)  # ignored by the reference splits
    fractions = split.fractions or auto.DEFAULT_FRACTIONS
    return dataclasses.replace(split, fractions=tuple(float(f) for f in fractions))


def _varies(arrays: Sequence[Any]) -> bool:
    """Whether the values of all these arrays are not all one value."""
    values = np.concatenate([np.asarray(a).reshape(-1) for a in arrays])
    return bool(values.size) and bool(np.any(values != values[0]))


def _species_choices(cls: type[ForecastModel]) -> tuple[str, ...]:
    from dynforecast.models.features import SPECIES_ENCODINGS

    # ESTAG's node_input has no "none" (its reference always feeds z); SAKE/EGNN take NodeInput's.
    return ("atomic_number", "one_hot") if cls.__name__ == "ESTAG" else SPECIES_ENCODINGS


def _resolve_graph(graph: Any, systems: Sequence[Trajectory], notes: list[str]) -> Any:
    from dynforecast.data.cutoff import derive_cutoff
    from dynforecast.io.units import parse_length

    unit = systems[0].length_unit
    if isinstance(graph.cutoff, str) or graph.cutoff is not None:
        cutoff = parse_length(graph.cutoff, unit, "graph.cutoff")
        if isinstance(graph.cutoff, str):
            notes.append(f"graph: cutoff {graph.cutoff} = {cutoff:.6g} {unit}")
        graph = dataclasses.replace(graph, cutoff=cutoff)
    if graph.kind != "auto":
        return graph
    largest = max(s.n_particles for s in systems)
    if all(len(s.bonds) > 0 for s in systems):
        what = "skeleton bones" if auto.data_kind(systems) == "skeleton" else "the file's bonds"
        notes.append(f"graph: {what} + {graph.hops} hops (every system has bonds)")
        return dataclasses.replace(graph, kind="bonds")
    if largest <= MAX_ALL_PAIRS_PARTICLES:
        notes.append(
            f"graph: all pairs (no bonds; at most {counted(largest, 'particle')} per system)"
        )
        return dataclasses.replace(graph, kind="all_pairs")
    if graph.cutoff is not None:
        notes.append(f"graph: radius, cutoff {graph.cutoff:.6g} {unit} (given; no bonds)")
        return dataclasses.replace(graph, kind="radius")
    derived = derive_cutoff(systems)
    notes.append("graph: " + derived.reason(unit))
    return dataclasses.replace(graph, kind="radius", cutoff=derived.cutoff)


#: Trajectory.parameters keys `generate --recipe` writes: the preset and each system's part.
RECORDED_PROTOCOL_KEY, RECORDED_SPLIT_KEY = "protocol", "recipe_split"


def apply_recorded_protocol(
    config: TrainConfig, systems: Sequence[Trajectory], notes: list[str]
) -> TrainConfig:
    """Fill the keys a file's recorded preset sets, where the configuration leaves them unset.

    Unset = equal to `TrainConfig()`'s default ("auto", None); a key the user gave wins. Without
    a recorded preset, or with ``--protocol`` given, the configuration is returned as it is.
    """
    from dynforecast.train.config import _section_to_dict, config_from_dict, merge
    from dynforecast.train.presets import PRESETS

    named = {str(s.parameters.get(RECORDED_PROTOCOL_KEY, "")) for s in systems}
    name = named.pop() if len(named) == 1 else ""
    if config.protocol is not None or name not in PRESETS:
        return config
    current = config.to_dict()
    defaults = _section_to_dict(TrainConfig())
    values: dict[str, Any] = {"protocol": name}
    for key, value in PRESETS[name].items():
        if _lookup(current, key) == _lookup(defaults, key):
            nested: Any = value
            for part in reversed(key.split(".")):
                nested = {part: nested}
            values = merge(values, nested)
    notes.append(f"protocol: {name} (recorded in the data file)")
    return config_from_dict(merge(current, values))


def _lookup(values: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None  # type: ignore[assignment]
    return values


def check_recorded_split(
    systems: Sequence[Trajectory], dataset: WindowDataset, splits: dict[str, np.ndarray],
    config: TrainConfig,
) -> None:  # fmt: skip
    """Refuse training windows from systems the file records as validation or test.

    `generate --recipe` records each trajectory's part (``recipe_split``); a split that trains on
    a recorded val/test system leaks the recipe's evaluation data, so it needs
    ``split.ignore_recorded=true`` (asked for by name).
    """
    parts = [str(s.parameters.get(RECORDED_SPLIT_KEY, "")) for s in systems]
    if config.data.split.ignore_recorded or not any(parts):
        return
    held_out = np.array([p in ("val", "test") for p in parts])
    leaked = np.unique(dataset.windows.system[splits["train"]])
    leaked = leaked[held_out[leaked]]
    if leaked.size:
        counts = {p: sum(parts[i] == p for i in leaked) for p in ("val", "test")}
        raise UsageError(
            f"split {config.data.split.mode!r} with fractions "
            f"{list(config.data.split.fractions or [])} trains on {counts['val']} validation and "
            f"{counts['test']} test systems the file records (generate --recipe); drop the "
            "split settings to use the recorded split, or add --set split.ignore_recorded=true"
        )


def resolve_workers(
    config: TrainConfig,
    dataset: WindowDataset,
    notes: list[str],
    *,
    threads: int = 1,
    usable_cpus: int = 1,
) -> TrainConfig:
    """Fill an unset optim.workers (`dynforecast.data.prefetch`): 1 when the frames are read
    from the file (out of core) and the process may use a CPU beyond its ``threads`` training
    threads, else 0.

    Why the spare CPU: a worker overlaps reading with the steps only if it does not take a
    core from them. On a 2-core VM with 2 busy cores, one worker made an out-of-core epoch
    1.085x slower (benchmarks/README.md, "Out-of-core training").
    """
    if config.optim.workers is not None:
        return config
    spare = usable_cpus - threads
    workers = 1 if dataset.frames_out_of_core and spare >= 1 else 0
    if workers:
        notes.append(
            "workers: 1 DataLoader process builds batches ahead (frames read on demand; "
            f"{counted(spare, 'CPU')} spare beyond the {counted(threads, 'training thread')})"
        )
    elif dataset.frames_out_of_core:
        notes.append(
            f"workers: none (no CPU spare beyond the {counted(threads, 'training thread')}; "
            "--set optim.workers=1 prefetches batches anyway)"
        )
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, workers=workers))


def resolve_batch_size(
    config: TrainConfig, n_train: int, notes: list[str], world_size: int = 1
) -> TrainConfig:
    """Fill an unset optim.batch_size from the training windows; warn about too few steps.

    optim.batch_size is per process: under DDP of ``world_size`` processes an unset one is the
    automatic global batch divided among them (at least 1 each), so the same command steps on
    about the same global batch whatever the number of processes.
    """
    from dynforecast import console

    batch = config.optim.batch_size
    if batch is None:
        batch = max(1, auto.auto_batch_size(n_train) // world_size)
        per = f" per process x {world_size} processes" if world_size > 1 else ""
        notes.append(
            f"batch: {batch}{per} ({n_train} training windows, "
            f"{counted(auto.steps_per_epoch(n_train, batch * world_size), 'step')} per epoch)"
        )
    elif auto.steps_per_epoch(n_train, batch * world_size) < auto.MIN_STEPS:
        per = f" per process x {world_size} processes" if world_size > 1 else ""
        console.log(
            f"warning: batch size {batch}{per} leaves "
            f"{counted(auto.steps_per_epoch(n_train, batch * world_size), 'optimiser step')} "
            "per epoch "
            f"for {n_train} training windows; a smaller batch "
            f"(e.g. {max(1, auto.auto_batch_size(n_train) // world_size)}) usually trains better"
        )
    optim = dataclasses.replace(config.optim, batch_size=batch)
    return dataclasses.replace(config, optim=optim)


def resolve_precision(config: TrainConfig, device: torch.device) -> TrainConfig:
    """The precision the run uses (`dynforecast.train.precision`), with the deprecated
    optim.amp (``--amp``) turned into optim.precision bf16 (warned about once, on any device).

    Also records the device actually used, so config.json says where the run ran. Raises
    UsageError for a precision this torch cannot run on ``device``.
    """
    from dynforecast import console
    from dynforecast.train.precision import choose_precision

    optim = config.optim
    chosen = choose_precision(optim.precision, optim.amp, device, config.dtype)
    if optim.amp:
        console.log(
            "warning: --amp (optim.amp) is deprecated; training with --precision bf16 on "
            f"{device} (recorded as optim.precision=bf16)"
        )
    optim = dataclasses.replace(optim, amp=False, precision=chosen.name)
    return dataclasses.replace(config, optim=optim, device=str(device))


def recorded_config(config: TrainConfig) -> dict[str, Any]:
    """``config.to_dict()`` without keys the chosen split ignores (fractions of reference splits)."""
    values = config.to_dict()
    if values["data"]["split"].get("fractions") is None:
        values["data"]["split"].pop("fractions", None)
    return values


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
    """The window ids of each split; a mode that leaves a split empty names the modes that work."""
    return split_index(dataset.windows, dataset.spec, config)


def split_index(index: WindowIndex, spec: WindowSpec, config: TrainConfig) -> dict[str, np.ndarray]:
    """`build_splits` from the window index alone (frame counts suffice; no frame is read)."""
    split = config.data.split
    fractions = split.fractions or auto.DEFAULT_FRACTIONS
    try:
        return split_windows(index, split.mode, fractions, config.seed, spec=spec)
    except UsageError as exc:
        working = [
            mode
            for mode in SPLIT_MODES
            if mode != split.mode and _split_works(index, spec, mode, fractions, config.seed)
        ]
        hint = (
            f"; modes that work here: {', '.join(working)} (--set split.mode=...)"
            if working
            else "; no split mode works with this window: shorten it (data.window.spacing, "
            "data.window.past_frames)"
        )
        raise UsageError(f"{exc}{hint}") from None


def _split_works(
    index: WindowIndex, spec: WindowSpec, mode: str, fractions: Any, seed: int
) -> bool:
    try:
        split_windows(index, mode, fractions, seed, spec=spec)
    except UsageError:
        return False
    return True


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
