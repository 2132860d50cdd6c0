"""The batch every model consumes: windows flattened into one "big graph".

This module is the one place that names the tensor fields of a batch with their shapes, dtypes
and units. Shape symbols used throughout the package:

    B windows (graphs) in the batch     T past frames per window
    V nodes of all windows together     E directed edges of all windows together
    H hidden width                      3 space

Nodes of all windows are concatenated and edge indices offset accordingly, so every layer works
on flat tensors with vectorised gathers and scatters; windows may have different node counts.
Edges are directed ``edge_src -> edge_dst``: messages flow from the source to the destination and
are aggregated at the destination (the receiver). Equivalently, ``edge_dst`` is the node whose
neighbourhood the edge belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class WindowBatch:
    """A batch of B windows of T past frames each (see module docstring for symbols).

    Fields:
        positions: float [V, T, 3], past positions in the data's length unit, oldest frame first.
        species: int64 [V], atomic numbers (0 for joints and unknown particles).
        node_attrs: float [V, A], extra invariant per-node scalars (e.g. charges); A may be 0.
        edge_src, edge_dst: int64 [E], directed edges, messages flow src -> dst.
        node_graph: int64 [V], window index in [0, B) of each node.
        num_graphs: B.
        past_dt: time between consecutive past frames (data time unit).
        target_dt: time from the last past frame to the target frame (data time unit).
        velocities: optional float [V, T, 3], velocities at the past frames (length/time unit).
        node_mask: optional bool [V]; False marks padding nodes, which must not influence real ones.
        target: optional float [V, 3], positions of the target frame (for losses; models ignore it).
    """

    positions: Tensor
    species: Tensor
    node_attrs: Tensor
    edge_src: Tensor
    edge_dst: Tensor
    node_graph: Tensor
    num_graphs: int
    past_dt: float = 1.0
    target_dt: float = 1.0
    velocities: Tensor | None = None
    node_mask: Tensor | None = None
    target: Tensor | None = None

    def __post_init__(self) -> None:
        v = self.positions.shape[0]
        if self.positions.dim() != 3 or self.positions.shape[2] != 3:
            raise ValueError(
                f"expected positions of shape [V, T, 3] (got {tuple(self.positions.shape)})"
            )
        if self.species.shape != (v,):
            raise ValueError(f"expected species of shape ({v},) (got {tuple(self.species.shape)})")
        if self.node_attrs.dim() != 2 or self.node_attrs.shape[0] != v:
            raise ValueError(
                f"expected node_attrs of shape [{v}, A] (got {tuple(self.node_attrs.shape)})"
            )
        if self.edge_src.shape != self.edge_dst.shape or self.edge_src.dim() != 1:
            raise ValueError(
                f"expected edge_src and edge_dst of equal shape [E] "
                f"(got {tuple(self.edge_src.shape)} and {tuple(self.edge_dst.shape)})"
            )
        if self.node_graph.shape != (v,):
            raise ValueError(
                f"expected node_graph of shape ({v},) (got {tuple(self.node_graph.shape)})"
            )
        if self.velocities is not None and self.velocities.shape != self.positions.shape:
            raise ValueError(
                f"expected velocities of shape {tuple(self.positions.shape)} "
                f"(got {tuple(self.velocities.shape)})"
            )
        if self.node_mask is not None and self.node_mask.shape != (v,):
            raise ValueError(
                f"expected node_mask of shape ({v},) (got {tuple(self.node_mask.shape)})"
            )
        if self.target is not None and self.target.shape != (v, 3):
            raise ValueError(f"expected target of shape ({v}, 3) (got {tuple(self.target.shape)})")
        if self.past_dt <= 0 or self.target_dt <= 0:
            raise ValueError(
                f"expected positive past_dt and target_dt (got {self.past_dt}, {self.target_dt})"
            )

    @property
    def num_nodes(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[1])

    @property
    def num_edges(self) -> int:
        return int(self.edge_src.shape[0])

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> WindowBatch:
        """Move every tensor to ``device``; floating tensors also to ``dtype`` if given."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                float_dtype = dtype if (dtype is not None and value.is_floating_point()) else None
                changes[f.name] = value.to(device=device, dtype=float_dtype)
        return replace(self, **changes)

    def replace(self, **changes: object) -> WindowBatch:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)
