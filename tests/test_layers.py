"""Shared model layers: the factorised edge MLP equals the plain concatenation it replaces."""

from __future__ import annotations

import pytest
import torch

from dynforecast.models.layers import (
    EdgeMessageMLP,
    coordinate_head,
    edge_geometry,
    inverse_in_degree,
    mlp,
    safe_unit,
)


def _concatenated(layer: EdgeMessageMLP, h, src, dst, squared_distance, edge_features):
    """The reference formulation: phi_e([h_i, h_j, r_ij, e_ij]) on a concatenation per edge."""
    parts = [h[dst], h[src], squared_distance]
    if edge_features is not None:
        shape = (*squared_distance.shape[:-1], edge_features.shape[-1])
        view = edge_features.view(edge_features.shape[0], *([1] * (h.dim() - 2)), -1)
        parts.append(view.expand(shape))
    pre = layer.first(torch.cat(parts, dim=-1))
    return layer.activation(layer.second(layer.activation(pre)))


@pytest.mark.parametrize("frames", [None, 4])
@pytest.mark.parametrize("edge_dim", [0, 3])
def test_edge_message_mlp_equals_the_concatenated_form(frames, edge_dim) -> None:
    torch.manual_seed(0)
    layer = EdgeMessageMLP(6, edge_dim).double()
    extra = () if frames is None else (frames,)
    h = torch.randn(5, *extra, 6, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, *extra, 3, dtype=torch.float64)
    src, dst = torch.tensor([0, 1, 2, 3, 4, 4]), torch.tensor([1, 0, 3, 2, 0, 2])
    _, squared = edge_geometry(x, src, dst)
    features = torch.randn(6, edge_dim, dtype=torch.float64) if edge_dim else None
    got = layer(h, src, dst, squared, features)
    expected = _concatenated(layer, h, src, dst, squared, features)
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(got)
    grads = torch.autograd.grad((got * weights).sum(), [h, *layer.parameters()])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [h, *layer.parameters()])
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


def test_edge_message_mlp_refuses_missing_edge_features() -> None:
    layer = EdgeMessageMLP(4, 2)
    h = torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"^expected edge features of width 2 \(got None\)$"):
        layer(h, torch.tensor([0]), torch.tensor([1]), torch.ones(1, 1), None)


def test_edge_geometry_points_from_sender_to_receiver() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    difference, squared = edge_geometry(x, torch.tensor([0]), torch.tensor([1]))
    torch.testing.assert_close(difference, torch.tensor([[1.0, 2.0, 2.0]]))
    torch.testing.assert_close(squared, torch.tensor([[9.0]]))
    torch.testing.assert_close(safe_unit(difference, squared), difference / 3.0)


def test_safe_unit_has_finite_gradient_for_coincident_points() -> None:
    x = torch.zeros(2, 3, requires_grad=True)
    difference, squared = edge_geometry(x, torch.tensor([0]), torch.tensor([1]))
    unit = safe_unit(difference, squared)
    assert torch.equal(unit, torch.zeros(1, 3))
    (grad,) = torch.autograd.grad(unit.sum(), x)
    assert torch.isfinite(grad).all()


def test_coordinate_head_starts_near_zero_and_mlp_shapes() -> None:
    torch.manual_seed(0)
    head = coordinate_head(16)
    assert head[-1].bias is None
    assert head[-1].weight.abs().max() < 1e-3
    layers = mlp([3, 5, 2], final_activation=True)
    assert [type(m).__name__ for m in layers] == ["Linear", "SiLU", "Linear", "SiLU"]
    with pytest.raises(ValueError, match=r"^expected at least two layer widths \(got \[3\]\)$"):
        mlp([3], final_activation=False)


def test_inverse_in_degree_counts_incoming_edges_and_avoids_division_by_zero() -> None:
    degree = inverse_in_degree(torch.tensor([1, 1, 2]), 4, torch.float64)
    torch.testing.assert_close(degree, torch.tensor([1.0, 0.5, 1.0, 1.0], dtype=torch.float64))


def test_short_row_softmax_equals_torch_softmax_with_gradients_and_masks() -> None:
    from dynforecast.models.layers import short_row_softmax

    scores = torch.randn(4, 6, 6, dtype=torch.float64) * 30
    scores = scores.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), -1e9)
    scores.requires_grad_(True)
    got, expected = short_row_softmax(scores), scores.softmax(-1)
    torch.testing.assert_close(got, expected)
    assert torch.equal(got.detach().triu(1), torch.zeros(4, 6, 6, dtype=torch.float64))
    weights = torch.randn(4, 6, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((got * weights).sum(), scores)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), scores)
    torch.testing.assert_close(grad, expected_grad)
