"""Batched autoregressive rollout: R rollouts (of one or several systems) advanced together.

`predict` rolls out one start of one system; `evaluate --rollout` rolls out M starts of the
chosen split at once. Both use `advance` here, so an evaluation measures exactly the forecast
`predict` writes.

Frame arithmetic (`RolloutPlan`): a model maps T past frames spaced D apart to the frame H
(``horizon``) after the last one. The rollout works on the grid of frames spaced g = gcd(D, H)
apart (g = H when T = 1) ending at the last given frame: the frame at grid point u is predicted
from the window ending at u - H, whose frames lie on the grid. The m = H / g windows ending at
the last m known grid points only use known frames, so each rollout step predicts m frames at
once (for ESTAG's protocols, H = D: m = 1; for "nbody-multiframe", T = 10, D = 1, H = 10: ten
frames per step). The rollout needs (T - 1) D / g + m given grid frames.

Layout: the nodes of all R rollouts are concatenated (rollout r owns the rows of its system's N_r
particles), so the history is one tensor [frames, V, 3] and one rollout step is ONE batch of
m x R windows (window j * R + r = copy j of rollout r), whatever R is.

Velocities, for models that read them: the data's at the given frames, then for each predicted
frame the finite difference (x_u - x_{u-g}) / (g * frame time).

Rigid bones (skeletons; `dynforecast.rigid_bones`): with ``bones`` given, every predicted frame
is projected onto the hierarchy's bone lengths before the guard and before it becomes input.

Divergence guard (per rollout): a predicted frame with a non-finite coordinate, or with a
particle farther than ``divergence_factor`` x the initial extent from the initial centroid
(extent = largest distance of a given-frame particle from the centroid of the last given frame),
stops that rollout. Its later frames hold its last good frame (so the batch stays finite) and
`RolloutResult.predicted` says how many of its frames are real; the others carry on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dynforecast.data.graphs import GraphSpec, StaticGraphs, radius_edges
from dynforecast.data.ragged import group_offsets
from dynforecast.data.windows import WindowSpec
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch
from dynforecast.ops.scatter import scatter_sum
from dynforecast.rigid_bones import RigidBones

#: A predicted particle farther than this many initial extents from the initial centroid stops
#: the rollout (an N-body system that flies apart legitimately stays well inside it).
DIVERGENCE_FACTOR = 10.0

#: Why a rollout stopped (`RolloutResult.stop_reason`).
RUNNING, NON_FINITE, RUNAWAY = 0, 1, 2


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

    @property
    def lead(self) -> int:
        """Frames from the first given grid frame to the last one: (given - 1) g."""
        return (self.given - 1) * self.grid

    def given_frames(self, start: int, n_frames: int) -> np.ndarray:
        """Frame numbers of the given grid frames ending at ``start``; UsageError if missing."""
        if not self.lead <= start < n_frames:
            raise UsageError(
                f"--start {start}: the model needs {self.given} given frames spaced "
                f"{self.grid} apart ending at --start; choose a frame in {self.lead}..{n_frames - 1}"
            )
        return start - self.lead + self.grid * np.arange(self.given)

    def window_frames(self, known: int) -> np.ndarray:
        """Grid indices [m, T] of the windows predicting grid points known .. known + m - 1."""
        ends = known - self.windows_per_step + np.arange(self.windows_per_step)
        offsets = self.stride * np.arange(self.past_frames - 1, -1, -1)
        return ends[:, None] - offsets[None, :]


class RolloutBatcher:
    """Builds the `WindowBatch` of m copies of R rollouts without a data set.

    ``systems[rollout_system[r]]`` is rollout r's system. Nodes are window-major as in
    `dynforecast.data.windows.WindowDataset` (window j * R + r). Static graphs (bonds, all pairs)
    are laid out once per copy count; radius graphs come from each window's last frame.
    """

    def __init__(
        self,
        systems: Sequence[Trajectory],
        rollout_system: np.ndarray,
        graph: GraphSpec,
        *,
        node_attr_width: int,
        past_dt: float,
        target_dt: float,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.rollout_system = np.asarray(rollout_system, dtype=np.int64).reshape(-1)
        counts = np.array([s.n_particles for s in systems], dtype=np.int64)
        self.rollout_nodes = counts[self.rollout_system]  # [R]
        self.n_rollouts = int(self.rollout_system.size)
        self.n_nodes = int(self.rollout_nodes.sum())
        self.graph, self.device = graph, device
        self.past_dt, self.target_dt = past_dt, target_dt
        species = np.concatenate([np.asarray(s.species, dtype=np.int64) for s in systems])
        node_offset = group_offsets(counts)
        node_rows = np.repeat(node_offset[self.rollout_system], self.rollout_nodes) + (
            np.arange(self.n_nodes)
            - np.repeat(group_offsets(self.rollout_nodes), self.rollout_nodes)
        )
        self.node_rollout = torch.as_tensor(
            np.repeat(np.arange(self.n_rollouts), self.rollout_nodes), device=device
        )
        self.species = torch.as_tensor(species[node_rows], device=device)
        attrs = np.zeros((self.n_nodes, 0), dtype=np.float32)
        if node_attr_width and all(s.charges is not None for s in systems):
            charges = np.concatenate([np.asarray(s.charges, np.float32) for s in systems])
            attrs = charges[node_rows][:, None]
        self.node_attrs = torch.as_tensor(attrs, device=device, dtype=dtype)
        self._static = StaticGraphs(systems, graph) if graph.kind != "radius" else None
        self._edges: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _static_edges(self, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
        if copies not in self._edges:
            assert self._static is not None
            window_system = np.tile(self.rollout_system, copies)
            offsets = group_offsets(np.tile(self.rollout_nodes, copies))
            src, dst = self._static.gather(window_system, offsets)
            self._edges[copies] = (_long(src, self.device), _long(dst, self.device))
        return self._edges[copies]

    def __call__(self, positions: torch.Tensor, velocities: torch.Tensor | None) -> WindowBatch:
        """Shapes: positions [m, V, T, 3], velocities [m, V, T, 3] or None -> m R windows."""
        copies = positions.shape[0]
        windows = copies * self.n_rollouts
        node_graph = torch.arange(copies, device=self.device).repeat_interleave(
            self.n_nodes
        ) * self.n_rollouts + self.node_rollout.repeat(copies)
        flat = positions.reshape(copies * self.n_nodes, *positions.shape[2:])
        if self._static is not None:
            src, dst = self._static_edges(copies)
        else:
            src, dst = radius_edges(flat[:, -1], node_graph, self.graph)  # on the device
        return WindowBatch(
            positions=flat,
            species=self.species.repeat(copies),
            node_attrs=self.node_attrs.repeat(copies, 1),
            edge_src=src,
            edge_dst=dst,
            node_graph=node_graph,
            num_graphs=windows,
            past_dt=self.past_dt,
            target_dt=self.target_dt,
            velocities=None if velocities is None else velocities.reshape(flat.shape),
        )


class SingleSystemBatcher(RolloutBatcher):
    """`RolloutBatcher` of one rollout of one system: ``positions [W, N, T, 3]`` -> W windows."""

    def __init__(self, system: Trajectory, graph: GraphSpec, **options: object) -> None:
        super().__init__([system], np.zeros(1, dtype=np.int64), graph, **options)  # type: ignore[arg-type]


def _long(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64), device=device)


@dataclass(frozen=True)
class RolloutResult:
    """R rollouts advanced together.

    Fields:
        positions: [G + K, V, 3], the G given grid frames then K predicted ones (nodes of all
            rollouts concatenated, `RolloutBatcher` layout).
        velocities: the same shape, or None when the model reads none.
        predicted: int64 [R], frames of each rollout predicted before its guard stopped it
            (K for rollouts that ran to the end; later frames hold the last good one).
        stop_reason: int8 [R], RUNNING, NON_FINITE or RUNAWAY.
        stop_distance: float64 [R], the runaway distance (NaN otherwise).
        extent: float64 [R], each rollout's initial extent.
        divergence_factor: the guard's factor.
        steps: K.
    """

    positions: torch.Tensor
    velocities: torch.Tensor | None
    predicted: np.ndarray
    stop_reason: np.ndarray
    stop_distance: np.ndarray
    extent: np.ndarray
    divergence_factor: float
    steps: int

    def divergence(self, r: int) -> str | None:
        """Why rollout r stopped early, in words, or None."""
        reason = int(self.stop_reason[r])
        if reason == RUNNING:
            return None
        what = (
            "non-finite coordinates"
            if reason == NON_FINITE
            else f"a particle {self.stop_distance[r]:.4g} from the initial centroid, beyond "
            f"{self.divergence_factor:g} x the initial extent {self.extent[r]:.4g}"
        )
        return f"step {int(self.predicted[r]) + 1} of {self.steps} gave {what}"


@torch.no_grad()
def advance(
    model: ForecastModel,
    batcher: RolloutBatcher,
    plan: RolloutPlan,
    given: torch.Tensor,
    given_velocities: torch.Tensor | None,
    *,
    steps: int,
    grid_dt: float,
    divergence_factor: float = DIVERGENCE_FACTOR,
    bones: RigidBones | None = None,
) -> RolloutResult:
    """Predict ``steps`` grid frames of every rollout after its given frames (module docstring).

    ``bones`` (skeletons): project each predicted frame onto its bone lengths (`RigidBones`).

    Shapes: given [G, V, 3] (G = plan.given), given_velocities [G, V, 3] or None. A loop over
    rollout steps is inherent; each step is one batch of m x R windows over all nodes. The loop
    ends early once every rollout has been stopped by the guard.
    """
    if steps < 1:
        raise UsageError(f"--steps {steps}: expected at least 1")
    device, dtype = given.device, given.dtype
    m, n_given, n_rollouts = plan.windows_per_step, given.shape[0], batcher.n_rollouts
    node_rollout = batcher.node_rollout
    total = n_given + m * -(-steps // m)
    history = torch.empty(total, batcher.n_nodes, 3, device=device, dtype=dtype)
    history[:n_given] = given
    velocity = None
    if given_velocities is not None:
        velocity = torch.empty_like(history)
        velocity[:n_given] = given_velocities
    count = scatter_sum(torch.ones_like(node_rollout, dtype=dtype), node_rollout, n_rollouts)
    centroid = scatter_sum(history[n_given - 1], node_rollout, n_rollouts) / count[:, None]
    spread = (history[:n_given] - centroid[node_rollout]).norm(dim=-1).amax(dim=0)  # [V]
    extent = _segment_max(spread, node_rollout, n_rollouts).clamp_min(1e-12)  # [R]
    bound = divergence_factor * extent

    predicted = np.full(n_rollouts, steps, dtype=np.int64)
    reason = np.zeros(n_rollouts, dtype=np.int8)
    stop_distance = np.full(n_rollouts, np.nan)
    alive = torch.ones(n_rollouts, dtype=torch.bool, device=device)
    known = n_given
    model.eval()
    while known - n_given < steps and bool(alive.any()):
        index = torch.as_tensor(plan.window_frames(known), device=device)  # [m, T]
        positions = history[index].permute(0, 2, 1, 3)  # [m, V, T, 3]
        velocities = None if velocity is None else velocity[index].permute(0, 2, 1, 3)
        new = model(batcher(positions, velocities)).to(dtype).reshape(m, -1, 3)
        if bones is not None:
            new = bones.project(new)
        # Per (frame j, rollout r) through one segment index j * R + r over all m x V nodes.
        segment = (torch.arange(m, device=device)[:, None] * n_rollouts + node_rollout).flatten()
        node_distance = (new - centroid[node_rollout]).norm(dim=-1).flatten()  # NaN stays NaN
        distance = _segment_max(node_distance, segment, m * n_rollouts).view(m, n_rollouts)
        nonfinite_nodes = (~torch.isfinite(new).all(dim=-1)).flatten().to(dtype)
        finite = scatter_sum(nonfinite_nodes, segment, m * n_rollouts).view(m, n_rollouts) == 0
        wanted = min(m, steps - (known - n_given))
        bad = ~finite | ~(distance <= bound[None, :])
        bad[wanted:] = False
        bad &= alive[None, :]
        # Frames up to the first bad one of each live rollout are kept; the rest hold the last
        # good frame (one pass over the m frames of this step, never over rollouts).
        stopped = bad.cumsum(dim=0) > 0  # [m, R]
        stopped |= ~alive[None, :]
        previous = history[known - 1]
        for j in range(m):
            keep = ~stopped[j][node_rollout][:, None]
            new[j] = torch.where(keep, new[j], previous)
            previous = new[j]
        history[known : known + m] = new
        if velocity is not None:
            before = torch.cat([history[known - 1 : known], new[:-1]])
            velocity[known : known + m] = (new - before) / grid_dt
        newly = bad.any(dim=0)
        if bool(newly.any()):
            first = bad.int().argmax(dim=0)  # [R]
            for_cpu = newly.cpu().numpy()
            first_np = first.cpu().numpy()
            predicted[for_cpu] = known - n_given + first_np[for_cpu]
            at = first.clamp_max(m - 1)
            nonfinite = ~finite[at, torch.arange(n_rollouts, device=device)]
            reason[for_cpu] = np.where(nonfinite.cpu().numpy()[for_cpu], NON_FINITE, RUNAWAY)
            dist = distance[at, torch.arange(n_rollouts, device=device)].double().cpu().numpy()
            runaway = for_cpu & (reason == RUNAWAY)
            stop_distance[runaway] = dist[runaway]
            alive &= ~newly
        known += m
    history = history[: n_given + steps]
    if velocity is not None:
        velocity = velocity[: n_given + steps]
    return RolloutResult(
        positions=history,
        velocities=velocity,
        predicted=predicted,
        stop_reason=reason,
        stop_distance=stop_distance,
        extent=extent.double().cpu().numpy(),
        divergence_factor=divergence_factor,
        steps=steps,
    )


def _segment_max(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Maximum of ``values`` [V] per segment [size]; NaN anywhere in a segment gives NaN."""
    out = torch.full((size,), -math.inf, dtype=values.dtype, device=values.device)
    out = out.scatter_reduce(0, index, values, reduce="amax", include_self=True)
    has_nan = scatter_sum(torch.isnan(values).to(values.dtype), index, size) > 0
    return torch.where(has_nan, torch.full_like(out, math.nan), out)
