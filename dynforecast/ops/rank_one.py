"""Rank-one updates and projections of [rows, H] edge tensors with fast backward passes.

The EGNN-style layers (ESTAG, EGNN) add a squared distance times a weight row to every message
pre-activation, r_e w (an outer product of a column and a row), and end every coordinate head in a
Linear(H, 1) without bias. torch's own paths for both are slow on the CPU for tall operands (the
60,000 edge-frames x 16 features of ESTAG's reference batch):

* an in-place ``addmm_`` on a reshaped view records a CopySlices node, whose backward clones and
  copies the whole [rows, H] gradient twice, and the K = 1 matrix product behind it runs a GEMM
  kernel that is poor at inner size 1;
* the backward of a Linear(H, 1) turns the [rows, 1] gradient into [rows, H] with that same K = 1
  product.

Here both are a broadcast multiply (one pass) forward or backward and a matrix-vector product
(one pass) for the other gradient. The backward passes are built from differentiable ops, so
higher-order gradients still work; under autocast each gradient is returned in its input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _AddOuter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, target: Tensor, column: Tensor, row: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(column, row)
        ctx.mark_dirty(target)
        return target.addcmul_(column.to(target.dtype), row.to(target.dtype))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:  # type: ignore[override]
        column, row = ctx.saved_tensors
        flat = grad.reshape(-1, row.shape[-1])
        grad_column = grad_row = None
        if ctx.needs_input_grad[1]:
            grad_column = (flat @ row.to(flat.dtype)).reshape(column.shape).to(column.dtype)
        if ctx.needs_input_grad[2]:
            grad_row = (column.to(flat.dtype).reshape(1, -1) @ flat).reshape(row.shape)
            grad_row = grad_row.to(row.dtype)
        return grad, grad_column, grad_row


def add_outer_(target: Tensor, column: Tensor, row: Tensor) -> Tensor:
    """target += column * row in place (column broadcast along the last axis, row along the rest).

    ``target`` must be a fresh tensor that nothing else reads (it is overwritten, and autograd is
    told so). Shapes: target [..., H], column [..., 1], row [H] -> target.
    """
    if column.shape != (*target.shape[:-1], 1) or row.shape != target.shape[-1:]:
        raise ValueError(
            f"expected column {(*target.shape[:-1], 1)} and row {tuple(target.shape[-1:])} "
            f"(got {tuple(column.shape)} and {tuple(row.shape)})"
        )
    if torch.compiler.is_compiling():
        # Dynamo cannot trace a mark_dirty Function (a graph break per layer); compiled, the
        # plain in-place op is functionalised and fused, so the eager-only trick is not needed.
        return target.addcmul_(column.to(target.dtype), row.to(target.dtype))
    return _AddOuter.apply(target, column, row)


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(features, weight)
        flat = features.reshape(-1, weight.shape[-1])
        return (flat @ weight.to(flat.dtype)).reshape(*features.shape[:-1], 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        features, weight = ctx.saved_tensors
        grad_features = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_features = (grad * weight.to(grad.dtype)).to(features.dtype)
        if ctx.needs_input_grad[1]:
            flat = features.reshape(-1, weight.shape[-1]).to(grad.dtype)
            grad_weight = (grad.reshape(1, -1) @ flat).reshape(weight.shape).to(weight.dtype)
        return grad_features, grad_weight


def project(features: Tensor, weight: Tensor) -> Tensor:
    """features @ weight: a Linear(H, 1) without bias. Shapes: [..., H], [H] -> [..., 1]."""
    if weight.dim() != 1 or features.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"expected features [..., {weight.shape[-1]}] and weight [H] "
            f"(got {tuple(features.shape)} and {tuple(weight.shape)})"
        )
    return _Project.apply(features, weight)
