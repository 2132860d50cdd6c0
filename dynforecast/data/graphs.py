"""The edges a model's messages travel along: bonds + k-hop, a radius cutoff, or all pairs.

Edges are directed ``src -> dst`` (messages flow from src and are aggregated at dst, see
models/batch.py). Bond and all-pairs graphs are symmetric, depend only on the topology and are
computed once per distinct topology; radius graphs depend on the coordinates and are built per
window from its last past frame, for a whole batch in one neighbour-list call (vesin).

Shapes: N nodes of one system, V nodes of a batch, B windows, E edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from dynforecast.data.radius_graph import batch_radius_edges, radius_edges_numpy
from dynforecast.data.ragged import group_offsets, ragged_positions
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory

GRAPH_KINDS = ("bonds", "radius", "all_pairs")


@dataclass(frozen=True)
class GraphSpec:
    """Which edges a window gets.

    Fields:
        kind: "bonds" (the file's bonds or bones plus neighbours up to ``hops`` bonds apart),
            "radius" (pairs closer than ``cutoff`` in the last past frame) or "all_pairs".
        hops: for "bonds": 1 = bonds only, 2 = bonds + 2-hop pairs (ESTAG's MD17 and motion
            graphs), and so on.
        cutoff: for "radius": pairs at distance < cutoff (data length unit) are connected.
        max_neighbours: for "radius": keep only the nearest k sources of every destination node
            (bounds the edge count of dense systems; the graph may then be asymmetric).
    """

    kind: str = "bonds"
    hops: int = 2
    cutoff: float | None = None
    max_neighbours: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in GRAPH_KINDS:
            raise UsageError(
                f"graph.kind must be one of {', '.join(GRAPH_KINDS)} (got {self.kind!r})"
            )
        if self.hops < 1:
            raise UsageError(f"graph.hops must be >= 1 (got {self.hops})")
        if self.kind == "radius" and (self.cutoff is None or not self.cutoff > 0):
            raise UsageError(
                f"graph.kind=radius needs a positive graph.cutoff (got {self.cutoff}); "
                "set e.g. --set graph.cutoff=6.0"
            )
        if self.max_neighbours is not None and self.max_neighbours < 1:
            raise UsageError(f"graph.max_neighbours must be >= 1 (got {self.max_neighbours})")


def _sorted_edges(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) int64 ordered by destination, then source: a deterministic edge order."""
    order = np.lexsort((src, dst))
    return src[order].astype(np.int64), dst[order].astype(np.int64)


def bond_hop_edges(bonds: np.ndarray, n_nodes: int, hops: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges between nodes at most ``hops`` bonds apart (both directions, no self loops).

    Pairs reachable in exactly k steps are found by sparse boolean matrix powers of the
    adjacency matrix (ESTAG's A and A·A for hops=2); a pair that is both bonded and two bonds
    apart (a 3-ring) appears once. Shapes: bonds [M, 2] -> (src [E], dst [E]).
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    ones = np.ones(2 * len(bonds), dtype=np.int32)
    rows = np.concatenate([bonds[:, 0], bonds[:, 1]])
    cols = np.concatenate([bonds[:, 1], bonds[:, 0]])
    adjacency = sparse.csr_matrix((ones, (rows, cols)), shape=(n_nodes, n_nodes))
    adjacency.data[:] = 1
    reach = adjacency.copy()
    walk = adjacency
    for _ in range(hops - 1):  # a loop over hop counts, not over nodes
        walk = walk @ adjacency
        walk.data[:] = 1
        reach = reach + walk
    reach = reach.tocoo()
    keep = reach.row != reach.col
    return _sorted_edges(reach.row[keep], reach.col[keep])


def all_pairs_edges(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """All N(N-1) ordered pairs i != j; dense in N, meant for small systems (N-body: 20 edges)."""
    dst, src = np.divmod(np.arange(n_nodes * n_nodes, dtype=np.int64), n_nodes)
    keep = src != dst
    return src[keep], dst[keep]


def radius_edges(
    points: np.ndarray | torch.Tensor, node_window: np.ndarray | torch.Tensor, spec: GraphSpec
) -> tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]:
    """Edges between nodes of the same window closer than ``spec.cutoff``, for a whole batch.

    One neighbour-list call over all windows of the batch (data/radius_graph.py, vesin): time
    and memory linear in the node count, on the device of ``points`` when it is a tensor (a
    rollout's batch on CUDA stays there). With ``max_neighbours`` = k, every destination keeps
    its k nearest sources. Nodes with non-finite coordinates get no edges.

    Shapes: points [V, 3] (each node's position in its window's last past frame), node_window
    [V] -> (src [E], dst [E]) int64 in batch node numbering, NumPy arrays for NumPy input and
    tensors on the points' device for tensor input; deterministic order (grouped by
    destination, nearest first, with a cap; neighbour-list pair order without).
    """
    cutoff = float(spec.cutoff)  # type: ignore[arg-type]
    if isinstance(points, torch.Tensor):
        return batch_radius_edges(points, node_window, cutoff, spec.max_neighbours)  # type: ignore[arg-type]
    return radius_edges_numpy(points, node_window, cutoff, spec.max_neighbours)  # type: ignore[arg-type]


def system_edges(system: Trajectory, spec: GraphSpec) -> tuple[np.ndarray, np.ndarray]:
    """The static (topology-only) edges of one system: "bonds" or "all_pairs"."""
    if spec.kind == "all_pairs":
        return all_pairs_edges(system.n_particles)
    if spec.kind != "bonds":
        raise ValueError(f"expected a static graph kind (bonds, all_pairs) (got {spec.kind!r})")
    if len(system.bonds) == 0 and system.n_particles > 1:
        raise UsageError(
            f"system {system.name!r} has no bonds for graph.kind=bonds; "
            "use --set graph.kind=radius or --set graph.kind=all_pairs"
        )
    return bond_hop_edges(system.bonds, system.n_particles, spec.hops)


class StaticGraphs:
    """The edges of every system, computed once per distinct topology and laid out flat.

    ``gather`` then produces the edges of any batch of windows by index arithmetic: window w of
    system s gets s's edges shifted by the batch offset of w's first node.
    """

    def __init__(self, systems: Sequence[Trajectory], spec: GraphSpec) -> None:
        cache: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}
        sources, destinations = [], []
        for system in systems:  # once per system at construction, never per window
            key = (system.n_particles, np.asarray(system.bonds, dtype=np.int64).tobytes())
            if spec.kind == "all_pairs":
                key = (system.n_particles, b"")
            if key not in cache:
                cache[key] = system_edges(system, spec)
            src, dst = cache[key]
            sources.append(src)
            destinations.append(dst)
        self.edge_counts = np.array([len(s) for s in sources], dtype=np.int64)
        self._edge_offset = group_offsets(self.edge_counts)
        self._src = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int64)
        self._dst = np.concatenate(destinations) if destinations else np.zeros(0, dtype=np.int64)

    def gather(
        self, window_system: np.ndarray, window_node_offset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shapes: window_system [B], window_node_offset [B] -> (src [E], dst [E])."""
        edge_window, local_edge = ragged_positions(self.edge_counts[window_system])
        flat = self._edge_offset[window_system][edge_window] + local_edge
        shift = window_node_offset[edge_window]
        return self._src[flat] + shift, self._dst[flat] + shift
