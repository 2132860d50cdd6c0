"""The symmetry and batching contract every registered model must keep.

Parametrised over `model_names()`, so a model joins this suite by registering itself; how each
model is built for a batch lives in tests/model_batches.py (`small_model`).
"""

from __future__ import annotations

import pytest
import torch
from model_batches import (
    collate,
    learnable_model_names,
    make_batch,
    pad_batch,
    small_model,
    window_list,
)

from dynforecast.models import create_model, model_names
from dynforecast.models.symmetry import (
    assert_equivariant,
    permute_batch,
    random_orthogonal,
    transform_batch,
)

DTYPES = [torch.float32, torch.float64]
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
BATCH_KINDS = {
    "all_pairs+velocities+charges": {"graph": "all_pairs", "velocities": True, "charges": True},
    "bonds": {"graph": "bonds", "velocities": False, "charges": False},
}
MIXED_SIZES = [5, 3, 7]
# Every model on every batch kind it can predict on (file_velocity needs the data's velocities).
MODEL_KINDS = [
    (name, kind)
    for name in model_names()
    for kind, options in BATCH_KINDS.items()
    if options["velocities"] or not create_model(name).needs_velocities
]


def assert_close_to_scale(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Max error within the dtype's relative tolerance of the output scale (as the E(3) test):
    summation order legitimately changes with node/edge order, so per-element rtol is too strict."""
    allowed = RELATIVE_TOLERANCE[expected.dtype] * expected.abs().max().item()
    error = (got - expected).abs().max().item()
    assert error <= allowed, f"max error {error:.3e} > allowed {allowed:.3e}"


def _windows(dtype: torch.dtype, kind: str = "all_pairs+velocities+charges", seed: int = 0):
    return window_list(MIXED_SIZES, num_frames=5, seed=seed, dtype=dtype, **BATCH_KINDS[kind])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "kind"), MODEL_KINDS)
def test_e3_and_permutation_equivariance(name: str, kind: str, dtype: torch.dtype) -> None:
    batch = collate(_windows(dtype, kind))
    torch.manual_seed(0)
    model = small_model(name, batch).eval()
    generator = torch.Generator().manual_seed(1)
    errors = assert_equivariant(
        model, batch, atol=0.0, rtol=RELATIVE_TOLERANCE[dtype], generator=generator
    )
    assert set(errors) == {"rotation", "reflection", "translation", "permutation", "combined"}


@pytest.mark.parametrize("name", model_names())
def test_assert_equivariant_catches_a_non_equivariant_output(name: str) -> None:
    """The checker itself can fail: adding a fixed vector breaks rotation equivariance."""
    batch = collate(_windows(torch.float64))
    torch.manual_seed(0)
    model = small_model(name, batch).eval()

    def broken(b):
        return model(b) + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)

    with pytest.raises(AssertionError, match=r"rotation: max error .* > allowed"):
        assert_equivariant(broken, batch, atol=0.0, rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", model_names())
def test_permuting_nodes_and_edges_permutes_the_output(name: str, dtype: torch.dtype) -> None:
    kind = "all_pairs+velocities+charges" if create_model(name).needs_velocities else "bonds"
    batch = collate(_windows(dtype, kind))
    torch.manual_seed(0)
    model = small_model(name, batch).eval()
    generator = torch.Generator().manual_seed(3)
    perm = torch.randperm(batch.num_nodes, generator=generator)
    edge_perm = torch.randperm(batch.num_edges, generator=generator)
    with torch.no_grad():
        expected = model(batch)[perm]
        got = model(permute_batch(batch, perm, edge_perm))
    assert_close_to_scale(got, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", model_names())
def test_window_order_does_not_change_predictions(name: str, dtype: torch.dtype) -> None:
    windows = _windows(dtype)
    torch.manual_seed(0)
    model = small_model(name, windows[0]).eval()
    sizes = [w.num_nodes for w in windows]
    with torch.no_grad():
        forward = model(collate(windows)).split(sizes)
        backward = model(collate(windows[::-1])).split(sizes[::-1])[::-1]
    for got, expected in zip(backward, forward, strict=True):
        assert_close_to_scale(got, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "kind"), MODEL_KINDS)
def test_mixed_size_batch_equals_separate_calls(name: str, kind: str, dtype: torch.dtype) -> None:
    windows = _windows(dtype, kind)
    torch.manual_seed(0)
    model = small_model(name, windows[0]).eval()
    with torch.no_grad():
        together = model(collate(windows)).split([w.num_nodes for w in windows])
        for window, got in zip(windows, together, strict=True):
            assert_close_to_scale(got, model(window))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", model_names())
def test_masked_padding_nodes_do_not_change_real_nodes(name: str, dtype: torch.dtype) -> None:
    batch = collate(_windows(dtype))
    padded = pad_batch(batch, 2, torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    model = small_model(name, batch).eval()
    with torch.no_grad():
        expected = model(batch)
        got = model(padded)[: batch.num_nodes]
    # Masks may legitimately change summation order (e.g. a masked global mean): tolerances are
    # relative to the output scale, 1e-6 (float32) and 1e-12 (float64).
    allowed = (1e-6 if dtype == torch.float32 else 1e-12) * expected.abs().max().item()
    error = (got - expected).abs().max().item()
    assert error <= allowed, f"max error {error:.3e} > allowed {allowed:.3e}"


def _static_batch():
    """Every frame identical: zero motion, all spectra exactly 0."""
    batch = make_batch([4, 3], num_frames=5, velocities=True, charges=True)
    static = batch.positions[:, :1].expand_as(batch.positions).contiguous()
    return batch.replace(positions=static, velocities=torch.zeros_like(batch.velocities))


def _coincident_batch():
    """Nodes 0 and 1 (connected, all pairs) share a position in every frame."""
    batch = make_batch([4, 3], num_frames=5, velocities=True, charges=True)
    positions = batch.positions.clone()
    positions[1] = positions[0]
    return batch.replace(positions=positions)


@pytest.mark.parametrize("case", ["static", "coincident"])
@pytest.mark.parametrize("name", learnable_model_names())
def test_parameter_gradients_are_finite_on_degenerate_input(name: str, case: str) -> None:
    batch = _static_batch() if case == "static" else _coincident_batch()
    torch.manual_seed(0)
    model = small_model(name, batch)
    loss = (model(batch) - batch.target).square().mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads
    assert [n for n, g in grads.items() if g is None] == []
    assert [n for n, g in grads.items() if not torch.isfinite(g).all()] == []
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", model_names())
def test_fixed_seed_gives_identical_outputs(name: str) -> None:
    batch = collate(_windows(torch.float32))
    outputs = []
    for _ in range(2):
        torch.manual_seed(1234)
        model = small_model(name, batch).eval()
        with torch.no_grad():
            outputs.append(model(batch))
    assert torch.equal(outputs[0], outputs[1])


def test_transform_batch_moves_positions_and_target_but_only_rotates_velocities() -> None:
    batch = make_batch([3], velocities=True)
    rotation = random_orthogonal(torch.float64, torch.Generator().manual_seed(0), reflection=True)
    shift = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    moved = transform_batch(batch, rotation, shift)
    assert torch.linalg.det(rotation) == pytest.approx(-1.0)
    torch.testing.assert_close(rotation @ rotation.t(), torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(moved.positions, batch.positions @ rotation.t() + shift)
    torch.testing.assert_close(moved.target, batch.target @ rotation.t() + shift)
    torch.testing.assert_close(moved.velocities, batch.velocities @ rotation.t())


def test_random_orthogonal_proper_rotation_has_determinant_one() -> None:
    rotation = random_orthogonal(torch.float32, torch.Generator().manual_seed(7), reflection=False)
    assert rotation.dtype == torch.float32
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-6)
