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


def test_mixed_precision_factors_get_gradients_in_their_own_dtype() -> None:
    # Under CUDA autocast SAKE multiplies float32 attention with bfloat16 messages; the same mix
    # on the CPU must backpropagate (it once failed inside bmm with "expected scalar type").
    left = torch.rand(7, 3, dtype=torch.float32, requires_grad=True)
    right = torch.rand(7, 5, dtype=torch.bfloat16, requires_grad=True)
    row_outer(left, right).float().square().sum().backward()
    expected_left = left.detach().clone().requires_grad_(True)
    expected_right = right.detach().float().requires_grad_(True)
    (expected_left.unsqueeze(2) * expected_right.unsqueeze(1)).square().sum().backward()
    assert left.grad.dtype == torch.float32 and right.grad.dtype == torch.bfloat16
    assert torch.allclose(left.grad, expected_left.grad, rtol=1e-2)
    assert torch.allclose(right.grad.float(), expected_right.grad, rtol=1e-2)
