"""Graphs: bonds + k-hop counts, radius graphs against brute force, all pairs, batch offsets."""

from __future__ import annotations

import numpy as np
import pytest
from datafactory import chain_bonds, make_system, random_system

from dynforecast.data.graphs import GraphSpec, all_pairs_edges, bond_hop_edges
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.errors import UsageError

# Aspirin's 13 heavy atoms: ring C0..C5, carboxyl C6(=O7)(-O8) on C0, ester O9 on C1,
# acetyl C10(=O11)(-C12) on O9.
ASPIRIN_HEAVY_BONDS = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 6], [6, 7], [6, 8], [1, 9], [9, 10],
     [10, 11], [10, 12]]
)  # fmt: skip


def edge_set(src, dst):
    return set(zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), strict=True))


def test_aspirin_bonds_plus_two_hop_has_60_directed_edges():
    bonded = bond_hop_edges(ASPIRIN_HEAVY_BONDS, 13, hops=1)
    with_two_hop = bond_hop_edges(ASPIRIN_HEAVY_BONDS, 13, hops=2)
    assert len(bonded[0]) == 26
    assert len(with_two_hop[0]) == 26 + 34
    assert edge_set(*bonded) <= edge_set(*with_two_hop)
    src, dst = with_two_hop
    assert not np.any(src == dst)
    assert edge_set(src, dst) == edge_set(dst, src)  # symmetric


def test_chain_hops_and_triangle_has_no_duplicates():
    src, dst = bond_hop_edges(chain_bonds(5), 5, hops=2)
    expected = {(i, j) for i in range(5) for j in range(5) if 1 <= abs(i - j) <= 2}
    assert edge_set(src, dst) == expected and len(src) == len(expected)
    src, dst = bond_hop_edges(chain_bonds(5), 5, hops=3)
    assert edge_set(src, dst) == {
        (i, j) for i in range(5) for j in range(5) if 1 <= abs(i - j) <= 3
    }
    triangle = bond_hop_edges(np.array([[0, 1], [1, 2], [2, 0]]), 3, hops=2)
    assert len(triangle[0]) == 6


def test_all_pairs_counts():
    for n in (1, 2, 5, 9):
        src, dst = all_pairs_edges(n)
        assert len(src) == n * (n - 1)
        assert edge_set(src, dst) == {(i, j) for i in range(n) for j in range(n) if i != j}


def test_static_edges_are_offset_per_window_in_a_batch():
    systems = [
        make_system("small", 10, 3, bonds=chain_bonds(3)),
        make_system("aspirin", 10, 13, bonds=ASPIRIN_HEAVY_BONDS),
    ]
    data = WindowDataset(systems, WindowSpec(past_frames=2, spacing=2), GraphSpec("bonds", hops=2))
    ids = np.array([6, 0, 7, 1])  # aspirin, small, aspirin, small (6 windows per system)
    batch = data.batch(ids)
    assert batch.num_edges == 60 + 6 + 60 + 6
    src, dst = batch.edge_src.numpy(), batch.edge_dst.numpy()
    graph = batch.node_graph.numpy()
    np.testing.assert_array_equal(graph[src], graph[dst])  # no edge leaves its window
    offsets = np.array([0, 13, 16, 29])
    local = {
        13: edge_set(*bond_hop_edges(ASPIRIN_HEAVY_BONDS, 13)),
        3: edge_set(*bond_hop_edges(chain_bonds(3), 3)),
    }
    for window, (offset, size) in enumerate(zip(offsets, [13, 3, 13, 3], strict=True)):
        mine = graph[dst] == window
        assert edge_set(src[mine] - offset, dst[mine] - offset) == local[size]


def brute_force_radius(points, cutoff, max_neighbours):
    """Reference radius graph of one window with plain NumPy (test only)."""
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    edges = set()
    for dst in range(len(points)):
        candidates = [s for s in np.argsort(dist[dst], kind="stable") if s != dst]
        candidates = [s for s in candidates if dist[dst, s] < cutoff]
        if max_neighbours is not None:
            candidates = candidates[:max_neighbours]
        edges |= {(int(s), dst) for s in candidates}
    return edges


@pytest.mark.parametrize("max_neighbours", [None, 4])
def test_radius_graph_equals_brute_force(max_neighbours):
    systems = [random_system("p", 8, 40, seed=1), random_system("q", 8, 25, seed=2)]
    spec = GraphSpec("radius", cutoff=2.0, max_neighbours=max_neighbours)
    data = WindowDataset(systems, WindowSpec(past_frames=3, spacing=1), spec)
    ids = np.array([0, 4, 5, 3, 1])  # p, q, q, p, p
    batch = data.batch(ids)
    src, dst = batch.edge_src.numpy(), batch.edge_dst.numpy()
    graph = batch.node_graph.numpy()
    last = batch.positions[:, -1].double().numpy()
    total = 0
    for window in range(len(ids)):
        nodes = np.flatnonzero(graph == window)
        mine = graph[dst] == window
        assert np.all(graph[src[mine]] == window)
        got = edge_set(src[mine] - nodes[0], dst[mine] - nodes[0])
        expected = brute_force_radius(last[nodes], 2.0, max_neighbours)
        assert got == expected
        total += len(expected)
    assert batch.num_edges == total > 0
    if max_neighbours is not None:
        assert np.bincount(dst).max() == max_neighbours


def test_bonds_graph_without_bonds_says_what_to_use():
    with pytest.raises(UsageError) as error:
        WindowDataset([make_system("gas", 5, 4)], WindowSpec(1, 1), GraphSpec("bonds"))
    assert str(error.value) == (
        "system 'gas' has no bonds for graph.kind=bonds; "
        "use --set graph.kind=radius or --set graph.kind=all_pairs"
    )


def test_graph_spec_validation():
    with pytest.raises(UsageError) as error:
        GraphSpec("radius")
    assert str(error.value) == (
        "graph.kind=radius needs a positive graph.cutoff (got None); set e.g. --set graph.cutoff=6.0"
    )
    with pytest.raises(UsageError, match=r"^graph.kind must be one of bonds, radius, all_pairs"):
        GraphSpec("knn")
