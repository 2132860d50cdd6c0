"""Pairs of points closer than a cutoff, in time and memory linear in the number of points.

Why a library: neighbour search is not this project's core, and vesin (a cell-list neighbour
list from the lab-cosmo group, https://github.com/Luthaf/vesin) is small, well kept, exact,
periodic in any triclinic box (with partial periodicity) and has a torch front end that runs on
the tensor's own device (CPU or CUDA), so graphs of a batch already on the GPU are built there.
Measured on this project's data (benchmarks/large_systems.py, docs/architecture.md): as fast as
scipy's k-d tree on the CPU for 20,000-100,000 points, and unlike ase's ``neighbor_list`` on a
frame without a cell (O(N^2) memory: 5.4 GB for 5,000 atoms) its memory grows with N.

Both functions return each unordered pair once ("half list"), distances strictly below the
cutoff, as vesin does. vesin's cell list divides the points' bounding box into cells; a bounding
box more than ``MAX_SPAN`` cutoffs wide (a runaway rollout, a stray atom at 1e12) makes its cell
arithmetic overflow and the process die, so such inputs use scipy's k-d tree instead
(non-periodic only; a periodic box that wide is refused). The periodic cell itself is checked the
same way (fuzz findings of 2026-12-05: an extxyz ``Lattice`` vector of 1e30 killed the process
with SIGFPE, and a shear of 1e11 that left one cell height at 1e-9 A made vesin loop over some
1e9 images): a periodic axis whose cell height (the distance between opposite faces) exceeds
``MAX_SPAN`` cutoffs, or is under ``1 / MAX_IMAGES`` of the cutoff, is refused with ValueError.
"""

from __future__ import annotations

import numpy as np
import torch

#: Largest bounding-box extent, in cutoffs, handed to vesin (it crashes near 1e12).
MAX_SPAN = 1e9

#: Most periodic images per axis a pair may need: a cell height below cutoff / MAX_IMAGES is refused.
MAX_IMAGES = 1000


def _check_periodic_cell(box: np.ndarray, wrap: np.ndarray, cutoff: float) -> None:
    """Raise ValueError for a periodic cell that vesin cannot search in bounded time and memory.

    The height of axis i is V / |a_j x a_k| (V the cell volume): the number of cells along i is
    height / cutoff and the number of images a pair needs is about cutoff / height.
    """
    lengths = np.linalg.norm(box, axis=1)
    if not np.isfinite(box).all():
        raise ValueError("the periodic cell has non-finite (NaN or inf) entries")
    if (lengths[wrap] > MAX_SPAN * cutoff).any():
        raise ValueError(
            f"a periodic cell vector is longer than {MAX_SPAN:g} cutoffs "
            f"({lengths[wrap].max():.3g}); a periodic neighbour list that wide is not supported"
        )
    volume = abs(float(np.linalg.det(box)))
    faces = np.linalg.norm(np.cross(box[[1, 2, 0]], box[[2, 0, 1]]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        heights = np.where(faces > 0, volume / faces, 0.0)
    thinnest = float(heights[wrap].min())
    if thinnest * MAX_IMAGES < cutoff:
        raise ValueError(
            f"the periodic cell is {thinnest:.3g} thick along one axis, under 1/{MAX_IMAGES} of "
            f"the cutoff {cutoff:g} (a degenerate or sheared cell)"
        )


def _span(points: np.ndarray) -> float:
    if points.shape[0] == 0:
        return 0.0
    return float((points.max(axis=0) - points.min(axis=0)).max())


def pairs_within(
    points: np.ndarray,
    cutoff: float,
    cell: np.ndarray | None = None,
    periodic: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j) of points closer than ``cutoff``, periodic images included (NumPy, CPU).

    Shapes and units: points [N, 3] (any length unit), cell [3, 3] box vectors as rows (same
    unit) or None, periodic bool [3] (which cell vectors wrap; None = all when a cell is given)
    -> (i int64 [P], j int64 [P], distance float64 [P]), each pair once, i != j. In a periodic
    cell smaller than twice the cutoff a pair close through several images comes once per
    image. Raises ValueError for a periodic cell that is not invertible, too wide or too thin
    (``_check_periodic_cell``) and for non-finite points.
    """
    coords = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    if cell is None:
        box, wrap = np.zeros((3, 3)), np.zeros(3, dtype=bool)
    else:
        box = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
        wrap = np.ones(3, bool) if periodic is None else np.asarray(periodic, bool).reshape(3)
    if coords.shape[0] < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    if not np.isfinite(coords).all():
        raise ValueError("points have non-finite (NaN or inf) coordinates")
    if _span(coords) > MAX_SPAN * cutoff:
        if wrap.any():
            raise ValueError(
                f"points spread over more than {MAX_SPAN:g} cutoffs; a periodic neighbour "
                "list that wide is not supported"
            )
        return _kd_tree_pairs(coords, cutoff)
    if wrap.any():
        _check_periodic_cell(box, wrap, cutoff)
    import vesin

    search = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    first, second, distance = search.compute(coords, box, wrap.tolist(), "ijd")
    return first.astype(np.int64), second.astype(np.int64), distance


def _kd_tree_pairs(coords: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    tree = cKDTree(coords, balanced_tree=False, compact_nodes=False)
    # query_pairs keeps distances <= r; the largest float below the cutoff makes it "<".
    pairs = tree.query_pairs(r=np.nextafter(cutoff, 0.0), output_type="ndarray").astype(np.int64)
    first, second = pairs[:, 0], pairs[:, 1]
    return first, second, np.linalg.norm(coords[first] - coords[second], axis=1)


def pairs_within_torch(
    points: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-periodic pairs closer than ``cutoff`` on the points' device (vesin-torch).

    Shapes: points float [N, 3] (float64 recommended: distances at the cutoff are then decided
    as scipy's k-d tree decides them) -> (i int64 [P], j int64 [P], distance [P]) on the same
    device, each pair once. Non-finite points must be removed by the caller. A bounding box
    wider than ``MAX_SPAN`` cutoffs goes through scipy's k-d tree on the CPU.
    """
    device = points.device
    coords = points.detach().contiguous()
    if coords.shape[0] < 2:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty, torch.zeros(0, dtype=coords.dtype, device=device)
    span = float((coords.amax(0) - coords.amin(0)).max())
    if span > MAX_SPAN * cutoff:
        found = _kd_tree_pairs(coords.cpu().double().numpy(), cutoff)
        first, second, distance = (torch.from_numpy(a).to(device) for a in found)
        return first, second, distance.to(coords.dtype)
    import vesin_torch

    search = vesin_torch.NeighborList(cutoff=float(cutoff), full_list=False)
    box = torch.zeros((3, 3), dtype=coords.dtype, device=device)
    first, second, distance = search.compute(coords, box, False, "ijd")
    return first.to(torch.int64), second.to(torch.int64), distance
