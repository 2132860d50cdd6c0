"""row_outer: values, layout and gradients (first and second order) against broadcasting."""

from __future__ import annotations

import pytest
import torch

from dynforecast.ops.outer import row_outer


def test_values_and_row_major_layout():
    left = torch.tensor([[1.0, 2.0]])
    right = torch.tensor([[3.0, 4.0, 5.0]])
    assert row_outer(left, right).tolist() == [[3.0, 4.0, 5.0, 6.0, 8.0, 10.0]]


def test_gradients_match_autograd_of_broadcasting():
    g = torch.Generator().manual_seed(0)
    left = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    right = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    torch.autograd.gradcheck(row_outer, (left, right))
    torch.autograd.gradgradcheck(row_outer, (left, right))


def test_gradient_only_for_inputs_that_need_it():
    left = torch.randn(4, 2, requires_grad=True)
    right = torch.randn(4, 3)
    row_outer(left, right).sum().backward()
    torch.testing.assert_close(left.grad, right.sum(1, keepdim=True).expand(4, 2))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError) as info:
        row_outer(torch.ones(3, 2), torch.ones(4, 2))
    assert (
        str(info.value)
        == "expected left [E, A] and right [E, B] with equal E (got (3, 2) and (4, 2))"
    )
