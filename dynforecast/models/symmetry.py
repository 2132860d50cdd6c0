"""Symmetry transformations of a batch and an e3nn-style equivariance check for any model.

Every forecasting model must satisfy f(x R^T + t) = f(x) R^T + t for orthogonal R (rotations and
reflections) and translations t applied to all past frames together, and f(P x) = P f(x) for a
relabelling P of the nodes. `assert_equivariant` checks all of these on one batch; the shared test
suite runs it for every registered model. Positions are row vectors: x' = x @ R.T + t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Generator, Tensor

from dynforecast.models.batch import WindowBatch


def random_orthogonal(
    dtype: torch.dtype = torch.float64, generator: Generator | None = None, reflection: bool = False
) -> Tensor:
    """A random 3x3 orthogonal matrix: det +1 (proper rotation) or det -1 with ``reflection``.

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q is Haar-distributed.
    """
    gaussian = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflection:
        q = -q  # det(-Q) = -det(Q) in 3-D
    return q.to(dtype)


def transform_batch(batch: WindowBatch, rotation: Tensor, translation: Tensor) -> WindowBatch:
    """Apply x -> x @ R.T + t to positions and target; velocities are only rotated.

    Shapes: rotation [3, 3], translation [3] (one translation for the whole batch) or [B, 3] (one
    per window).
    """
    rotation = rotation.to(batch.positions)
    translation = translation.to(batch.positions)
    if translation.dim() == 2:
        translation = translation.index_select(0, batch.node_graph)  # [V, 3]
        frame_shift = translation.unsqueeze(1)
    else:
        frame_shift = translation
    changes: dict[str, Tensor] = {"positions": batch.positions @ rotation.t() + frame_shift}
    if batch.velocities is not None:
        changes["velocities"] = batch.velocities @ rotation.t()
    if batch.target is not None:
        changes["target"] = batch.target @ rotation.t() + translation
    return batch.replace(**changes)


def permute_batch(batch: WindowBatch, perm: Tensor, edge_perm: Tensor | None = None) -> WindowBatch:
    """Relabel nodes: new node i is old node ``perm[i]``; edges are renumbered to match.

    ``edge_perm`` optionally also reorders the edge list (new edge e = old edge edge_perm[e]).
    A model's output on the result must equal ``output[perm]``.
    """
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.shape[0], device=perm.device)
    edge_src, edge_dst = inverse[batch.edge_src], inverse[batch.edge_dst]
    if edge_perm is not None:
        edge_src, edge_dst = edge_src[edge_perm], edge_dst[edge_perm]
    changes: dict[str, object] = {
        "positions": batch.positions[perm],
        "species": batch.species[perm],
        "node_attrs": batch.node_attrs[perm],
        "node_graph": batch.node_graph[perm],
        "edge_src": edge_src,
        "edge_dst": edge_dst,
    }
    for name in ("velocities", "node_mask", "target"):
        value = getattr(batch, name)
        if value is not None:
            changes[name] = value[perm]
    return batch.replace(**changes)


@torch.no_grad()
def equivariance_errors(
    model: Callable[[WindowBatch], Tensor], batch: WindowBatch, generator: Generator | None = None
) -> dict[str, tuple[float, float]]:
    """Max output error under each symmetry, with the output scale it should be compared to.

    Returns {name: (max abs error, max abs expected output)} for "rotation", "reflection",
    "translation", "permutation" and "combined" (reflection + per-window translation +
    permutation with shuffled edges at once).
    """
    output = model(batch)
    dtype = batch.positions.dtype
    coordinate_scale = batch.positions.abs().max().item() + 1.0
    results: dict[str, tuple[float, float]] = {}

    def record(name: str, got: Tensor, expected: Tensor) -> None:
        results[name] = (got - expected).abs().max().item(), expected.abs().max().item()

    zero = torch.zeros(3).to(batch.positions)
    for name, reflection in (("rotation", False), ("reflection", True)):
        rotation = random_orthogonal(dtype, generator, reflection).to(batch.positions)
        record(name, model(transform_batch(batch, rotation, zero)), output @ rotation.t())
    shift = torch.randn(3, generator=generator, dtype=torch.float64).to(batch.positions)
    shift = shift * coordinate_scale
    eye = torch.eye(3).to(batch.positions)
    record("translation", model(transform_batch(batch, eye, shift)), output + shift)

    device = batch.positions.device  # random draws on the CPU generator, then moved
    perm = torch.randperm(batch.num_nodes, generator=generator).to(device)
    edge_perm = torch.randperm(batch.num_edges, generator=generator).to(device)
    record("permutation", model(permute_batch(batch, perm, edge_perm)), output[perm])

    rotation = random_orthogonal(dtype, generator, reflection=True).to(batch.positions)
    shifts = torch.randn(batch.num_graphs, 3, generator=generator, dtype=torch.float64)
    shifts = shifts.to(batch.positions) * coordinate_scale
    moved = permute_batch(transform_batch(batch, rotation, shifts), perm, edge_perm)
    expected = (output @ rotation.t() + shifts.index_select(0, batch.node_graph))[perm]
    record("combined", model(moved), expected)
    return results


def assert_equivariant(
    model: Callable[[WindowBatch], Tensor],
    batch: WindowBatch,
    *,
    atol: float,
    rtol: float,
    generator: Generator | None = None,
) -> dict[str, float]:
    """Check E(3) (rotations with and without reflection, translations) and permutation
    equivariance together; raise AssertionError naming every violated symmetry and its max error.

    A symmetry passes when max |f(g x) - g f(x)| <= atol + rtol * max |g f(x)|.
    Returns {symmetry name: max abs error} so callers can log how close they came.
    """
    errors = equivariance_errors(model, batch, generator)
    failures = [
        f"{name}: max error {error:.3e} > allowed {atol + rtol * scale:.3e}"
        for name, (error, scale) in errors.items()
        if not error <= atol + rtol * scale  # also catches NaN
    ]
    if failures:
        raise AssertionError("not equivariant: " + "; ".join(failures))
    return {name: error for name, (error, _) in errors.items()}
