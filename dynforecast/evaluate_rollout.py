"""`dynforecast evaluate --rollout K`: how far a forecast can be trusted.

From M start windows of the chosen split (evenly spaced over the windows that leave room for K
steps inside the split; default all of them), the model (or the ensemble) and the baselines
stay, constant_velocity and linear (fitted on the training windows) are rolled out K grid steps
exactly as `predict` does (`dynforecast.rollout.advance`): all starts of a batch advance together,
one model call per rollout step. Step k is the grid frame k g after the start's last past frame
(g = gcd(spacing, horizon); with m = horizon / g > 1 frames per model call, steps 1..m are all
predicted from given frames only).

Reported per step and model (`dynforecast.rollout_metrics` defines them): MSE (over the rollouts
still running), median MSE (a stopped rollout counting as infinite), RMSD, RMSD after optimal
superposition (molecules and proteins: every particle an atom), bond-length error (bones for
skeletons), radius-of-gyration drift and the fraction of rollouts the divergence guard stopped.

Trust horizon: the number of steps from 1 during which the median MSE stays below the threshold,
by default the constant-velocity baseline's one-step MSE (its mean MSE over steps 1..m, i.e.
evaluate's one-step error on these windows; stay's where constant velocity cannot predict), in
steps and in time units; also the first step at which the model stops beating each baseline.

Ensembles: the forecast is the members' mean (each member rolled out on its own); calibration
per step: the correlation of the per-particle spread with the per-particle error distance, and
the fraction of true coordinates inside mean +- 2 spread (about 0.95 if the spread were a
calibrated Gaussian standard deviation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynforecast.console import counted
from dynforecast.data.scored import load_scored
from dynforecast.data.windows import WindowDataset
from dynforecast.ensemble import check_all, load_members, mean_and_spread
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel
from dynforecast.models.baselines import fit_linear
from dynforecast.rigid_bones import RigidBones, resolve_rigid_bones
from dynforecast.rollout import RolloutBatcher, RolloutPlan, advance
from dynforecast.rollout_metrics import (
    RolloutGeometry,
    StepErrors,
    calibration_step,
    mean_over_valid,
    median_with_stops,
    pearson,
    step_errors,
    stops_beating,
    trust_horizon,
)
from dynforecast.train import setup

SPLITS = ("test", "val", "train", "all")
BASELINE_NAMES = ("stay", "constant_velocity", "linear")
#: Steps listed in the text table (all steps go to --json).
TABLE_STEPS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class StartWindows:
    """The chosen starts: system index [R] and last given (past) frame [R] of each."""

    system: np.ndarray
    last_frame: np.ndarray
    available: int


def choose_starts(
    dataset: WindowDataset, ids: np.ndarray, plan: RolloutPlan, steps: int, starts: int | None
) -> StartWindows:
    """M evenly spaced windows of ``ids`` whose given and true frames all lie in the split.

    The split's frames are those of its windows (per system, the union of each window's frame
    range); a start is usable when the range from its first given grid frame to step ``steps``
    is covered without a gap. Vectorised over windows with prefix sums.
    """
    windows = dataset.windows
    spec = dataset.spec
    counts = windows.frame_counts
    offset = np.concatenate([[0], np.cumsum(counts)])
    system, first = windows.system[ids], windows.start[ids]
    begin = offset[system] + first
    cover = np.zeros(int(offset[-1]) + 1, dtype=np.int64)
    np.add.at(cover, begin, 1)
    np.add.at(cover, begin + spec.span, -1)
    covered = np.cumsum(cover)[:-1] > 0
    prefix = np.concatenate([[0], np.cumsum(covered)])
    last = first + spec.last_past_offset
    lo = last - plan.lead
    hi = last + steps * plan.grid
    inside = (lo >= 0) & (hi < counts[system])
    lo_flat = offset[system] + np.clip(lo, 0, None)
    hi_flat = offset[system] + np.minimum(hi, counts[system] - 1)
    full = prefix[hi_flat + 1] - prefix[lo_flat] == hi_flat - lo_flat + 1
    usable = np.flatnonzero(inside & full)
    if usable.size == 0:
        raise UsageError(
            f"--rollout {steps}: no start window of the split leaves room for {steps} steps of "
            f"{counted(plan.grid, 'frame')} (after {plan.given} given frames) inside it; choose a smaller "
            "--rollout or another --split"
        )
    order = usable[np.argsort(ids[usable], kind="stable")]
    if starts is not None:
        if starts < 1:
            raise UsageError(f"--starts {starts}: expected at least 1")
        if starts < order.size:
            order = order[np.unique(np.linspace(0, order.size - 1, starts).round().astype(int))]
    return StartWindows(system[order], last[order], int(usable.size))


def _gather(
    systems: Sequence[Trajectory], starts: StartWindows, offsets: np.ndarray, velocities: bool
) -> np.ndarray:
    """[F, V, 3] frames ``last_frame + offsets`` of every start (nodes concatenated by start).

    Starts are sorted by system, so each system's starts are one block: one gather per system.
    """
    blocks = []
    for index in np.unique(starts.system):  # once per system, never per start
        mine = starts.last_frame[starts.system == index]
        source = systems[index].velocities if velocities else systems[index].positions
        frames = mine[:, None] + offsets[None, :]  # [r, F]
        taken = np.asarray(source)[frames]  # [r, F, N, 3]
        blocks.append(taken.transpose(1, 0, 2, 3).reshape(len(offsets), -1, 3))
    return np.concatenate(blocks, axis=1)


def _bonds(systems: Sequence[Trajectory], starts: StartWindows) -> np.ndarray:
    """[B, 2] bonds of every start in the concatenated node numbering."""
    sizes = np.array([s.n_particles for s in systems], dtype=np.int64)[starts.system]
    node_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    parts = []
    for index in np.unique(starts.system):  # once per system
        bonds = np.asarray(systems[index].bonds, dtype=np.int64).reshape(-1, 2)
        rows = np.flatnonzero(starts.system == index)
        parts.append((node_offset[rows][:, None, None] + bonds[None]).reshape(-1, 2))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def evaluate_rollout(
    checkpoints: Sequence[Path],
    data: Path,
    *,
    steps: int,
    split: str = "test",
    starts: int | None = None,
    trust_threshold: float | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    rigid_bones: bool | None = None,
) -> dict[str, Any]:
    """The rollout evaluation of the module docstring as one JSON-ready dict.

    ``rigid_bones`` (None = on for skeleton input): every forecaster's predicted frames are
    projected onto the bone lengths (`dynforecast.rigid_bones`), as in `predict`.
    """
    if split not in SPLITS:
        raise UsageError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    if steps < 1:
        raise UsageError(f"--rollout {steps}: expected at least 1")
    if trust_threshold is not None and not (trust_threshold > 0 and math.isfinite(trust_threshold)):
        raise UsageError(f"--trust-threshold {trust_threshold}: expected a positive number")
    torch_device = setup.resolve_device(device)
    members = load_members(checkpoints)
    first = members[0]
    config = first.config
    scored = load_scored(data, config, split, check=lambda read: check_all(members, read, data))
    systems, dataset, splits, ids = scored.systems, scored.dataset, scored.splits, scored.ids
    for member in members:
        member.to(torch_device)
    dtype = getattr(torch, config.dtype)
    if len(ids) == 0:
        raise UsageError(f"{data}: the {split} split has no windows; try --split all")
    spec = dataset.spec
    plan = RolloutPlan.for_spec(spec)
    rigid = resolve_rigid_bones(rigid_bones, systems)
    chosen = choose_starts(dataset, ids, plan, steps, starts)
    from dynforecast.evaluate import _log_systems_read, _log_window_and_split

    _log_window_and_split(config, dataset, splits, split, systems[0].time_unit)
    _log_systems_read(len(systems), scored.systems_in_file)
    frame_time = float(dataset.time_step)
    grid_dt = plan.grid * frame_time
    has_velocities = dataset.has_velocities

    baselines: dict[str, ForecastModel] = dict(setup.baseline_models(dataset))
    train_ids = scored.train_ids
    if len(train_ids):
        baselines["linear"] = fit_linear(dataset, train_ids, use_velocity=has_velocities)
    forecasters: dict[str, tuple[ForecastModel, bool]] = {
        f"member_{i}": (m.model, m.signature.has_velocities) for i, m in enumerate(members)
    }
    for name, model in baselines.items():
        forecasters[name] = (model.to(torch_device, dtype), has_velocities)
    superpose = all(
        bool((np.asarray(systems[i].species) > 0).all()) for i in np.unique(chosen.system)
    )

    given_offsets = -plan.lead + plan.grid * np.arange(plan.given)
    truth_offsets = plan.grid * np.arange(1, steps + 1)
    per_chunk: dict[str, list[StepErrors]] = {name: [] for name in forecasters}
    if len(members) > 1:
        per_chunk["model"] = []
    valid_parts: dict[str, list[np.ndarray]] = {name: [] for name in per_chunk}
    calibration: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(steps)]
    rollouts_per_batch = max(1, (batch_size or config.optim.batch_size) // plan.windows_per_step)
    for part in _chunks(len(chosen.system), rollouts_per_batch):
        sub = StartWindows(chosen.system[part], chosen.last_frame[part], chosen.available)
        batcher = RolloutBatcher(
            systems,
            sub.system,
            setup.graph_spec(config),
            node_attr_width=first.signature.node_attr_width,
            past_dt=dataset.past_dt,
            target_dt=dataset.target_dt,
            device=torch_device,
            dtype=dtype,
        )
        given = torch.as_tensor(
            _gather(systems, sub, given_offsets, False), device=torch_device, dtype=dtype
        )
        truth = torch.as_tensor(
            _gather(systems, sub, truth_offsets, False), device=torch_device, dtype=dtype
        )
        given_v = (
            torch.as_tensor(
                _gather(systems, sub, given_offsets, True), device=torch_device, dtype=dtype
            )
            if has_velocities
            else None
        )
        geometry = RolloutGeometry(
            batcher.node_rollout,
            batcher.n_rollouts,
            _bonds(systems, sub),
            given,
            superpose=superpose,
        )
        bones = RigidBones.for_rollouts(systems, sub.system, given) if rigid else None
        member_runs = []
        for name, (model, uses_velocities) in forecasters.items():
            result = advance(
                model,
                batcher,
                plan,
                given,
                given_v if uses_velocities else None,
                steps=steps,
                grid_dt=grid_dt,
                bones=bones,
            )
            predicted = result.positions[plan.given :]
            valid = np.arange(1, steps + 1)[:, None] <= result.predicted[None, :]
            per_chunk[name].append(step_errors(geometry, predicted, truth))
            valid_parts[name].append(valid)
            if name.startswith("member_"):
                member_runs.append((predicted, valid))
        if len(members) > 1:
            stack = torch.stack([p for p, _ in member_runs])
            mean, spread = mean_and_spread(stack)
            valid = np.logical_and.reduce([v for _, v in member_runs])
            per_chunk["model"].append(step_errors(geometry, mean, truth))
            valid_parts["model"].append(valid)
            node_valid = valid[:, batcher.node_rollout.cpu().numpy()]  # [K, V]
            for k in range(steps):
                s, e, inside = calibration_step(mean[k], spread[k], truth[k])
                keep = node_valid[k]
                calibration[k].append((s[keep], e[keep], inside[keep]))
    if len(members) == 1:
        per_chunk["model"] = per_chunk.pop("member_0")
        valid_parts["model"] = valid_parts.pop("member_0")

    errors = {name: StepErrors.concatenate(parts) for name, parts in per_chunk.items()}
    valid = {name: np.concatenate(parts, axis=1) for name, parts in valid_parts.items()}
    metrics = {name: _summary(errors[name], valid[name], superpose) for name in errors}
    medians = {name: median_with_stops(errors[name].mse, valid[name]) for name in errors}

    m = plan.windows_per_step
    source = "constant_velocity" if "constant_velocity" in errors else "stay"
    if trust_threshold is None:
        first_call = errors[source].mse[: min(m, steps)]
        threshold, threshold_source = float(first_call.mean()), f"{source} one-step MSE"
    else:
        threshold, threshold_source = float(trust_threshold), "--trust-threshold"
    trust = {}
    for name in ["model", *[n for n in BASELINE_NAMES if n in errors]]:
        horizon = trust_horizon(medians[name], threshold)
        trust[name] = {"steps": horizon, "time": horizon * grid_dt}
    beating = {
        name: stops_beating(medians["model"], medians[name])
        for name in BASELINE_NAMES
        if name in errors
    }
    calibration_out = None
    if len(members) > 1:
        calibration_out = {"spread": [], "correlation": [], "inside_2sd": []}
        for k in range(steps):
            s = np.concatenate([c[0] for c in calibration[k]])
            e = np.concatenate([c[1] for c in calibration[k]])
            inside = np.concatenate([c[2] for c in calibration[k]])
            calibration_out["spread"].append(float(s.mean()) if s.size else None)
            calibration_out["correlation"].append(pearson(s, e))
            calibration_out["inside_2sd"].append(
                float(inside.sum() / (3 * inside.size)) if inside.size else None
            )
    signature = first.signature
    return _clean(
        {
            "checkpoints": [str(m.path) for m in members],
            "data": str(data),
            "split": split,
            "model": config.model.name,
            "members": len(members),
            "window": {
                "past_frames": spec.past_frames,
                "spacing": spec.spacing,
                "horizon": spec.target_offset,
                "grid": plan.grid,
                "frames_per_call": m,
                "given_frames": plan.given,
            },
            "starts": len(chosen.system),
            "starts_available": chosen.available,
            "steps": steps,
            "rigid_bones": rigid,
            "step_time": grid_dt,
            "time_unit": signature.time_unit,
            "length_unit": signature.length_unit,
            "unit": setup.squared_unit(signature.length_unit),
            "metrics": metrics,
            "threshold": threshold,
            "threshold_source": threshold_source,
            "trust_horizon": trust,
            "stops_beating": beating,
            "calibration": calibration_out,
        }
    )


def _summary(errors: StepErrors, valid: np.ndarray, superpose: bool) -> dict[str, Any]:
    """Arrays per step [K] of one forecaster (module docstring)."""
    use = valid & np.isfinite(errors.sse)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.where(use, errors.sse, 0).sum(axis=1) / np.where(use, errors.coords, 0).sum(axis=1)
    return {
        "mse": mse,
        "median_mse": median_with_stops(errors.mse, valid),
        "rmsd": mean_over_valid(errors.rmsd, valid),
        "rmsd_superposed": mean_over_valid(errors.rmsd_superposed, valid) if superpose else None,
        "bond_error": mean_over_valid(errors.bond_error, valid)
        if np.isfinite(errors.bond_error).any()
        else None,
        "rg_drift": mean_over_valid(errors.rg_drift, valid),
        "stopped": 1.0 - valid.mean(axis=1),
    }


def _clean(value: Any) -> Any:
    """JSON-ready: arrays to lists, NaN and infinities to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def table(report: dict[str, Any]) -> str:
    """The report as text: selected steps, then trust horizons, baselines and calibration."""
    names = ["model", *[n for n in BASELINE_NAMES if n in report["metrics"]]]
    unit = report["unit"]
    time_unit = "" if report["time_unit"] == "1" else report["time_unit"]
    model = report["metrics"]["model"]
    head = (
        f"{' + '.join(report['checkpoints'])} on {report['data']}, split {report['split']}: "
        f"{counted(report['starts'], 'rollout')} of {counted(report['steps'], 'step')} "
        f"({report['step_time']:g}"
        f"{' ' + time_unit if time_unit else ''} each); median MSE {'(dimensionless)' if unit == '1' else 'in ' + unit}"
        + ("; bones kept rigid" if report.get("rigid_bones") else "")
    )
    extra = [
        ("rmsd", "RMSD"),
        ("rmsd_superposed", "RMSD fit"),
        ("bond_error", "bond err"),
        ("rg_drift", "Rg drift"),
        ("stopped", "stopped"),
    ]
    extra = [(k, label) for k, label in extra if model.get(k) is not None]
    label = report["model"] + (f" x{report['members']}" if report["members"] > 1 else "")
    columns = [label if n == "model" else n for n in names] + [label for _, label in extra]
    lines = [head, f"{'step':>6} {'time':>10} " + " ".join(f"{c:>17}" for c in columns)]
    shown = [k for k in TABLE_STEPS if k <= report["steps"]]
    if report["steps"] not in shown:
        shown.append(report["steps"])
    for k in shown:
        values = [report["metrics"][n]["median_mse"][k - 1] for n in names]
        values += [model[key][k - 1] for key, _ in extra]
        cells = " ".join(f"{'n/a' if v is None else format(v, '.5g'):>17}" for v in values)
        lines.append(f"{k:>6} {k * report['step_time']:>10.4g} {cells}")
    if len(shown) < report["steps"]:
        lines.append(
            f"(steps {', '.join(map(str, shown))} of {report['steps']} shown; --json has every step)"
        )
    lines.append(
        f"trust horizon (median MSE below {report['threshold']:.5g}, {report['threshold_source']}):"
    )
    for name, horizon in report["trust_horizon"].items():
        label = report["model"] if name == "model" else name
        steps = "step " if horizon["steps"] == 1 else "steps"
        lines.append(
            f"  {label:<18} {horizon['steps']:>6} {steps}  {horizon['time']:.5g} {time_unit}".rstrip()
        )
    for name, step in report["stops_beating"].items():
        if step is None:
            what = "beats it at every step"
        elif step == 1:
            what = "does not beat it (worse from step 1)"
        else:
            what = f"stops beating it at step {step}"
        lines.append(f"  vs {name:<15} {what}")
    calibration = report["calibration"]
    if calibration is not None:
        for k in shown:
            corr, inside = calibration["correlation"][k - 1], calibration["inside_2sd"][k - 1]
            lines.append(
                f"  calibration step {k}: spread {_fmt(calibration['spread'][k - 1])}, "
                f"spread-error correlation {_fmt(corr)}, inside mean +- 2 sd {_fmt(inside)}"
            )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
