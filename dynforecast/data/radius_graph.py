"""Radius graphs of a whole batch of windows in one neighbour-list call, on the batch's device.

Why this shape: a batch holds B windows (possibly of different systems); one neighbour search
over all of them is much cheaper than B small ones, so the windows are moved apart along x by
more than the cutoff and searched together (ops/neighbours.py: vesin-torch, a cell list, so time
and memory grow linearly with the node count, on the CPU or CUDA where the tensors live).

Periodic boxes, by the minimum-image convention: each window may carry a box (rows = box
vectors) and which of its axes wrap. Its nodes are wrapped into the box and the images within
the cutoff of a face are added as extra points ("ghosts", at most 26 per node, usually a thin
surface layer), so that the same single non-periodic search finds pairs across faces; a ghost
found next to a real node gives the edge (ghost's original -> real node). This is exact when
the cutoff is at most half of the box's narrowest width along a periodic axis (then at most one
image of a node lies within the cutoff of another); a larger cutoff is refused (UsageError),
because the minimum image would no longer be one edge per pair.

Points with non-finite coordinates (a diverged rollout) get no edges.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from dynforecast.errors import UsageError
from dynforecast.ops.neighbours import pairs_within_torch

#: The 26 neighbouring cells' offsets in box vectors, [26, 3].
_IMAGE_OFFSETS = torch.tensor(
    [s for s in itertools.product((-1, 0, 1), repeat=3) if any(s)], dtype=torch.float64
)


def batch_radius_edges(
    points: Tensor,
    node_window: Tensor,
    cutoff: float,
    max_neighbours: int | None = None,
    boxes: Tensor | None = None,
    periodic: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Directed edges src -> dst between nodes of one window closer than ``cutoff``.

    Shapes and units: points float [V, 3] (each node's position, the data's length unit),
    node_window int64 [V] (window of each node, in [0, B)), boxes float [B, 3, 3] (box vectors
    as rows) and periodic bool [B, 3] (axes that wrap; all False = no box) or both None ->
    (src int64 [E], dst int64 [E]) on the points' device. Every pair closer than the cutoff (by
    minimum image along periodic axes) gives both directions. With ``max_neighbours`` = k each
    destination keeps its k nearest sources, ordered by destination then distance (the graph
    may then be asymmetric). Raises UsageError for a cutoff above half a periodic box's
    narrowest width and for a periodic box with zero volume.
    """
    device = points.device
    coords = points.detach().to(torch.float64)
    window = torch.as_tensor(node_window, device=device).to(torch.int64)
    finite = torch.isfinite(coords).all(dim=1)
    kept = None
    if not bool(finite.all()):
        kept = torch.nonzero(finite).squeeze(1)
        coords, window = coords[kept], window[kept]
    n_real = coords.shape[0]
    origin = torch.arange(n_real, device=device)
    if boxes is not None and periodic is not None and bool(periodic.any()) and n_real:
        coords, origin, window = _with_images(coords, window, boxes, periodic, cutoff)
    if n_real < 2:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    extent = float(coords.max() - coords.min()) + 2.0 * cutoff + 1.0
    shifted = coords.clone()
    shifted[:, 0] += window.to(torch.float64) * extent
    first, second, distance = pairs_within_torch(shifted, cutoff)
    first_real, second_real = first < n_real, second < n_real
    dst = torch.cat([first[first_real], second[second_real]])
    src = origin[torch.cat([second[first_real], first[second_real]])]
    if max_neighbours is not None:
        length = torch.cat([distance[first_real], distance[second_real]])
        src, dst = _nearest(src, dst, length, max_neighbours, n_real)
    if kept is not None:
        src, dst = kept[src], kept[dst]
    return src, dst


def _nearest(
    src: Tensor, dst: Tensor, length: Tensor, k: int, n_nodes: int
) -> tuple[Tensor, Tensor]:
    """The k shortest edges into every destination, grouped by destination, nearest first."""
    order = torch.argsort(length, stable=True)
    order = order[torch.argsort(dst[order], stable=True)]
    src, dst = src[order], dst[order]
    counts = torch.bincount(dst, minlength=n_nodes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(dst.numel(), device=dst.device) - starts[dst]
    keep = rank < k
    return src[keep], dst[keep]


def _with_images(
    coords: Tensor, window: Tensor, boxes: Tensor, periodic: Tensor, cutoff: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Nodes wrapped into their window's box, followed by their images near the box's faces.

    Shapes: coords [V, 3], window [V] -> (points [V + G, 3], origin [V + G] (the real node each
    point is), window [V + G]).
    """
    device = coords.device
    boxes = torch.as_tensor(boxes, device=device).to(torch.float64)
    wraps = torch.as_tensor(periodic, device=device).to(torch.bool)
    boxed = wraps.any(dim=1)
    cells = boxes[boxed]
    volume = torch.linalg.det(cells).abs()
    if bool((volume <= 0).any()):
        raise UsageError("a periodic box has zero volume; its box vectors must span space")
    faces = torch.linalg.cross(cells.roll(-1, dims=1), cells.roll(-2, dims=1), dim=2).norm(dim=2)
    widths = volume[:, None] / faces  # [B', 3] distance between opposite faces
    narrowest = torch.where(wraps[boxed], widths, torch.inf).amin()
    if cutoff > 0.5 * float(narrowest):
        raise UsageError(
            f"graph.cutoff {cutoff:g} is more than half the narrowest periodic box width "
            f"({float(narrowest):g}); minimum-image radius graphs need cutoff <= width / 2"
        )
    width = torch.full((boxes.shape[0], 3), torch.inf, dtype=torch.float64, device=device)
    width[boxed] = widths
    node_box = boxes[window]  # [V, 3, 3]
    node_wrap = wraps[window]  # [V, 3]
    node_boxed = boxed[window]
    fractional = torch.zeros_like(coords)
    fractional[node_boxed] = torch.linalg.solve(
        node_box[node_boxed].transpose(1, 2), coords[node_boxed].unsqueeze(2)
    ).squeeze(2)
    fractional = torch.where(node_wrap, fractional - torch.floor(fractional), fractional)
    wrapped = torch.where(
        node_boxed[:, None], torch.einsum("va,vab->vb", fractional, node_box), coords
    )
    reach = cutoff / width[window]  # [V, 3], fraction of the box within the cutoff of a face
    offsets = _IMAGE_OFFSETS.to(device)  # [26, 3]
    near_low = node_wrap & (fractional < reach)  # an image one box up is near the top face
    near_high = node_wrap & (fractional > 1.0 - reach)
    allowed = (
        (offsets == 0)
        | ((offsets == 1) & near_low[:, None, :])
        | ((offsets == -1) & near_high[:, None, :])
    ).all(dim=2)  # [V, 26]
    node, image = torch.nonzero(allowed, as_tuple=True)
    ghosts = wrapped[node] + torch.einsum("ga,gab->gb", offsets[image], node_box[node])
    real = torch.arange(coords.shape[0], device=device)
    return (
        torch.cat([wrapped, ghosts]),
        torch.cat([real, node]),
        torch.cat([window, window[node]]),
    )


def radius_edges_numpy(
    points: np.ndarray, node_window: np.ndarray, cutoff: float, max_neighbours: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """`batch_radius_edges` on NumPy arrays (CPU), returning int64 NumPy arrays."""
    src, dst = batch_radius_edges(
        torch.from_numpy(np.asarray(points, dtype=np.float64).reshape(-1, 3)),
        torch.from_numpy(np.asarray(node_window, dtype=np.int64)),
        cutoff,
        max_neighbours,
    )
    return src.numpy(), dst.numpy()
