"""The neighbourhoods SAKE reduces over: an edge list sorted by receiver, with its reductions.

`build_sake_graph` drops self loops and edges that touch padding nodes and sorts the edges by
receiver (``dst``) once per forward; every layer then reuses it. When every node ends up with the
same number k of incoming edges (all pairs of equal-size systems: N-body, skeletons), the sorted
edges form a regular [V, k] block and the reductions below use reshapes, a dense softmax and one
batched matmul instead of scatters. Otherwise they use the shared scatter ops. Both layouts give
the same numbers (tested); which one runs is decided from the graph alone, never silently by size.

Self pairs are not edges. In SAKE the pair (i, i) has u_ii = 0 and no semantic weight, so it only
counts in the denominators of the spatial and velocity means: n_i = in-degree + 1, which is N
for all pairs, as in the reference.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dynforecast.ops.scatter import scatter_count, scatter_softmax, scatter_sum


class SakeGraph(NamedTuple):
    """Edges sorted by receiver, without self loops and padding.

    Fields:
        src: int64 [E], neighbour j of each edge.
        dst: int64 [E], receiver i of each edge (sorted ascending).
        inv_count: float [V, 1], 1 / n_i with n_i = in-degree + 1 (the self pair counted).
        inv_degree: float [V, 1], 1 / max(in-degree, 1) (uniform weights over real neighbours).
        regular_degree: k > 0 when every node has exactly k incoming edges, else 0.
    """

    src: Tensor
    dst: Tensor
    inv_count: Tensor
    inv_degree: Tensor
    regular_degree: int = 0

    @property
    def num_nodes(self) -> int:
        return int(self.inv_count.shape[0])

    def receiver_sum(self, values: Tensor) -> Tensor:
        """Σ over each receiver's incoming edges. Shapes: [E, *S] -> [V, *S]."""
        if self.regular_degree:
            return values.view(self.num_nodes, self.regular_degree, *values.shape[1:]).sum(1)
        return scatter_sum(values, self.dst, self.num_nodes)

    def receiver_softmax(self, logits: Tensor) -> Tensor:
        """Softmax over each receiver's incoming edges. Shapes: [E, *S] -> [E, *S]."""
        if self.regular_degree:
            blocks = logits.view(self.num_nodes, self.regular_degree, *logits.shape[1:])
            return torch.softmax(blocks, dim=1).view(logits.shape)
        return scatter_softmax(logits, self.dst, self.num_nodes)

    def receiver_pair_sum(self, left: Tensor, right: Tensor, product: Tensor) -> Tensor:
        """Σ_j vec(left_ij ⊗ right_ij) flattened row-major, given ``product`` = that per edge.

        On a regular layout one batched matmul of the factors (reads [E, A] and [E, B] instead of
        [E, A·B], and its backward is as light); else a scatter of ``product``
        (= `dynforecast.ops.outer.row_outer` of the factors).
        Shapes: [E, A], [E, B], [E, A·B] -> [V, A·B].
        """
        if self.regular_degree:
            v, k = self.num_nodes, self.regular_degree
            blocks = torch.bmm(left.reshape(v, k, -1).transpose(1, 2), right.reshape(v, k, -1))
            return blocks.reshape(v, -1)
        return scatter_sum(product, self.dst, self.num_nodes)

    def receiver_outer_sum(self, coefficients: Tensor, vectors: Tensor) -> Tensor:
        """S_i = Σ_j c_ij u_ijᵀ without an [E, C, 3] tensor: one batched matmul on a regular
        layout, else one scatter per Cartesian axis. Shapes: [E, C], [E, 3] -> [V, 3, C]."""
        v, c = self.num_nodes, coefficients.shape[1]
        if self.regular_degree:
            k = self.regular_degree
            return torch.bmm(vectors.view(v, k, 3).transpose(1, 2), coefficients.view(v, k, c))
        axes = [
            scatter_sum(coefficients * vectors[:, axis : axis + 1], self.dst, v)
            for axis in range(3)
        ]
        return torch.stack(axes, dim=1)


def build_sake_graph(
    edge_src: Tensor, edge_dst: Tensor, num_nodes: int, node_mask: Tensor | None, dtype: torch.dtype
) -> SakeGraph:
    """Drop self loops and padding edges, sort by receiver, count neighbours, detect regularity.

    Shapes: edge_src, edge_dst [E] -> SakeGraph with E' <= E edges; node_mask [V] bool or None.
    """
    keep = edge_src != edge_dst
    if node_mask is not None:
        keep = keep & node_mask[edge_src] & node_mask[edge_dst]
    src, dst = edge_src[keep], edge_dst[keep]
    order = torch.argsort(dst, stable=True)
    src, dst = src.index_select(0, order), dst.index_select(0, order)
    degree = scatter_count(dst, num_nodes, dtype)
    regular = 0
    if num_nodes and dst.numel():
        low, high = torch.stack([degree.min(), degree.max()]).tolist()  # one device sync
        regular = int(low) if low == high else 0
    degree = degree.unsqueeze(1)
    return SakeGraph(src, dst, 1.0 / (degree + 1.0), 1.0 / degree.clamp_min(1.0), regular)
