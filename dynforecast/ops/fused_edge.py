"""The EGNN-style edge MLP of ESTAG's and EGNN's layers as one fused CPU kernel (forward and backward).

Per edge e (receiver i = edge_dst, sender j = edge_src) and extra row t (ESTAG's frames):

    pre = R_i + S_j + r_e w_r + C_e,   m = SiLU(W2 SiLU(pre) + b2),   c = w4 . SiLU(W3 m + b3)

with R = A h + b1 and S = B h the first message Linear split by input block (computed by torch;
`dynforecast.models.layers.EdgeMessageMLP`), r the squared distance, C the projected edge
features, and (W3, b3, w4) the coordinate head. It returns agg = sum over edges into i of m and
the coordinate weight c. Torch needs about 30 passes over [E, T, H] tensors for this (forward
and backward); the kernel keeps every row in registers, and its backward recomputes the row
instead of reading saved activations, so training keeps no [E, T, H] tensor alive at all.

The C source (``csrc/edge_mlp.c``) is built on first use (`dynforecast.ops.c_kernels`: the
system's C compiler, ``-O3 -march=native``, OpenMP where it links, cached per CPU). Where no
compiler works the models use the torch path (same function; `fused_edge_available` says which
is active and why). ``DYNFORECAST_FUSED=0`` turns the kernel off. It is used for float32 and
float64 CPU tensors outside autocast and outside ``torch.compile`` (which fuses the torch path
itself), for layers up to `FUSED_MAX_HIDDEN` wide. Its backward is not differentiable again (no
double backward; forecasting needs none).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dynforecast.ops.c_kernels import load_kernel, pointer

KERNEL = "edge_mlp"
_INT = ctypes.c_int64
_POINTER = ctypes.c_void_p


def _declare(library: ctypes.CDLL) -> None:
    forward = library.edge_mlp_forward
    forward.argtypes = [_INT] * 4 + [_POINTER] * 14 + [ctypes.c_int, _POINTER]
    forward.restype = ctypes.c_int
    backward = library.edge_mlp_backward
    backward.argtypes = [_INT] * 4 + [_POINTER] * 21 + [ctypes.c_int, _POINTER]
    backward.restype = ctypes.c_int


def _library(dtype: torch.dtype) -> ctypes.CDLL:
    library = load_kernel(KERNEL, dtype, _declare).library
    assert library is not None
    return library


def fused_edge_available(dtype: torch.dtype = torch.float32) -> tuple[bool, str]:
    """Whether the fused kernel runs for ``dtype`` on the CPU, and why (compiler, or the cause)."""
    build = load_kernel(KERNEL, dtype, _declare)
    return build.library is not None, build.reason


FUSED_MAX_HIDDEN = 16
"""Widest layer the models hand to the kernel. Measured on the project's 2-core CPU (float32, one
thread, forward / forward + backward, torch path -> kernel): H 16 on ESTAG's batch 6.0 / 16.4 ->
3.7 / 11.9 ms; H 32 19.9 / 41.4 -> 16.4 / 57.4 ms; H 64 (EGNN, 20,000 edges) 10.3 / 33.2 ->
14.3 / 48.5 ms. Above 16 the backward's small matrix products lose to MKL's, so wider layers
(EGNN's default 64) stay on the torch path."""


def use_fused_edge(reference: Tensor, hidden_dim: int) -> bool:
    """True where the layers should call `fused_edge_mlp` for tensors like ``reference``."""
    if reference.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu") or hidden_dim > FUSED_MAX_HIDDEN:
        return False
    available, _ = fused_edge_available(reference.dtype)
    return available


class _FusedEdgeMLP(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        receiver: Tensor,
        sender: Tensor,
        edge_dst: Tensor,
        edge_src: Tensor,
        radial: Tensor,
        radial_weight: Tensor,
        edge_term: Tensor | None,
        w2: Tensor,
        b2: Tensor,
        w3: Tensor,
        b3: Tensor,
        w4: Tensor,
        aggregate: bool,
    ) -> tuple[Tensor, Tensor]:
        library = _library(receiver.dtype)
        num_nodes, rows, hidden = receiver.shape
        num_edges = edge_dst.shape[0]
        threads = max(1, torch.get_num_threads())
        tensors = [
            t.contiguous() if t is not None else None
            for t in (receiver, sender, radial, radial_weight, edge_term, w2, b2, w3, b3, w4)
        ]
        receiver, sender, radial, radial_weight, edge_term, w2, b2, w3, b3, w4 = tensors
        w2t, w3t = w2.t().contiguous(), w3.t().contiguous()
        agg = receiver.new_zeros(receiver.shape) if aggregate else None
        weight = receiver.new_empty(num_edges, rows)
        scratch = None
        if aggregate and threads > 1:
            scratch = receiver.new_zeros((threads - 1, num_nodes, rows, hidden))
        status = library.edge_mlp_forward(
            hidden, num_nodes, num_edges, rows,
            *map(pointer, (receiver, sender, edge_dst, edge_src, radial, radial_weight,
                            edge_term, w2t, b2, w3t, b3, w4, agg, weight)),
            threads, pointer(scratch),
        )  # fmt: skip
        if status != 0:
            raise MemoryError("fused edge kernel: a thread could not allocate its block buffers")
        ctx.aggregate = aggregate
        ctx.has_edge_term = edge_term is not None
        ctx.save_for_backward(
            receiver, sender, edge_dst, edge_src, radial, radial_weight, edge_term,
            w2, w2t, b2, w3, w3t, b3, w4,
        )  # fmt: skip
        if agg is None:
            agg = receiver.new_zeros(0)
        ctx.mark_non_differentiable(*([] if aggregate else [agg]))
        return agg, weight

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_agg: Tensor | None, grad_weight: Tensor | None):  # type: ignore[override]
        (receiver, sender, edge_dst, edge_src, radial, radial_weight, edge_term,
         w2, w2t, b2, w3, w3t, b3, w4) = ctx.saved_tensors  # fmt: skip
        library = _library(receiver.dtype)
        num_nodes, rows, hidden = receiver.shape
        num_edges = edge_dst.shape[0]
        threads = max(1, torch.get_num_threads())
        if grad_weight is None:
            grad_weight = radial.new_zeros(radial.shape)
        grad_weight = grad_weight.contiguous()
        if not ctx.aggregate or grad_agg is None:
            grad_agg = None
        else:
            grad_agg = grad_agg.contiguous()
        grad_receiver = torch.zeros_like(receiver)
        grad_sender = torch.zeros_like(receiver)
        grad_radial = torch.empty_like(radial)
        grad_edge_term = torch.zeros_like(edge_term) if edge_term is not None else None
        grad_weights = receiver.new_zeros(2 * hidden * hidden + 4 * hidden)
        scratch = receiver.new_zeros(
            (threads - 1) * 2 * num_nodes * rows * hidden + threads * grad_weights.numel()
        )
        status = library.edge_mlp_backward(
            hidden, num_nodes, num_edges, rows,
            *map(pointer, (receiver, sender, edge_dst, edge_src, radial, radial_weight,
                            edge_term, w2, w2t, b2, w3, w3t, b3, w4, grad_agg, grad_weight,
                            grad_receiver, grad_sender, grad_radial, grad_edge_term,
                            grad_weights)),
            threads, pointer(scratch),
        )  # fmt: skip
        if status != 0:
            raise MemoryError("fused edge kernel: a thread could not allocate its block buffers")
        square = hidden * hidden
        grad_w2 = grad_weights[:square].view(hidden, hidden)
        grad_w3 = grad_weights[square : 2 * square].view(hidden, hidden)
        grad_b2, grad_b3, grad_w4, grad_radial_weight = grad_weights[2 * square :].view(4, hidden)
        return (
            grad_receiver, grad_sender, None, None, grad_radial, grad_radial_weight,
            grad_edge_term, grad_w2, grad_b2, grad_w3, grad_b3, grad_w4, None,
        )  # fmt: skip


def fused_edge_mlp(
    receiver: Tensor,
    sender: Tensor,
    edge_dst: Tensor,
    edge_src: Tensor,
    radial: Tensor,
    radial_weight: Tensor,
    edge_term: Tensor | None,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    w4: Tensor,
    aggregate: bool = True,
) -> tuple[Tensor | None, Tensor]:
    """Aggregated messages and coordinate weights of every edge (see the module docstring).

    Shapes: receiver, sender [V, T, H]; edge_dst, edge_src [E] int64 in [0, V); radial [E, T];
    radial_weight [H]; edge_term [E, H] or None; w2, w3 [H, H] (Linear.weight); b2, b3, w4 [H]
    -> agg [V, T, H] (None without ``aggregate``), weight [E, T]. All on the CPU, one dtype.

    Raises:
        RuntimeError: the kernel is not available (check `fused_edge_available` first).
        ValueError: shapes, dtypes or devices that do not fit together.
    """
    available, reason = fused_edge_available(receiver.dtype)
    if not available:
        raise RuntimeError(f"fused edge kernel unavailable: {reason}")
    _check(receiver, sender, edge_dst, edge_src, radial, radial_weight, edge_term, w2, w3)
    agg, weight = _FusedEdgeMLP.apply(
        receiver, sender, edge_dst, edge_src, radial, radial_weight, edge_term,
        w2, b2, w3, b3, w4, aggregate,
    )  # fmt: skip
    return (agg if aggregate else None), weight


def _check(
    receiver: Tensor,
    sender: Tensor,
    edge_dst: Tensor,
    edge_src: Tensor,
    radial: Tensor,
    radial_weight: Tensor,
    edge_term: Tensor | None,
    w2: Tensor,
    w3: Tensor,
) -> None:
    if receiver.dim() != 3 or sender.shape != receiver.shape:
        raise ValueError(
            f"expected receiver and sender [V, T, H] of one shape "
            f"(got {tuple(receiver.shape)} and {tuple(sender.shape)})"
        )
    nodes, rows, hidden = receiver.shape
    edges = edge_dst.shape[0]
    if edge_dst.dtype != torch.int64 or edge_src.dtype != torch.int64:
        raise ValueError("expected int64 edge_dst and edge_src")
    if edge_src.shape != (edges,) or radial.shape != (edges, rows):
        raise ValueError(
            f"expected edge_src [{edges}] and radial [{edges}, {rows}] "
            f"(got {tuple(edge_src.shape)} and {tuple(radial.shape)})"
        )
    if edge_term is not None and edge_term.shape != (edges, hidden):
        raise ValueError(f"expected edge_term [{edges}, {hidden}] (got {tuple(edge_term.shape)})")
    if (
        w2.shape != (hidden, hidden)
        or w3.shape != (hidden, hidden)
        or radial_weight.numel() != hidden
    ):
        raise ValueError(f"expected [{hidden}, {hidden}] weights and a radial weight of {hidden}")
    tensors = [receiver, sender, radial, radial_weight, w2, w3]
    if edge_term is not None:
        tensors.append(edge_term)
    if any(t.device.type != "cpu" or t.dtype != receiver.dtype for t in tensors):
        raise ValueError("expected CPU tensors of one floating dtype")
    if edges and (
        int(edge_dst.min()) < 0 or int(edge_dst.max()) >= nodes
        or int(edge_src.min()) < 0 or int(edge_src.max()) >= nodes
    ):  # fmt: skip
        raise ValueError(f"edge indices outside [0, {nodes})")
