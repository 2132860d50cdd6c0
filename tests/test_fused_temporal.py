"""The fused ESTAG temporal-layer kernel (dynforecast.ops.fused_temporal) is the torch layer.

Values and every gradient against `TemporalLayer`'s torch path in float64 (both masks, the
specialised width 16 and a generic one, several window lengths), one thread against two,
gradcheck, and the inputs it refuses.
"""

from __future__ import annotations

import pytest
import torch

from dynforecast.models.estag import TemporalLayer
from dynforecast.ops.fused_temporal import (
    fused_temporal_available,
    fused_temporal_layer,
    use_fused_temporal,
)

pytestmark = pytest.mark.skipif(
    not fused_temporal_available(torch.float64)[0],
    reason=f"fused temporal kernel not built here: {fused_temporal_available(torch.float64)[1]}",
)


def layer_and_inputs(hidden, frames, mask, nodes=9, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    layer = TemporalLayer(hidden, mask).to(dtype)
    with torch.no_grad():  # an O(1) coordinate head, so coordinates move and gradients are large
        layer.coordinate[2].weight.normal_()
    h = torch.randn(nodes, frames, hidden, dtype=dtype, requires_grad=True)
    x = torch.randn(nodes, frames, 3, dtype=dtype, requires_grad=True)
    return layer, h, x


def fused(layer, h, x):
    return fused_temporal_layer(
        h, x, layer.mask == "forward", layer.first, layer.query, layer.key, layer.value,
        layer.coordinate,
    )  # fmt: skip


def torch_path(layer, h, x, monkeypatch):
    monkeypatch.setenv("DYNFORECAST_FUSED", "0")
    moved_h, moved_x, weights = layer(h, x)
    monkeypatch.delenv("DYNFORECAST_FUSED")
    assert weights is not None  # the torch path really ran
    return moved_h, moved_x


def all_gradients(outputs, layer, h, x, seed=1):
    generator = torch.Generator().manual_seed(seed)
    seeds = [torch.randn(o.shape, dtype=o.dtype, generator=generator) for o in outputs]
    return torch.autograd.grad(outputs, [h, x, *layer.parameters()], seeds)


@pytest.mark.parametrize("mask", ["forward", "none"])
@pytest.mark.parametrize("hidden", [16, 12])
@pytest.mark.parametrize("frames", [10, 3, 1])
def test_fused_temporal_layer_equals_the_torch_layer(monkeypatch, mask, hidden, frames):
    layer, h, x = layer_and_inputs(hidden, frames, mask)
    expected = torch_path(layer, h, x, monkeypatch)
    got = fused(layer, h, x)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(
        all_gradients(got, layer, h, x), all_gradients(expected, layer, h, x), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_layer_takes_the_kernel_on_the_cpu_and_frame_zero_stays_put():
    layer, h, x = layer_and_inputs(16, 10, "forward")
    assert use_fused_temporal(h)
    _, moved_x, weights = layer(h, x)
    assert weights is None  # the fused path returns no attention weights
    assert torch.equal(moved_x[:, 0], x[:, 0])
    assert (moved_x[:, 1:] - x[:, 1:]).abs().max() > 1e-3


def test_float32_within_float32_tolerance(monkeypatch):
    layer, h, x = layer_and_inputs(16, 10, "forward", nodes=200, dtype=torch.float32)
    expected = torch_path(layer, h, x, monkeypatch)
    got = fused(layer, h, x)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(
        all_gradients(got, layer, h, x), all_gradients(expected, layer, h, x), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_two_threads_give_the_one_thread_result():
    layer, h, x = layer_and_inputs(16, 10, "forward", nodes=31)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outputs = fused(layer, h, x)
            results.append([*outputs, *all_gradients(outputs, layer, h, x)])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck_of_the_kernel():
    layer, h, x = layer_and_inputs(4, 5, "forward", nodes=3)
    assert torch.autograd.gradcheck(lambda h, x: fused(layer, h, x), (h, x))
    values = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(
        lambda *v: fused_temporal_layer(
            h.detach(), x.detach(), True,
            *_linears(layer, v),
        ),
        values,
    )  # fmt: skip


def _linears(layer, values):
    """Copies of the layer's Linears holding ``values`` as parameters (for gradcheck)."""
    first_w, first_b, qw, qb, kw, kb, vw, vb, c0w, c0b, c2w = values
    modules = []
    for weight, bias in ((first_w, first_b), (qw, qb), (kw, kb), (vw, vb)):
        modules.append(_FakeLinear(weight, bias))
    head = [_FakeLinear(c0w, c0b), None, _FakeLinear(c2w, None)]
    return (*modules, head)


class _FakeLinear:
    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias


def test_inputs_that_do_not_fit_are_refused():
    layer, h, x = layer_and_inputs(16, 10, "forward")
    args = (layer.first, layer.query, layer.key, layer.value, layer.coordinate)
    with pytest.raises(ValueError, match=r"^expected h \[V, T, H\] and x \[V, T, 3\]"):
        fused_temporal_layer(h, x[:, :5], True, *args)
    with pytest.raises(ValueError, match=r"^expected H and T <= 64 \(got H 16, T 65\)$"):
        fused_temporal_layer(torch.zeros(2, 65, 16), torch.zeros(2, 65, 3), True, *args)
    with pytest.raises(ValueError, match=r"^expected CPU tensors of one floating dtype$"):
        fused_temporal_layer(h, x.float(), True, *args)
    assert not use_fused_temporal(torch.zeros(2, 65, 16))
    assert not use_fused_temporal(torch.zeros(2, 10, 65))
