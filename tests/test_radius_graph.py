"""Radius graphs (data/radius_graph.py via graphs.radius_edges): equal to a brute-force graph on
random batches with and without periodic boxes, edge cases, device and memory linear in N."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dynforecast.data.graphs import GraphSpec, radius_edges
from dynforecast.data.radius_graph import batch_radius_edges
from dynforecast.errors import UsageError


def random_batch(rng, windows=6, density=0.05):
    sizes = rng.integers(1, 60, windows)
    node_window = np.repeat(np.arange(windows), sizes)
    side = (sizes.max() / density) ** (1 / 3)
    points = (
        rng.uniform(-side / 2, side, (node_window.size, 3))
        + rng.normal(0, 50, (windows, 3))[node_window]
    )
    return points, node_window


def brute_force(points, node_window, cutoff, k=None, boxes=None, periodic=None):
    """Sorted (dst, src) pairs by explicit all-pairs distances (minimum image over -2..2)."""
    if boxes is not None:  # wrap periodic axes into the box first, then images -2..2 suffice
        node_box = boxes[node_window]
        fractions = np.linalg.solve(np.swapaxes(node_box, 1, 2), points[..., None])[..., 0]
        fractions = np.where(periodic[node_window], fractions % 1.0, fractions)
        points = np.where(periodic[node_window].any(1, keepdims=True),
                          np.einsum("va,vab->vb", fractions, node_box), points)  # fmt: skip
    delta = points[None, :, :] - points[:, None, :]  # [dst, src, 3]
    if boxes is not None:
        shifts = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
        node_shifts = shifts[None] * periodic[node_window][:, None, :]  # [V, S, 3]
        images = np.einsum("vsa,vab->vsb", node_shifts, boxes[node_window])  # per dst's box
        delta = delta[:, :, None, :] + images[:, None, :, :]
        distance = np.linalg.norm(delta, axis=-1).min(axis=2)
    else:
        distance = np.linalg.norm(delta, axis=-1)
    same = node_window[:, None] == node_window[None, :]
    close = same & (distance < cutoff) & ~np.eye(len(points), dtype=bool)
    if k is not None:
        ranked = np.where(close, distance, np.inf)
        order = np.argsort(ranked, axis=1, kind="stable")[:, :k]
        keep = np.zeros_like(close)
        np.put_along_axis(keep, order, True, axis=1)
        close &= keep
    dst, src = np.nonzero(close)
    return np.stack([dst, src], axis=1)


def as_pairs(src, dst):
    pairs = np.stack([np.asarray(dst), np.asarray(src)], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


@pytest.mark.parametrize("max_neighbours", [None, 1, 4])
def test_equals_brute_force_without_a_box(max_neighbours):
    rng = np.random.default_rng(max_neighbours or 0)
    for _ in range(10):
        points, node_window = random_batch(rng)
        spec = GraphSpec(
            "radius", cutoff=float(rng.uniform(2.0, 8.0)), max_neighbours=max_neighbours
        )
        src, dst = radius_edges(points, node_window, spec)
        assert src.dtype == dst.dtype == np.int64
        expected = brute_force(points, node_window, spec.cutoff, max_neighbours)
        np.testing.assert_array_equal(as_pairs(src, dst), expected)
        if max_neighbours is not None:  # grouped by destination, nearest first
            assert np.all(np.diff(dst) >= 0)
            length = np.linalg.norm(points[src] - points[dst], axis=1)
            same = np.diff(dst) == 0
            assert np.all(np.diff(length)[same] >= 0)


@pytest.mark.parametrize("max_neighbours", [None, 3])
def test_equals_minimum_image_brute_force_in_periodic_boxes(max_neighbours):
    rng = np.random.default_rng(7)
    for trial in range(6):
        windows = 5
        boxes = np.zeros((windows, 3, 3))
        boxes[:] = np.eye(3) * rng.uniform(8.0, 14.0, (windows, 1, 3))
        if trial % 2:
            boxes += np.triu(rng.uniform(-2.0, 2.0, (windows, 3, 3)), 1)  # triclinic
        periodic = np.ones((windows, 3), dtype=bool)
        periodic[1] = [True, True, False]  # a slab
        periodic[2] = False  # no box at all
        sizes = rng.integers(1, 50, windows)
        node_window = np.repeat(np.arange(windows), sizes)
        fractions = rng.uniform(-1.5, 2.5, (node_window.size, 3))  # some outside their box
        points = np.einsum("va,vab->vb", fractions, boxes[node_window])
        cutoff = 3.9
        src, dst = batch_radius_edges(
            torch.from_numpy(points), torch.from_numpy(node_window), cutoff, max_neighbours,
            torch.from_numpy(boxes), torch.from_numpy(periodic),
        )  # fmt: skip
        expected = brute_force(points, node_window, cutoff, max_neighbours, boxes, periodic)
        np.testing.assert_array_equal(as_pairs(src.numpy(), dst.numpy()), expected)


def test_a_cutoff_above_half_the_box_is_refused():
    points = torch.zeros((3, 3), dtype=torch.float64)
    boxes = torch.diag(torch.tensor([12.0, 8.0, 20.0], dtype=torch.float64))[None]
    with pytest.raises(UsageError) as caught:
        batch_radius_edges(
            points,
            torch.zeros(3, dtype=torch.int64),
            4.5,
            None,
            boxes,
            torch.ones((1, 3), dtype=torch.bool),
        )
    assert str(caught.value) == (
        "graph.cutoff 4.5 is more than half the narrowest periodic box width (8); "
        "minimum-image radius graphs need cutoff <= width / 2"
    )
    # the narrow axis does not wrap: allowed
    src, _ = batch_radius_edges(points, torch.zeros(3, dtype=torch.int64), 4.5, None, boxes,
                                torch.tensor([[True, False, True]]))  # fmt: skip
    assert src.numel() == 6


def test_empty_batch_one_particle_no_pairs_and_non_finite_points():
    spec = GraphSpec("radius", cutoff=2.0)
    for n in (0, 1):
        src, dst = radius_edges(np.zeros((n, 3)), np.zeros(n, dtype=np.int64), spec)
        assert src.shape == dst.shape == (0,)
    far = np.array([[0.0, 0, 0], [5.0, 0, 0]])
    assert radius_edges(far, np.zeros(2, dtype=np.int64), spec)[0].size == 0
    # a diverged node gets no edges; the others keep theirs, in the batch's numbering
    points = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1.0, 0, 0], [np.inf, 1, 1]])
    src, dst = radius_edges(points, np.zeros(4, dtype=np.int64), spec)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 2), (2, 0)]
    # coordinates 1e15 apart (vesin's cell list would overflow): the k-d tree fallback
    huge = np.array([[0.0, 0, 0], [1.0, 0, 0], [1e15, 0, 0]])
    src, dst = radius_edges(huge, np.zeros(3, dtype=np.int64), spec)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_tensor_input_gives_tensors_on_its_device_and_the_numpy_edges():
    rng = np.random.default_rng(3)
    points, node_window = random_batch(rng)
    spec = GraphSpec("radius", cutoff=5.0, max_neighbours=6)
    src, dst = radius_edges(torch.from_numpy(points).float(), torch.from_numpy(node_window), spec)
    assert isinstance(src, torch.Tensor) and src.device == torch.device("cpu")
    np_src, np_dst = radius_edges(points.astype(np.float32), node_window, spec)
    np.testing.assert_array_equal(src.numpy(), np_src)
    np.testing.assert_array_equal(dst.numpy(), np_dst)


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from dynforecast.data.graphs import GraphSpec, radius_edges
    n = int(sys.argv[1])
    side = (n / 0.02) ** (1 / 3)  # 16 neighbours within 5.8 at this density
    points = np.random.default_rng(0).uniform(0, side, (n, 3))
    spec = GraphSpec("radius", cutoff=5.8, max_neighbours=12)
    radius_edges(points[:50], np.zeros(50, dtype=np.int64), spec)  # imports, first call
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    src, dst = radius_edges(points, np.zeros(n, dtype=np.int64), spec)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024, src.size)
    """
)


def peak_growth_mib(n_nodes: int) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(n_nodes)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    growth, edges = done.stdout.split()
    return float(growth), int(edges)


def test_radius_graph_memory_grows_linearly_with_the_node_count():
    small, small_edges = peak_growth_mib(10_000)
    large, large_edges = peak_growth_mib(40_000)
    assert small_edges > 10 * 10_000 and large_edges > 10 * 40_000
    # 4x the nodes: about 4x the peak growth (edges and the neighbour list), never 16x
    assert large <= 6 * max(small, 1.0), (small, large)
