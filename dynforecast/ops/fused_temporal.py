"""ESTAG's temporal layer (ETM) as one fused CPU kernel, forward and backward.

The layer (`dynforecast.models.estag.TemporalLayer`; Wu et al., NeurIPS 2023, Sec. 3.3) is
attention of every node over its own T frames, with no interaction between nodes: q, k, v MLPs
on the features, a softmax over frames (causal under the forward mask), a coordinate head on the
values, and the feature and coordinate updates. In torch ops it is about 40 small kernels over
[V, T, H] and [V, T, T] tensors each way; here each node's T frames are done in L1 cache in one
pass (``csrc/temporal_attention.c``), and the backward recomputes the node's forward instead of
reading saved activations.

Built and cached like every C kernel (`dynforecast.ops.c_kernels`); used for float32/float64 CPU
tensors outside autocast and torch.compile, for H <= 64 and T <= 64; elsewhere, and with
``DYNFORECAST_FUSED=0``, the torch path runs the same function. No double backward.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from dynforecast.ops.c_kernels import load_kernel, pointer

KERNEL = "temporal_attention"
MAX_HIDDEN = 64
MAX_FRAMES = 64
_INT = ctypes.c_int64
_POINTER = ctypes.c_void_p


def _declare(library: ctypes.CDLL) -> None:
    forward = library.temporal_forward
    forward.argtypes = [_INT] * 3 + [ctypes.c_int] + [_POINTER] * 5 + [ctypes.c_int]
    forward.restype = ctypes.c_int
    backward = library.temporal_backward
    backward.argtypes = [_INT] * 3 + [ctypes.c_int] + [_POINTER] * 9 + [ctypes.c_int, _POINTER]
    backward.restype = ctypes.c_int


def fused_temporal_available(dtype: torch.dtype = torch.float32) -> tuple[bool, str]:
    """Whether the kernel runs for ``dtype`` on the CPU, and why (compiler, or the cause)."""
    build = load_kernel(KERNEL, dtype, _declare)
    return build.library is not None, build.reason


def use_fused_temporal(h: Tensor) -> bool:
    """True where `TemporalLayer` should call `fused_temporal_layer` for ``h`` [V, T, H]."""
    if h.device.type != "cpu" or torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    if h.dim() != 3 or h.shape[-1] > MAX_HIDDEN or h.shape[1] > MAX_FRAMES:
        return False
    return fused_temporal_available(h.dtype)[0]


def _library(dtype: torch.dtype) -> ctypes.CDLL:
    library = load_kernel(KERNEL, dtype, _declare).library
    assert library is not None
    return library


class _FusedTemporal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, x: Tensor, masked: bool, *parameters: Tensor):  # type: ignore[override]
        first_w, first_b, wq, bq, wk, bk, wv, bv, wc, bc, wc_out = parameters
        nodes, frames, hidden = h.shape
        h, x = h.contiguous(), x.contiguous()
        packed = torch.cat([
            first_w.t().reshape(-1), wq.t().reshape(-1), wk.t().reshape(-1),
            wv.t().reshape(-1), wc.t().reshape(-1), first_b, bq, bk, bv, bc, wc_out.reshape(-1),
        ])  # fmt: skip
        h_out, x_out = torch.empty_like(h), torch.empty_like(x)
        status = _library(h.dtype).temporal_forward(
            hidden, nodes, frames, int(masked),
            *map(pointer, (h, x, packed, h_out, x_out)), max(1, torch.get_num_threads()),
        )  # fmt: skip
        if status != 0:
            raise MemoryError("fused temporal kernel: a thread could not allocate its workspace")
        weights = torch.cat([p.reshape(-1) for p in (first_w, wq, wk, wv, wc)])
        ctx.masked = masked
        ctx.shapes = [p.shape for p in parameters]
        ctx.save_for_backward(h, x, packed, weights)
        return h_out, x_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor | None, grad_x: Tensor | None):  # type: ignore[override]
        h, x, packed, weights = ctx.saved_tensors
        nodes, frames, hidden = h.shape
        grad_h = torch.zeros_like(h) if grad_h is None else grad_h.contiguous()
        grad_x = torch.zeros_like(x) if grad_x is None else grad_x.contiguous()
        threads = max(1, torch.get_num_threads())
        size = packed.numel()
        g_h, g_x = torch.empty_like(h), torch.empty_like(x)
        g_params = h.new_empty(size)
        scratch = h.new_zeros(threads * size)
        status = _library(h.dtype).temporal_backward(
            hidden, nodes, frames, int(ctx.masked),
            *map(pointer, (h, x, packed, weights, grad_h, grad_x, g_h, g_x, g_params)),
            threads, pointer(scratch),
        )  # fmt: skip
        if status != 0:
            raise MemoryError("fused temporal kernel: a thread could not allocate its workspace")
        grads, offset = [], 0
        for shape in ctx.shapes:
            count = shape.numel()
            grads.append(g_params[offset : offset + count].view(shape))
            offset += count
        return (g_h, g_x, None, *grads)


def fused_temporal_layer(
    h: Tensor,
    x: Tensor,
    masked: bool,
    first: nn.Linear,
    query: nn.Linear,
    key: nn.Linear,
    value: nn.Linear,
    coordinate: nn.Sequential,
) -> tuple[Tensor, Tensor]:
    """h', x' of the temporal layer whose parameters are given (see the module docstring).

    ``first`` is the shared Linear(H, 3H) of the q, k, v MLPs, ``coordinate`` the head
    Linear(H, H), SiLU, Linear(H, 1, no bias). Shapes: h [V, T, H], x [V, T, 3] -> the same.

    Raises:
        RuntimeError: the kernel is unavailable (check `fused_temporal_available`).
        ValueError: shapes beyond the kernel's limits or inputs that do not fit together.
    """
    available, reason = fused_temporal_available(h.dtype)
    if not available:
        raise RuntimeError(f"fused temporal kernel unavailable: {reason}")
    if h.dim() != 3 or x.shape != (*h.shape[:2], 3):
        raise ValueError(
            f"expected h [V, T, H] and x [V, T, 3] (got {tuple(h.shape)}, {tuple(x.shape)})"
        )
    if h.shape[-1] > MAX_HIDDEN or h.shape[1] > MAX_FRAMES:
        raise ValueError(f"expected H and T <= {MAX_HIDDEN} (got H {h.shape[-1]}, T {h.shape[1]})")
    if first.weight.shape != (3 * h.shape[-1], h.shape[-1]):
        raise ValueError(f"expected a first Linear({h.shape[-1]}, {3 * h.shape[-1]})")
    parameters = (
        first.weight, first.bias, query.weight, query.bias, key.weight, key.bias,
        value.weight, value.bias, coordinate[0].weight, coordinate[0].bias, coordinate[2].weight,
    )  # fmt: skip
    if any(p.dtype != h.dtype or p.device != h.device for p in (x, *parameters)):
        raise ValueError("expected CPU tensors of one floating dtype")
    return _FusedTemporal.apply(h, x, masked, *parameters)
