"""`dynforecast predict`: autoregressive rollout of a trained model from given frames.

The rollout starts from the checkpoint's window of T given frames spaced D apart and ending at
``start``; each step predicts the frame ``horizon`` frames after the last one, appends it and
drops the oldest, so the forecast is a trajectory with one frame every D stored frames (for
T = 1 every ``horizon`` frames). This needs horizon == D when T > 1 (else the appended frame
would not continue the spacing), which ESTAG's protocols satisfy.

Velocities, for models that read them: the data's velocities at the given frames, then for each
predicted frame the finite difference (x_new - x_previous) / (horizon * frame time) — the mean
velocity over the last step, in length per time unit like the data's.

Divergence guard: a predicted frame with a non-finite coordinate, or with a particle farther than
`DIVERGENCE_FACTOR` x the initial extent from the initial centroid (extent = largest distance of
a given-frame particle from the centroid of the last given frame), stops the rollout. The frames
made so far are written first, then `DivergenceError` (exit 6) is raised.

The output is the system's `Trajectory` copied with new positions, time, step and velocities, so
names, bonds and writer parameters carry over and exports are valid files of their format; the
H5MD file marks each frame in ``observables/<system>/is_forecast`` (0 given, 1 predicted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynforecast.data.graphs import GraphSpec, radius_edges, system_edges
from dynforecast.data.loading import load_systems
from dynforecast.data.windows import WindowSpec
from dynforecast.errors import DivergenceError, UsageError
from dynforecast.io.atomic import check_output_path
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch
from dynforecast.train import setup
from dynforecast.train.trained import load_trained

#: A predicted particle farther than this many initial extents from the initial centroid stops
#: the rollout (an N-body system that flies apart legitimately stays well inside it).
DIVERGENCE_FACTOR = 10.0


@dataclass(frozen=True)
class Rollout:
    """Given frames followed by predicted ones.

    Fields: trajectory (the system copy), is_forecast int8 [F], predicted (how many frames were
    predicted), divergence (why the rollout stopped early, or None).
    """

    trajectory: Trajectory
    is_forecast: np.ndarray
    predicted: int
    divergence: str | None


class SingleSystemBatcher:
    """Builds the one-window `WindowBatch` of each rollout step without a data set.

    Static graphs (bonds, all pairs) are computed once; radius graphs from the last frame of
    each step's window.
    """

    def __init__(
        self,
        system: Trajectory,
        graph: GraphSpec,
        *,
        node_attr_width: int,
        past_dt: float,
        target_dt: float,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        n = system.n_particles
        self.graph, self.device, self.dtype = graph, device, dtype
        self.past_dt, self.target_dt = past_dt, target_dt
        self.species = torch.as_tensor(np.asarray(system.species, dtype=np.int64), device=device)
        attrs = np.zeros((n, 0), dtype=np.float32)
        if node_attr_width and system.charges is not None:
            attrs = np.asarray(system.charges, dtype=np.float32)[:, None]
        self.node_attrs = torch.as_tensor(attrs, device=device, dtype=dtype)
        self.node_graph = torch.zeros(n, dtype=torch.long, device=device)
        self.static = None
        if graph.kind != "radius":
            src, dst = system_edges(system, graph)
            self.static = (_long(src, device), _long(dst, device))

    def __call__(self, positions: torch.Tensor, velocities: torch.Tensor | None) -> WindowBatch:
        """Shapes: positions [N, T, 3], velocities [N, T, 3] or None -> batch of one window."""
        if self.static is not None:
            src, dst = self.static
        else:
            last = positions[:, -1].detach().cpu().numpy()
            found = radius_edges(last, np.zeros(len(last), dtype=np.int64), self.graph)
            src, dst = _long(found[0], self.device), _long(found[1], self.device)
        return WindowBatch(
            positions=positions,
            species=self.species,
            node_attrs=self.node_attrs,
            edge_src=src,
            edge_dst=dst,
            node_graph=self.node_graph,
            num_graphs=1,
            past_dt=self.past_dt,
            target_dt=self.target_dt,
            velocities=velocities,
        )


def _long(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64), device=device)


def given_frames(spec: WindowSpec, start: int, n_frames: int) -> np.ndarray:
    """Frame numbers of the T given frames ending at ``start``; UsageError if they do not exist."""
    first = spec.last_past_offset
    if not first <= start < n_frames:
        raise UsageError(
            f"--start {start}: the model needs {spec.past_frames} given frames spaced "
            f"{spec.spacing} apart ending at --start; choose a frame in {first}..{n_frames - 1}"
        )
    return start - spec.last_past_offset + np.arange(spec.past_frames) * spec.spacing


@torch.no_grad()
def rollout(
    model: ForecastModel,
    system: Trajectory,
    spec: WindowSpec,
    graph: GraphSpec,
    *,
    start: int,
    steps: int,
    node_attr_width: int = 0,
    use_velocities: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    divergence_factor: float = DIVERGENCE_FACTOR,
) -> Rollout:
    """Predict ``steps`` frames after the given frames ending at ``start`` (module docstring)."""
    if steps < 1:
        raise UsageError(f"--steps {steps}: expected at least 1")
    if spec.past_frames > 1 and spec.target_offset != spec.spacing:
        raise UsageError(
            f"rollout needs the predicted frame ({spec.target_offset} frames ahead) to continue "
            f"the spacing of the given frames ({spec.spacing}); this model cannot be rolled out"
        )
    if use_velocities and system.velocities is None:
        raise UsageError(f"system {system.name!r}: the model needs velocities and it has none")
    device = device or torch.device("cpu")
    frames = given_frames(spec, start, system.n_frames)
    frame_time = system.time_step if system.n_frames > 1 else 1.0
    stride = spec.target_offset
    step_dt = stride * frame_time
    batcher = SingleSystemBatcher(
        system,
        graph,
        node_attr_width=node_attr_width,
        past_dt=spec.spacing * frame_time,
        target_dt=step_dt,
        device=device,
        dtype=dtype,
    )
    given = torch.as_tensor(system.positions[frames], device=device, dtype=dtype)  # [T, N, 3]
    window = given.transpose(0, 1).contiguous()  # [N, T, 3]
    velocity = None
    if use_velocities:
        velocity = torch.as_tensor(system.velocities[frames], device=device, dtype=dtype)  # type: ignore[index]
        velocity = velocity.transpose(0, 1).contiguous()
    centroid = given[-1].mean(dim=0)
    extent = float((given - centroid).norm(dim=-1).max().clamp_min(1e-12))
    bound = divergence_factor * extent

    predicted = torch.empty(steps, system.n_particles, 3, device=device, dtype=dtype)
    done, divergence = 0, None
    model.eval()
    for index in range(steps):
        new = model(batcher(window, velocity)).to(dtype)
        if not torch.isfinite(new).all():
            divergence = "non-finite coordinates"
        else:
            farthest = float((new - centroid).norm(dim=-1).max())
            if farthest > bound:
                divergence = (
                    f"a particle {farthest:.4g} from the initial centroid, beyond "
                    f"{divergence_factor:g} x the initial extent {extent:.4g}"
                )
        if divergence is not None:
            divergence = f"step {index + 1} of {steps} gave {divergence}"
            break
        predicted[index] = new
        done = index + 1
        if velocity is not None:
            step_velocity = (new - window[:, -1]) / step_dt
            velocity = torch.cat([velocity[:, 1:], step_velocity[:, None]], dim=1)
        window = torch.cat([window[:, 1:], new[:, None]], dim=1)

    trajectory = _forecast_trajectory(system, frames, predicted[:done].cpu().numpy(), stride)
    flags = np.concatenate([np.zeros(len(frames), np.int8), np.ones(done, np.int8)])
    return Rollout(trajectory, flags, done, divergence)


def _forecast_trajectory(
    system: Trajectory, frames: np.ndarray, predicted: np.ndarray, stride: int
) -> Trajectory:
    """The system with the given frames then the predicted ones, evenly continued in time/step."""
    count = predicted.shape[0]
    ahead = np.arange(1, count + 1) * stride
    last = int(frames[-1])
    frame_time = system.time_step
    step_delta = int(system.step[1] - system.step[0]) if system.n_frames > 1 else 1
    positions = np.concatenate([system.positions[frames], predicted.astype(np.float32)])
    time = np.concatenate([system.time[frames], system.time[last] + ahead * frame_time])
    step = np.concatenate([system.step[frames], system.step[last] + ahead * step_delta])
    velocities = None
    if system.velocities is not None:
        # Predicted frames: the finite-difference velocity over the step that made them.
        previous = positions[len(frames) - 1 : -1]
        moved = (predicted - previous) / (stride * frame_time) if count else predicted
        velocities = np.concatenate([system.velocities[frames], moved]).astype(np.float32)
    return dataclasses.replace(
        system,
        positions=positions,
        time=time.astype(np.float64),
        step=step.astype(np.int64),
        velocities=velocities,
    )


@dataclass(frozen=True)
class PredictSummary:
    output: Path
    export: Path | None
    system: str
    given: int
    predicted: int
    start: int
    frame_stride: int

    def line(self) -> str:
        exported = f" and {self.export}" if self.export is not None else ""
        return (
            f"wrote {self.output}{exported}: system {self.system}, {self.given} given frames "
            f"ending at frame {self.start} + {self.predicted} predicted, one every "
            f"{self.frame_stride} stored frames"
        )


def predict_file(
    data: Path,
    checkpoint: Path,
    output: Path,
    *,
    system: str | None = None,
    start: int | None = None,
    steps: int,
    export: Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
) -> PredictSummary:
    """Roll out ``checkpoint`` on one system of ``data`` and write H5MD (and an export).

    Without ``system`` the file's first system is used; without ``start`` the rollout starts at
    the system's last frame (a forecast beyond the data). Output paths are checked before any
    work; on divergence the frames so far are written, then DivergenceError is raised.
    """
    from dynforecast.io.h5md import write_h5md

    check_output_path(output, overwrite=overwrite)
    if export is not None:
        check_output_path(export, overwrite=overwrite)
    torch_device = setup.resolve_device(device)
    trained = load_trained(checkpoint)
    systems = load_systems(data, [system] if system is not None else None)
    chosen = systems[0]
    trained.check_data([chosen], data)
    trained.to(torch_device)
    spec = setup.window_spec(trained.config)
    result = rollout(
        trained.model,
        chosen,
        spec,
        setup.graph_spec(trained.config),
        start=chosen.n_frames - 1 if start is None else start,
        steps=steps,
        node_attr_width=trained.signature.node_attr_width,
        use_velocities=trained.signature.has_velocities,
        device=torch_device,
        dtype=getattr(torch, trained.config.dtype),
    )
    write_h5md(
        output,
        [result.trajectory],
        overwrite=overwrite,
        is_forecast={chosen.name: result.is_forecast},
    )
    if export is not None:
        from dynforecast.io.export import export_trajectory

        export_trajectory(result.trajectory, export, overwrite=overwrite)
    if result.divergence is not None:
        raise DivergenceError(
            f"{output}: rollout diverged: {result.divergence}; wrote the "
            f"{spec.past_frames} given and {result.predicted} predicted frames before it"
        )
    return PredictSummary(
        output=output,
        export=export,
        system=chosen.name,
        given=spec.past_frames,
        predicted=result.predicted,
        start=chosen.n_frames - 1 if start is None else start,
        frame_stride=spec.target_offset,
    )
