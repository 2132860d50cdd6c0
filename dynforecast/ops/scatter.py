"""Segment reductions over the first axis, built on torch's own ops.

Every model aggregates edge quantities onto nodes with these helpers, so that a faster kernel can
replace them in one place and be tested against them. The output size is always passed explicitly:
inferring it from ``index.max()`` would silently drop trailing nodes without edges and forces a
device synchronisation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(src: Tensor, index: Tensor, dim_size: int) -> None:
    if index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise ValueError(
            f"expected a 1-D index with one entry per row of src (got index {tuple(index.shape)}, "
            f"src {tuple(src.shape)})"
        )
    if dim_size < 0:
        raise ValueError(f"expected dim_size >= 0 (got {dim_size})")


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Sum rows of ``src`` into ``dim_size`` segments given by ``index``.

    Shapes: src [E, *F], index [E] (int64, values in [0, dim_size)) -> [dim_size, *F].
    """
    _check(src, index, dim_size)
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def scatter_count(index: Tensor, dim_size: int, dtype: torch.dtype) -> Tensor:
    """Number of rows per segment, as ``dtype``. Shapes: index [E] -> [dim_size]."""
    ones = torch.ones(index.shape[0], dtype=dtype, device=index.device)
    return torch.zeros(dim_size, dtype=dtype, device=index.device).index_add_(0, index, ones)


def scatter_mean(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Mean of rows per segment; empty segments give 0 (sum / max(count, 1)).

    Shapes: src [E, *F], index [E] -> [dim_size, *F].
    """
    total = scatter_sum(src, index, dim_size)
    count = scatter_count(index, dim_size, src.dtype).clamp_min(1.0)
    return total / count.view(-1, *([1] * (src.dim() - 1)))


def scatter_softmax(logits: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Softmax of ``logits`` over the rows that share a segment (e.g. a node's incoming edges).

    Numerically stable: the per-segment maximum is subtracted first (taken without gradient: the
    softmax does not depend on it). Rows of an empty segment do not exist, so nothing divides by 0.
    Shapes: logits [E, *F], index [E] -> [E, *F].
    """
    _check(logits, index, dim_size)
    expanded = index.view(-1, *([1] * (logits.dim() - 1))).expand_as(logits)
    seg_max = logits.new_full((dim_size, *logits.shape[1:]), float("-inf"))
    seg_max = seg_max.scatter_reduce(0, expanded, logits.detach(), reduce="amax", include_self=True)
    shifted = (logits - seg_max.index_select(0, index)).exp()
    denom = scatter_sum(shifted, index, dim_size)
    return shifted / denom.index_select(0, index)
