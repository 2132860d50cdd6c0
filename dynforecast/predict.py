"""`dynforecast predict`: autoregressive rollout of a trained model from given frames.

A model maps T past frames spaced D apart to the frame ``horizon`` (H) after the last one. The
rollout works on the grid of frames spaced g = gcd(D, H) apart (g = H when T = 1) ending at
``start``: the frame at grid point u is predicted from the window ending at u - H, whose frames
lie on the grid. The m = H / g windows ending at the last m known grid points only use known
frames, so each rollout step predicts m frames at once, as ONE batch of m windows, and appends
them (for ESTAG's protocols, H = D: m = 1, one frame per step; for "nbody-multiframe", T = 10,
D = 1, H = 10: ten frames per step). The rollout needs (T - 1) D / g + m given grid frames.

Velocities, for models that read them: the data's velocities at the given frames, then for each
predicted frame the finite difference (x_u - x_{u-g}) / (g * frame time) of the grid frames — the
mean velocity over the last grid interval, in length per time unit like the data's.

Divergence guard: a predicted frame with a non-finite coordinate, or with a particle farther than
`DIVERGENCE_FACTOR` x the initial extent from the initial centroid (extent = largest distance of
a given-frame particle from the centroid of the last given frame), stops the rollout. The frames
before it are written first, then `DivergenceError` (exit 6) is raised.

The output is the system's `Trajectory` copied with new positions, time, step and velocities, so
names, bonds and writer parameters carry over and exports are valid files of their format; the
H5MD file marks each frame in ``observables/<system>/is_forecast`` (0 given, 1 predicted).

Unit cells: the given frames keep their boxes, and every predicted frame gets the last given
frame's box. This assumes constant volume over the forecast: the models predict positions only,
and do not use periodic boundaries, so nothing predicts how an NPT box would change. It keeps
the forecast a periodic system (a PDB export writes CRYST1 in every MODEL).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynforecast.data.graphs import GraphSpec, radius_edges, system_edges
from dynforecast.data.loading import load_systems
from dynforecast.data.windows import WindowSpec
from dynforecast.errors import DivergenceError, UsageError
from dynforecast.io.atomic import check_output_path
from dynforecast.io.export import check_export_target
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch
from dynforecast.train import setup
from dynforecast.train.trained import load_trained

#: A predicted particle farther than this many initial extents from the initial centroid stops
#: the rollout (an N-body system that flies apart legitimately stays well inside it).
DIVERGENCE_FACTOR = 10.0


@dataclass(frozen=True)
class RolloutPlan:
    """Frame arithmetic of a rollout (module docstring): grid spacing g, windows per step m,
    window stride on the grid r = D / g, and the number of given grid frames."""

    grid: int
    windows_per_step: int
    stride: int
    past_frames: int

    @classmethod
    def for_spec(cls, spec: WindowSpec) -> RolloutPlan:
        horizon = spec.target_offset
        grid = horizon if spec.past_frames == 1 else math.gcd(spec.spacing, horizon)
        stride = 1 if spec.past_frames == 1 else spec.spacing // grid
        return cls(grid, horizon // grid, stride, spec.past_frames)

    @property
    def given(self) -> int:
        return (self.past_frames - 1) * self.stride + self.windows_per_step

    def given_frames(self, start: int, n_frames: int) -> np.ndarray:
        """Frame numbers of the given grid frames ending at ``start``; UsageError if missing."""
        first = (self.given - 1) * self.grid
        if not first <= start < n_frames:
            raise UsageError(
                f"--start {start}: the model needs {self.given} given frames spaced "
                f"{self.grid} apart ending at --start; choose a frame in {first}..{n_frames - 1}"
            )
        return start - first + self.grid * np.arange(self.given)

    def window_frames(self, known: int) -> np.ndarray:
        """Grid indices [m, T] of the windows predicting grid points known .. known + m - 1."""
        ends = known - self.windows_per_step + np.arange(self.windows_per_step)
        offsets = self.stride * np.arange(self.past_frames - 1, -1, -1)
        return ends[:, None] - offsets[None, :]


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
    """Builds the `WindowBatch` of W windows of one system without a data set.

    Nodes are window-major as in `dynforecast.data.windows.WindowDataset`. Static graphs (bonds,
    all pairs) are computed once; radius graphs from each window's last frame.
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
        self.n_particles, self.graph, self.device = n, graph, device
        self.past_dt, self.target_dt = past_dt, target_dt
        self.species = torch.as_tensor(np.asarray(system.species, dtype=np.int64), device=device)
        attrs = np.zeros((n, 0), dtype=np.float32)
        if node_attr_width and system.charges is not None:
            attrs = np.asarray(system.charges, dtype=np.float32)[:, None]
        self.node_attrs = torch.as_tensor(attrs, device=device, dtype=dtype)
        self.static = None
        if graph.kind != "radius":
            src, dst = system_edges(system, graph)
            self.static = (_long(src, device), _long(dst, device))

    def __call__(self, positions: torch.Tensor, velocities: torch.Tensor | None) -> WindowBatch:
        """Shapes: positions [W, N, T, 3], velocities [W, N, T, 3] or None -> W windows."""
        windows, n = positions.shape[0], self.n_particles
        node_graph = torch.arange(windows, device=self.device).repeat_interleave(n)
        flat = positions.reshape(windows * n, *positions.shape[2:])
        if self.static is not None:
            shift = (torch.arange(windows, device=self.device) * n).repeat_interleave(
                self.static[0].shape[0]
            )
            src = self.static[0].repeat(windows) + shift
            dst = self.static[1].repeat(windows) + shift
        else:
            last = flat[:, -1].detach().cpu().numpy()
            found = radius_edges(last, node_graph.cpu().numpy(), self.graph)
            src, dst = _long(found[0], self.device), _long(found[1], self.device)
        return WindowBatch(
            positions=flat,
            species=self.species.repeat(windows),
            node_attrs=self.node_attrs.repeat(windows, 1),
            edge_src=src,
            edge_dst=dst,
            node_graph=node_graph,
            num_graphs=windows,
            past_dt=self.past_dt,
            target_dt=self.target_dt,
            velocities=None if velocities is None else velocities.reshape(flat.shape),
        )


def _long(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64), device=device)


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
    """Predict ``steps`` grid frames after the given frames ending at ``start`` (module docstring).

    A loop over rollout steps is inherent; each step is one batch of m windows over all nodes.
    """
    if steps < 1:
        raise UsageError(f"--steps {steps}: expected at least 1")
    if use_velocities and system.velocities is None:
        raise UsageError(f"system {system.name!r}: the model needs velocities and it has none")
    device = device or torch.device("cpu")
    plan = RolloutPlan.for_spec(spec)
    frames = plan.given_frames(start, system.n_frames)
    frame_time = system.time_step if system.n_frames > 1 else 1.0
    grid_dt = plan.grid * frame_time
    batcher = SingleSystemBatcher(
        system,
        graph,
        node_attr_width=node_attr_width,
        past_dt=spec.spacing * frame_time,
        target_dt=spec.target_offset * frame_time,
        device=device,
        dtype=dtype,
    )
    m, n_given = plan.windows_per_step, len(frames)
    total = n_given + m * -(-steps // m)
    history = torch.empty(total, system.n_particles, 3, device=device, dtype=dtype)
    history[:n_given] = torch.as_tensor(system.positions[frames], device=device, dtype=dtype)
    velocity = None
    if use_velocities:
        velocity = torch.empty_like(history)
        velocity[:n_given] = torch.as_tensor(
            system.velocities[frames],  # type: ignore[index]
            device=device,
            dtype=dtype,
        )
    centroid = history[n_given - 1].mean(dim=0)
    extent = float((history[:n_given] - centroid).norm(dim=-1).max().clamp_min(1e-12))
    bound = divergence_factor * extent

    known, divergence = n_given, None
    model.eval()
    while known - n_given < steps and divergence is None:
        index = torch.as_tensor(plan.window_frames(known), device=device)  # [m, T]
        positions = history[index].permute(0, 2, 1, 3)  # [m, N, T, 3]
        velocities = None if velocity is None else velocity[index].permute(0, 2, 1, 3)
        new = model(batcher(positions, velocities)).to(dtype).reshape(m, -1, 3)
        distance = (new - centroid).norm(dim=-1).amax(dim=1)  # [m]; NaN stays NaN
        finite = torch.isfinite(new).flatten(1).all(dim=1)
        wanted = min(m, steps - (known - n_given))
        bad = (~finite | ~(distance <= bound))[:wanted]
        good = int(bad.int().argmax()) if bool(bad.any()) else wanted
        history[known : known + good] = new[:good]
        if velocity is not None and good:
            previous = history[known - 1 : known + good - 1]
            velocity[known : known + good] = (new[:good] - previous) / grid_dt
        if good < wanted:
            what = (
                "non-finite coordinates"
                if not bool(finite[good])
                else f"a particle {float(distance[good]):.4g} from the initial centroid, beyond "
                f"{divergence_factor:g} x the initial extent {extent:.4g}"
            )
            divergence = f"step {known - n_given + good + 1} of {steps} gave {what}"
        known += good

    predicted = known - n_given
    positions_out = history[:known].cpu().numpy()
    velocities_out = None if velocity is None else velocity[:known].cpu().numpy()
    trajectory = _forecast_trajectory(system, frames, positions_out, velocities_out, plan.grid)
    flags = np.concatenate([np.zeros(n_given, np.int8), np.ones(predicted, np.int8)])
    return Rollout(trajectory, flags, predicted, divergence)


def _forecast_trajectory(
    system: Trajectory,
    frames: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None,
    grid: int,
) -> Trajectory:
    """The system with the given frames then the predicted ones, evenly continued in time/step.

    Velocities: the rollout's own where it tracked them; else, if the system has velocities,
    the data's at the given frames and finite differences over one grid interval afterwards.
    Box: the given frames' cells, then the last given one repeated (constant volume).
    """
    count = positions.shape[0] - len(frames)
    ahead = np.arange(1, count + 1) * grid
    last = int(frames[-1])
    frame_time = system.time_step
    step_delta = int(system.step[1] - system.step[0]) if system.n_frames > 1 else 1
    time = np.concatenate([system.time[frames], system.time[last] + ahead * frame_time])
    step = np.concatenate([system.step[frames], system.step[last] + ahead * step_delta])
    if velocities is None and system.velocities is not None:
        moved = np.diff(positions[len(frames) - 1 :], axis=0) / (grid * frame_time)
        velocities = np.concatenate([system.velocities[frames], moved])
    box = None
    if system.box is not None:
        held = np.broadcast_to(system.box[last], (count, 3, 3))
        box = np.concatenate([system.box[frames], held]).astype(np.float32)
    return dataclasses.replace(
        system,
        positions=positions.astype(np.float32),
        time=time.astype(np.float64),
        step=step.astype(np.int64),
        velocities=None if velocities is None else velocities.astype(np.float32),
        box=box,
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
        grid = (
            "every stored frame"
            if self.frame_stride == 1
            else f"one every {self.frame_stride} stored frames"
        )
        return (
            f"wrote {self.output}{exported}: system {self.system}, {self.given} given frames "
            f"ending at frame {self.start} + {self.predicted} predicted, {grid}"
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
        check_export_target(export, overwrite=overwrite)
    torch_device = setup.resolve_device(device)
    trained = load_trained(checkpoint)
    systems = load_systems(data, [system] if system is not None else None)
    chosen = systems[0]
    if export is not None:  # the format's preconditions, before anything is written
        check_export_target(export, overwrite=overwrite, trajectory=chosen)
    trained.check_data([chosen], data)
    trained.to(torch_device)
    spec = setup.window_spec(trained.config)
    plan = RolloutPlan.for_spec(spec)
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

        export_trajectory(
            result.trajectory, export, overwrite=overwrite, is_forecast=result.is_forecast
        )
    if result.divergence is not None:
        raise DivergenceError(
            f"{output}: rollout diverged: {result.divergence}; wrote the "
            f"{plan.given} given and {result.predicted} predicted frames before it"
        )
    return PredictSummary(
        output=output,
        export=export,
        system=chosen.name,
        given=plan.given,
        predicted=result.predicted,
        start=chosen.n_frames - 1 if start is None else start,
        frame_stride=plan.grid,
    )
