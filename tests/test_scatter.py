"""The scatter helpers every model aggregates with."""

from __future__ import annotations

import pytest
import torch

from dynforecast.ops import scatter_mean, scatter_softmax, scatter_sum


def test_scatter_sum_and_mean_match_a_dense_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(50, 4, 3, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 7, (50,), generator=gen)
    dense = torch.zeros(9, 50, dtype=torch.float64)  # 9 segments: 7, 8 stay empty
    dense[index, torch.arange(50)] = 1.0
    expected_sum = torch.einsum("se,ekd->skd", dense, src)
    assert torch.allclose(scatter_sum(src, index, 9), expected_sum)
    counts = dense.sum(1).clamp_min(1).view(-1, 1, 1)
    assert torch.allclose(scatter_mean(src, index, 9), expected_sum / counts)
    assert torch.equal(scatter_mean(src, index, 9)[7:], torch.zeros(2, 4, 3, dtype=torch.float64))


def test_scatter_softmax_normalises_per_segment_and_is_stable() -> None:
    logits = torch.tensor([[1000.0], [1001.0], [-5.0], [3.0], [3.0]])
    index = torch.tensor([0, 0, 1, 2, 2])
    out = scatter_softmax(logits, index, 3)
    assert torch.isfinite(out).all()
    assert torch.allclose(scatter_sum(out, index, 3), torch.ones(3, 1))
    assert torch.allclose(out[:2, 0], torch.softmax(torch.tensor([1000.0, 1001.0]), 0))
    assert out[2, 0] == 1.0


def test_scatter_softmax_gradient_matches_torch_softmax() -> None:
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([1, 1, 1, 0, 0, 0])
    (scatter_softmax(x, index, 2) ** 2).sum().backward()
    expected = x.detach().clone().requires_grad_(True)
    (torch.softmax(expected.view(2, 3, 2), dim=1) ** 2).sum().backward()
    assert torch.allclose(x.grad, expected.grad)


def test_scatter_rejects_mismatched_index() -> None:
    with pytest.raises(ValueError, match="expected a 1-D index with one entry per row"):
        scatter_sum(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2)
