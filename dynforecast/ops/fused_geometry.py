"""The geometric half of an EGNN/ESTAG layer as fused CPU kernels: squared edge lengths, and the
clamped coordinate update summed at each receiver, with their backward passes.

Torch runs these as about ten ops over [E, T, 3] and [E, T, 1] tensors each way (index_select,
difference, norm, division, clamp, index_add and their gradients: about 4 ms per ESTAG layer on
the reference batch); here each is one pass over the edges (``csrc/edge_geometry.c``). Same
function as `dynforecast.models.layers.edge_geometry`, `safe_unit` and `coordinate_shift`;
built and cached like every C kernel (`dynforecast.ops.c_kernels`); used for float32/float64
CPU tensors outside autocast and torch.compile (`use_fused_geometry`).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynforecast.ops.c_kernels import load_kernel, pointer

KERNEL = "edge_geometry"
_INT = ctypes.c_int64
_POINTER = ctypes.c_void_p
_DOUBLE = ctypes.c_double


def _declarer(dtype: torch.dtype):
    """ctypes signatures for the ``dtype`` build (eps is a C float or double)."""
    real = _DOUBLE if dtype == torch.float64 else ctypes.c_float

    def declare(library: ctypes.CDLL) -> None:
        library.edge_radial_forward.argtypes = [_INT] * 3 + [_POINTER] * 4 + [ctypes.c_int]
        library.edge_radial_backward.argtypes = (
            [_INT] * 3 + [_POINTER] * 5 + [ctypes.c_int, _POINTER]
        )
        shift = [_INT] * 3 + [_POINTER] * 4 + [ctypes.c_int, real]
        library.edge_shift_forward.argtypes = [*shift, _POINTER, ctypes.c_int, _POINTER]
        library.edge_shift_backward.argtypes = shift + [_POINTER] * 3 + [ctypes.c_int, _POINTER]
        for name in (
            "edge_radial_forward", "edge_radial_backward", "edge_shift_forward",
            "edge_shift_backward",
        ):  # fmt: skip
            getattr(library, name).restype = ctypes.c_int

    return declare


def _library(dtype: torch.dtype) -> ctypes.CDLL:
    build = load_kernel(KERNEL, dtype, _declarer(dtype))
    if build.library is None:
        raise RuntimeError(f"fused geometry kernel unavailable: {build.reason}")
    return build.library


def fused_geometry_available(dtype: torch.dtype = torch.float32) -> tuple[bool, str]:
    """Whether the kernels run for ``dtype`` on the CPU, and why (compiler, or the cause)."""
    build = load_kernel(KERNEL, dtype, _declarer(dtype))
    return build.library is not None, build.reason


def use_fused_geometry(x: Tensor) -> bool:
    """True where the layers should use these kernels for positions like ``x``."""
    if x.device.type != "cpu" or torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    return fused_geometry_available(x.dtype)[0]


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _scratch(x: Tensor) -> Tensor | None:
    threads = _threads()
    return x.new_zeros((threads - 1, *x.shape)) if threads > 1 else None


class _EdgeRadial(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, edge_src: Tensor, edge_dst: Tensor) -> Tensor:  # type: ignore[override]
        nodes, rows, _ = x.shape
        radial = x.new_empty(edge_dst.shape[0], rows)
        _library(x.dtype).edge_radial_forward(
            nodes, edge_dst.shape[0], rows, *map(pointer, (x, edge_dst, edge_src, radial)),
            _threads(),
        )  # fmt: skip
        ctx.save_for_backward(x, edge_src, edge_dst)
        return radial

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, edge_src, edge_dst = ctx.saved_tensors
        nodes, rows, _ = x.shape
        grad_x = torch.zeros_like(x)
        # every buffer the kernel touches is held in a local: a temporary's memory would be freed
        # before the call reads it
        grad, scratch = grad.contiguous(), _scratch(x)
        _library(x.dtype).edge_radial_backward(
            nodes, edge_dst.shape[0], rows, *map(pointer, (x, edge_dst, edge_src, grad, grad_x)),
            _threads(), pointer(scratch),
        )  # fmt: skip
        return grad_x, None, None


class _EdgeShift(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, edge_src: Tensor, edge_dst: Tensor, weight: Tensor, normalise: bool,
        eps: float,
    ) -> Tensor:  # fmt: skip
        nodes, rows, _ = x.shape
        weight = weight.contiguous()
        shift, scratch = torch.zeros_like(x), _scratch(x)
        _library(x.dtype).edge_shift_forward(
            nodes, edge_dst.shape[0], rows, *map(pointer, (x, edge_dst, edge_src, weight)),
            int(normalise), eps, pointer(shift), _threads(), pointer(scratch),
        )  # fmt: skip
        ctx.normalise, ctx.eps = normalise, eps
        ctx.save_for_backward(x, edge_src, edge_dst, weight)
        return shift

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, edge_src, edge_dst, weight = ctx.saved_tensors
        nodes, rows, _ = x.shape
        grad_x = torch.zeros_like(x)
        grad_weight = torch.empty_like(weight)
        grad, scratch = grad.contiguous(), _scratch(x)
        _library(x.dtype).edge_shift_backward(
            nodes, edge_dst.shape[0], rows, *map(pointer, (x, edge_dst, edge_src, weight)),
            int(ctx.normalise), ctx.eps, *map(pointer, (grad, grad_x, grad_weight)),
            _threads(), pointer(scratch),
        )  # fmt: skip
        return grad_x, None, None, grad_weight, None, None


def _check(x: Tensor, edge_src: Tensor, edge_dst: Tensor) -> None:
    if x.dim() != 3 or x.shape[-1] != 3 or not x.is_contiguous():
        raise ValueError(f"expected contiguous positions [V, T, 3] (got {tuple(x.shape)})")
    if edge_src.dtype != torch.int64 or edge_dst.dtype != torch.int64:
        raise ValueError("expected int64 edge_src and edge_dst")
    if edge_src.shape != edge_dst.shape or edge_src.dim() != 1:
        raise ValueError("expected edge_src and edge_dst [E] of one length")
    nodes = x.shape[0]
    if edge_src.numel() and (
        int(edge_src.min()) < 0 or int(edge_dst.min()) < 0
        or int(edge_src.max()) >= nodes or int(edge_dst.max()) >= nodes
    ):  # fmt: skip
        raise ValueError(f"edge indices outside [0, {nodes})")


def fused_edge_radial(x: Tensor, edge_src: Tensor, edge_dst: Tensor) -> Tensor:
    """|x_dst - x_src|^2 of every edge and row. Shapes: x [V, T, 3] -> [E, T].

    Raises:
        RuntimeError: the kernel is unavailable; ValueError: inputs that do not fit.
    """
    _check(x, edge_src, edge_dst)
    return _EdgeRadial.apply(x, edge_src.contiguous(), edge_dst.contiguous())


def fused_edge_shift(
    x: Tensor,
    edge_src: Tensor,
    edge_dst: Tensor,
    weight: Tensor,
    normalise: bool,
    eps: float = 1e-12,
) -> Tensor:
    """sum_{j -> i} clamp(u_ij w_ij, -100, 100) at every receiver i, u the unit vector (or the
    plain difference without ``normalise``) from sender to receiver, as `coordinate_shift` of
    `safe_unit` before its per-node scaling. Shapes: x [V, T, 3], weight [E, T] -> [V, T, 3].

    Raises:
        RuntimeError: the kernel is unavailable; ValueError: inputs that do not fit.
    """
    _check(x, edge_src, edge_dst)
    if weight.shape != (edge_src.shape[0], x.shape[1]) or weight.dtype != x.dtype:
        raise ValueError(
            f"expected weight [{edge_src.shape[0]}, {x.shape[1]}] in {x.dtype} "
            f"(got {tuple(weight.shape)} in {weight.dtype})"
        )
    return _EdgeShift.apply(x, edge_src.contiguous(), edge_dst.contiguous(), weight, normalise, eps)
