"""Windows: T past frames spaced D frames apart plus one target frame, gathered into batches.

A window of system s starting at frame f uses the past frames f, f + D, ..., f + (T-1)D and the
target frame f + (T-1)D + horizon (ESTAG's protocol: horizon = D, so the target is f + TD).

Frames are held in memory (one flat [sum_s F_s*N_s, 3] array) or read on demand from the file
(data/frame_store.py); any set of windows, even from systems of different sizes, is one
fancy-indexing gather: the row of (window w, node i, frame j) is
``offset[s_w] + frame_wj * N_s + i``. No per-window loop, no file access per window.

Shapes: W windows, B windows in a batch, T past frames, V nodes of the batch, E edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dynforecast.data.frame_store import frame_store
from dynforecast.data.graphs import GraphSpec, StaticGraphs, radius_edges
from dynforecast.data.ragged import group_offsets, ragged_positions
from dynforecast.errors import InputError, UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.batch import WindowBatch

#: Relative tolerance when checking that time steps are uniform and equal across systems
#: (loose enough for float32 time stamps of long trajectories, e.g. XTC).
TIME_STEP_RTOL = 1e-3


@dataclass(frozen=True)
class WindowSpec:
    """Which frames make a window.

    Fields:
        past_frames: T, the number of past (input) frames, >= 1.
        spacing: D, frames between consecutive past frames, >= 1.
        horizon: frames from the last past frame to the target; None means ``spacing``.
        anchor_frame: if set, only the window whose LAST past frame is this frame (per system),
            e.g. the N-body standard task (T=1, horizon=10, anchor_frame=30).
    """

    past_frames: int
    spacing: int
    horizon: int | None = None
    anchor_frame: int | None = None

    def __post_init__(self) -> None:
        if self.past_frames < 1:
            raise UsageError(f"expected past_frames >= 1 (got {self.past_frames})")
        if self.spacing < 1:
            raise UsageError(f"expected spacing >= 1 (got {self.spacing})")
        if self.horizon is not None and self.horizon < 1:
            raise UsageError(f"expected horizon >= 1 or None (got {self.horizon})")
        if self.anchor_frame is not None and self.anchor_frame < 0:
            raise UsageError(f"expected anchor_frame >= 0 or None (got {self.anchor_frame})")

    @property
    def target_offset(self) -> int:
        """Frames from the last past frame to the target (``horizon`` resolved)."""
        return self.spacing if self.horizon is None else self.horizon

    @property
    def last_past_offset(self) -> int:
        """Frames from the first to the last past frame: (T-1)D."""
        return (self.past_frames - 1) * self.spacing

    @property
    def span(self) -> int:
        """Frames from the first past frame to the target, inclusive of both."""
        return self.last_past_offset + self.target_offset + 1

    def frame_offsets(self) -> np.ndarray:
        """int64 [T+1]: offsets of the past frames then the target from the first past frame."""
        past = np.arange(self.past_frames, dtype=np.int64) * self.spacing
        return np.append(past, self.last_past_offset + self.target_offset)


#: Named protocols. The N-body standard task is EGNN's frame 30 -> 40 (1000 steps) with
#: velocities; "nbody-multiframe" is dynforecast's own multi-frame variant, never the standard task.
PROTOCOLS: dict[str, WindowSpec] = {
    "md17": WindowSpec(past_frames=10, spacing=10),
    "motion": WindowSpec(past_frames=10, spacing=5),
    "adk": WindowSpec(past_frames=10, spacing=5),
    "nbody-standard": WindowSpec(past_frames=1, spacing=10, horizon=10, anchor_frame=30),
    "nbody-multiframe": WindowSpec(past_frames=10, spacing=1, horizon=10),
}


class WindowIndex:
    """All valid windows of a list of systems: int64 [W, 2] = (system index, first past frame).

    Windows are ordered by system, then by first frame, so window ids of one system are
    contiguous and chronological.
    """

    def __init__(self, frame_counts: Sequence[int], spec: WindowSpec) -> None:
        counts = np.asarray(frame_counts, dtype=np.int64).reshape(-1)
        if counts.size and counts.min() < 0:
            raise ValueError(f"expected non-negative frame counts (got {counts.min()})")
        self.spec = spec
        self.frame_counts = counts
        if spec.anchor_frame is None:
            per_system = np.maximum(counts - spec.span + 1, 0)
            system, start = ragged_positions(per_system)
        else:
            start_frame = spec.anchor_frame - spec.last_past_offset
            fits = (start_frame >= 0) & (start_frame + spec.span <= counts)
            system = np.flatnonzero(fits).astype(np.int64)
            start = np.full(system.size, start_frame, dtype=np.int64)
        self.array = np.stack([system, start], axis=1)

    @classmethod
    def from_systems(cls, systems: Sequence[Trajectory], spec: WindowSpec) -> WindowIndex:
        return cls([s.n_frames for s in systems], spec)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def system(self) -> np.ndarray:
        """int64 [W]: system index of each window."""
        return self.array[:, 0]

    @property
    def start(self) -> np.ndarray:
        """int64 [W]: first past frame of each window."""
        return self.array[:, 1]

    def frames(self, window_ids: np.ndarray | None = None) -> np.ndarray:
        """int64 [W, T+1]: absolute frame numbers of the past frames then the target."""
        start = self.start if window_ids is None else self.start[window_ids]
        return start[:, None] + self.spec.frame_offsets()[None, :]


def _system_time_step(system: Trajectory) -> float:
    """The uniform time between frames of one system; InputError if it is not uniform."""
    if system.n_frames < 2:
        return 0.0
    steps = np.diff(np.asarray(system.time, dtype=np.float64))
    step = float(steps.mean())
    if step <= 0 or np.abs(steps - step).max() > TIME_STEP_RTOL * step:
        raise InputError(
            f"system {system.name!r}: time between frames must be positive and uniform "
            f"(got {steps.min():g}..{steps.max():g} {system.time_unit})"
        )
    return step


class WindowDataset:
    """The windows of some systems, turned into `WindowBatch`es on demand.

    Positions (and velocities if every system has them) are held by a frame store
    (data/frame_store.py): in memory, concatenated frame-major into flat float32 [sum F*N, 3]
    arrays, or, for systems read with ``lazy=True``, in the H5MD file, read block by block
    through a bounded cache; both give bit-identical batches. Static
    graphs (bonds, all pairs) are computed once per system. ``batch(window_ids)`` is then pure
    vectorised indexing; radius graphs are built per window from its last past frame.

    node_attrs are the charges [V, 1] if every system has charges, else [V, 0].
    """

    def __init__(
        self,
        systems: Sequence[Trajectory],
        spec: WindowSpec,
        graph: GraphSpec | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not systems:
            raise ValueError("expected at least one system (got none)")
        self.systems = list(systems)
        self.spec = spec
        self.graph = graph if graph is not None else GraphSpec()
        self.dtype = dtype
        self.windows = WindowIndex.from_systems(self.systems, spec)

        self._n_nodes = np.array([s.n_particles for s in self.systems], dtype=np.int64)
        # In memory, or read on demand from the H5MD file (data/frame_store.py): bit-identical.
        self._positions = frame_store([s.positions for s in self.systems], self._n_nodes)
        has_velocities = all(s.velocities is not None for s in self.systems)
        self._velocities = (
            frame_store([s.velocities for s in self.systems], self._n_nodes)
            if has_velocities
            else None
        )
        self._node_offset = group_offsets(self._n_nodes)
        self._species = np.concatenate(
            [np.asarray(s.species, dtype=np.int64) for s in self.systems]
        )
        has_charges = all(s.charges is not None for s in self.systems)
        self._node_attrs = (
            np.concatenate([np.asarray(s.charges, dtype=np.float32) for s in self.systems])[:, None]
            if has_charges
            else np.zeros((self._species.size, 0), dtype=np.float32)
        )
        self.time_step = self._common_time_step()
        self.past_dt = spec.spacing * self.time_step
        self.target_dt = spec.target_offset * self.time_step
        self._static = (
            StaticGraphs(self.systems, self.graph) if self.graph.kind != "radius" else None
        )

    def _common_time_step(self) -> float:
        """One time step for all systems with windows (batches carry a single past_dt)."""
        with_windows = np.unique(self.windows.system)
        steps = np.array([_system_time_step(self.systems[i]) for i in with_windows])
        if steps.size == 0:
            return 1.0
        if np.abs(steps - steps[0]).max() > TIME_STEP_RTOL * steps[0]:
            odd = int(np.argmax(np.abs(steps - steps[0])))
            names = [self.systems[i].name for i in with_windows[[0, odd]]]
            raise InputError(
                f"systems {names[0]!r} and {names[1]!r} have different time steps "
                f"({steps[0]:g} and {steps[odd]:g}); windows of one data set need one time step"
            )
        return float(steps[0])

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def has_velocities(self) -> bool:
        return self._velocities is not None

    @property
    def frames_out_of_core(self) -> bool:
        """Whether frames are read from the H5MD file on demand (not held in memory)."""
        from dynforecast.data.frame_store import CachedFileFrames

        return isinstance(self._positions, CachedFileFrames)

    @property
    def frames_description(self) -> str:
        """Where the frames are held (memory or the file) and why, for the start-of-run block."""
        from dynforecast.data.frame_store import describe_stores

        stores = [self._positions, *([self._velocities] if self._velocities is not None else [])]
        return describe_stores(stores)

    @property
    def node_attr_dim(self) -> int:
        return int(self._node_attrs.shape[1])

    def batch(self, window_ids: np.ndarray | Sequence[int]) -> WindowBatch:
        """Gather windows into one flat big-graph batch.

        Shapes: window_ids [B] -> WindowBatch with positions [V, T, 3], target [V, 3],
        velocities [V, T, 3] or None, edges [E] offset into the batch's node numbering.
        """
        ids = np.asarray(window_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError("expected at least one window id (got none)")
        if ids.min() < 0 or ids.max() >= len(self.windows):
            raise ValueError(
                f"expected window ids in [0, {len(self.windows)}) (got {ids.min()}..{ids.max()})"
            )
        system = self.windows.system[ids]
        frames = self.windows.frames(ids)  # [B, T+1]
        nodes_per_window = self._n_nodes[system]
        node_window, local_node = ragged_positions(nodes_per_window)  # [V], [V]
        node_system = system[node_window]
        node_frames = frames[node_window]  # [V, T+1]
        coords = self._positions.gather(node_system, node_frames, local_node)  # [V, T+1, 3]
        past = coords[:, :-1]
        global_node = self._node_offset[node_system] + local_node
        window_node_offset = group_offsets(nodes_per_window)

        if self._static is not None:
            src, dst = self._static.gather(system, window_node_offset)
        else:
            src, dst = radius_edges(past[:, -1], node_window, self.graph)

        velocities = None
        if self._velocities is not None:
            past_velocities = self._velocities.gather(node_system, node_frames[:, :-1], local_node)
            velocities = torch.from_numpy(past_velocities).to(self.dtype)
        return WindowBatch(
            positions=torch.from_numpy(np.ascontiguousarray(past)).to(self.dtype),
            species=torch.from_numpy(self._species[global_node]),
            node_attrs=torch.from_numpy(self._node_attrs[global_node]).to(self.dtype),
            edge_src=torch.from_numpy(src),
            edge_dst=torch.from_numpy(dst),
            node_graph=torch.from_numpy(node_window),
            num_graphs=int(ids.size),
            past_dt=self.past_dt,
            target_dt=self.target_dt,
            velocities=velocities,
            target=torch.from_numpy(np.ascontiguousarray(coords[:, -1])).to(self.dtype),
        )
