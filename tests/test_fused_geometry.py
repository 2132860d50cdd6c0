"""The fused edge-geometry kernels (dynforecast.ops.fused_geometry) equal the torch layers.

Squared lengths and the clamped, summed coordinate update with unit and plain directions,
values and gradients in float64 against edge_geometry / safe_unit / coordinate_shift, with
weights large enough that the clamp bites; one thread against two; coincident points; errors.
"""

from __future__ import annotations

import pytest
import torch

from dynforecast.models.layers import coordinate_shift, edge_geometry, safe_unit
from dynforecast.ops.fused_geometry import (
    fused_edge_radial,
    fused_edge_shift,
    fused_geometry_available,
)

pytestmark = pytest.mark.skipif(
    not fused_geometry_available(torch.float64)[0],
    reason=f"fused geometry kernel not built here: {fused_geometry_available(torch.float64)[1]}",
)


def inputs(nodes=20, frames=4, edges=80, scale=50.0, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, frames, 3, dtype=dtype, generator=generator).requires_grad_()
    src = torch.randint(0, nodes, (edges,), generator=generator)
    dst = (src + torch.randint(1, nodes, (edges,), generator=generator)) % nodes  # no self-loops
    weight = scale * torch.randn(edges, frames, dtype=dtype, generator=generator)
    return x, src, dst, weight.requires_grad_()


def torch_geometry(x, src, dst, weight, normalise):
    difference, squared = edge_geometry(x, src, dst)
    direction = safe_unit(difference, squared) if normalise else difference
    ones = torch.ones(x.shape[0], dtype=x.dtype)
    return squared[..., 0], coordinate_shift(direction, weight.unsqueeze(-1), dst, x.shape[0], ones)


def fused_geometry(x, src, dst, weight, normalise):
    return fused_edge_radial(x, src, dst), fused_edge_shift(x, src, dst, weight, normalise)


def gradients(outputs, x, weight, seed=1):
    generator = torch.Generator().manual_seed(seed)
    seeds = [torch.randn(o.shape, dtype=o.dtype, generator=generator) for o in outputs]
    return torch.autograd.grad(outputs, [x, weight], seeds)


@pytest.mark.parametrize("normalise", [True, False])
def test_fused_geometry_equals_the_torch_layers(normalise):
    x, src, dst, weight = inputs()
    expected = torch_geometry(x, src, dst, weight, normalise)
    got = fused_geometry(x, src, dst, weight, normalise)
    clamped = (safe_unit(*edge_geometry(x, src, dst)) * weight.unsqueeze(-1)).abs() > 100
    assert clamped.any() and not clamped.all()  # the clamp bites somewhere, not everywhere
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(gradients(got, x, weight), gradients(expected, x, weight), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_two_threads_give_the_one_thread_result():
    x, src, dst, weight = inputs(nodes=60, edges=400)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outputs = fused_geometry(x, src, dst, weight, True)
            results.append([*outputs, *gradients(outputs, x, weight)])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_coincident_points_give_a_finite_update_and_gradient():
    x = torch.zeros(2, 1, 3, dtype=torch.float64, requires_grad=True)
    src, dst = torch.tensor([0]), torch.tensor([1])
    weight = torch.ones(1, 1, dtype=torch.float64, requires_grad=True)
    radial, shift = fused_geometry(x, src, dst, weight, True)
    assert radial.item() == 0 and torch.equal(shift, torch.zeros_like(shift))
    grads = gradients((radial, shift), x, weight)
    assert all(torch.isfinite(g).all() for g in grads)


def test_inputs_that_do_not_fit_are_refused():
    x, src, dst, weight = inputs()
    with pytest.raises(ValueError, match=r"^expected contiguous positions \[V, T, 3\]"):
        fused_edge_radial(x[..., :2], src, dst)
    with pytest.raises(ValueError, match=r"^edge indices outside \[0, 20\)$"):
        fused_edge_radial(x, src, dst + 20)
    with pytest.raises(ValueError, match=r"^expected weight \[80, 4\] in torch.float64"):
        fused_edge_shift(x, src, dst, weight[:, :2], True)
    with pytest.raises(ValueError, match=r"^expected int64 edge_src and edge_dst$"):
        fused_edge_radial(x, src.int(), dst)
