"""Small building blocks shared by the equivariant models (ESTAG, EGNN, SAKE).

Kept deliberately small and stable: an MLP builder, the near-zero initialisation of coordinate
heads, relative edge geometry, and the EGNN-style edge message MLP whose first Linear is evaluated
on nodes instead of edges (exact, and E/V times cheaper for that layer).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dynforecast.ops.fused_edge import fused_edge_mlp, use_fused_edge
from dynforecast.ops.rank_one import add_outer_, project
from dynforecast.ops.scatter import scatter_count, scatter_sum

COORDINATE_HEAD_GAIN = 0.001
"""Xavier gain of the last Linear of every coordinate head: an untrained model barely moves
coordinates, so it starts close to its pooling/extrapolation rule instead of random motion."""
COORDINATE_CLAMP = 100.0


class SiLU(nn.SiLU):
    """torch's SiLU, but overwriting its input when autograd does not need it (inference).

    Every use here applies it to the fresh output of a Linear or of a sum that nothing else
    reads, so overwriting is safe; it spares one [E, T, H]-sized allocation per call, and on the
    CPU writing into a new multi-megabyte buffer costs several times the arithmetic. Under
    autograd (input requiring grad) it is the ordinary out-of-place SiLU.
    """

    def forward(self, input: Tensor) -> Tensor:
        return nn.functional.silu(input, inplace=not input.requires_grad)


def mlp(sizes: Sequence[int], *, final_activation: bool, bias_last: bool = True) -> nn.Sequential:
    """Linear layers of the given widths with SiLU between them (and after the last if asked).

    ``mlp([16, 16, 16], final_activation=True)`` is Linear(16,16), SiLU, Linear(16,16), SiLU.
    """
    if len(sizes) < 2:
        raise ValueError(f"expected at least two layer widths (got {list(sizes)})")
    layers: list[nn.Module] = []
    last = len(sizes) - 2
    for index, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(width_in, width_out, bias=bias_last or index < last))
        if index < last or final_activation:
            layers.append(SiLU())
    return nn.Sequential(*layers)


def small_init_(linear: nn.Linear, gain: float = COORDINATE_HEAD_GAIN) -> nn.Linear:
    """Xavier-uniform weights with a small gain, zero bias (if any); returns the layer."""
    nn.init.xavier_uniform_(linear.weight, gain=gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class CoordinateHead(nn.Sequential):
    """Linear(H,H), SiLU, Linear(H,1, no bias), its last layer a `project` (fast backward).

    The parameters and their names are those of the plain ``nn.Sequential`` (checkpoints and
    the reference-weight transplants in benchmarks/ read ``head[0]`` and ``head[2]``).
    """

    def forward(self, input: Tensor) -> Tensor:
        first, activation, last = self
        return project(activation(first(input)), last.weight[0])


def coordinate_head(hidden_dim: int) -> CoordinateHead:
    """Invariant scalar weight for a coordinate update: Linear(H,H), SiLU, Linear(H,1, no bias).

    The last layer is Xavier-initialised with gain 0.001 (EGNN/ESTAG reference), so updates start
    near zero. Shapes: [..., H] -> [..., 1].
    """
    head = CoordinateHead(
        *mlp([hidden_dim, hidden_dim, 1], final_activation=False, bias_last=False)
    )
    small_init_(head[-1])
    return head


def edge_geometry(positions: Tensor, edge_src: Tensor, edge_dst: Tensor) -> tuple[Tensor, Tensor]:
    """Difference vectors x_dst - x_src and squared distances of every edge.

    The receiver is ``edge_dst`` (aggregation happens there), so the vector points from the sender
    to the receiver, as x_i - x_j in the papers with i the receiver.
    Shapes: positions [V, *S, 3] -> difference [E, *S, 3], squared distance [E, *S, 1].
    """
    difference = positions.index_select(0, edge_dst) - positions.index_select(0, edge_src)
    return difference, (difference * difference).sum(-1, keepdim=True)


def safe_unit(difference: Tensor, squared_distance: Tensor, eps: float = 1e-12) -> Tensor:
    """difference / max(|difference|, eps) with a finite gradient when two points coincide.

    Clamping the squared distance (not the norm) keeps sqrt away from 0, where its derivative is
    infinite; below eps the clamp's zero gradient cuts the path. Shapes: [E, *S, 3], [E, *S, 1].
    """
    return difference / squared_distance.clamp_min(eps * eps).sqrt()


def coordinate_shift(
    direction: Tensor, weight: Tensor, edge_dst: Tensor, num_nodes: int, node_scale: Tensor
) -> Tensor:
    """The EGNN/ESTAG coordinate update: scale_i * sum_{j -> i} clamp(w_ij d_ij, -100, 100).

    ``direction`` is x_i - x_j or its unit vector, ``weight`` an invariant scalar per edge,
    ``node_scale`` 1/deg(i) for a mean (or 1 for a sum). The element-wise clamp is the reference
    codes' guard against exploding updates. Equivariant because d_ij rotates with the input and
    w_ij does not. Shapes: direction [E, *S, 3], weight [E, *S, 1], node_scale [V] -> [V, *S, 3].
    """
    shift = (direction * weight).clamp(-COORDINATE_CLAMP, COORDINATE_CLAMP)
    total = scatter_sum(shift, edge_dst, num_nodes)
    return total * node_scale.view(-1, *([1] * (total.dim() - 1)))


def short_row_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last axis, written out: exp(s - max) / sum.

    Equal to ``scores.softmax(-1)``, but on the CPU torch's softmax kernel is ~20x slower for
    short rows such as ESTAG's [V, T, T] attention (T = 10). Entries of -1e9 (masked) give exactly
    0. The maximum is taken without gradient (the result does not depend on it).
    """
    exponentials = (scores - scores.detach().amax(-1, keepdim=True)).exp()
    return exponentials / exponentials.sum(-1, keepdim=True)


def inverse_in_degree(edge_dst: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """1 / max(number of incoming edges, 1) per node, computed once per forward for mean updates.

    Shapes: edge_dst [E] -> [V].
    """
    return scatter_count(edge_dst, num_nodes, dtype).clamp_min(1.0).reciprocal()


class EdgeMessageMLP(nn.Module):
    """m_ij = SiLU(W2 SiLU(W1 [h_i || h_j || r_ij || e_ij] + b1) + b2), i = edge_dst (receiver).

    The first Linear is split exactly as W1 [h_i || h_j] = A h_i + B h_j: A h and B h are computed
    once per node and gathered per edge, instead of multiplying a [E, 2H+1+F] concatenation.
    Edge features e (invariant, the same at every frame) are projected once per edge and broadcast
    over any extra axes of h (e.g. the T frames of ESTAG). Parameters are those of one
    Linear(2H+1+F, H) and one Linear(H, H), as in the reference layers.

    Shapes:
        h [V, *S, H], squared_distance [E, *S, 1], edge_features [E, F] or None -> m [E, *S, H]
    """

    def __init__(self, hidden_dim: int, edge_feature_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.edge_feature_dim = edge_feature_dim
        self.first = nn.Linear(2 * hidden_dim + 1 + edge_feature_dim, hidden_dim)
        self.second = nn.Linear(hidden_dim, hidden_dim)
        self.activation = SiLU()

    def forward(
        self,
        h: Tensor,
        edge_src: Tensor,
        edge_dst: Tensor,
        squared_distance: Tensor,
        edge_features: Tensor | None,
    ) -> Tensor:
        hidden = self.hidden_dim
        weight = self.first.weight
        receiver, sender = self.node_projections(h)
        # In-place accumulation on the gathered tensor (index_select's backward keeps no output):
        # fewer [E, *S, H] temporaries, measurably faster on the CPU.
        pre = receiver.view(h.shape).index_select(0, edge_dst)
        pre += sender.view(h.shape).index_select(0, edge_src)
        # The radial term r_ij w_r, in place on the gathered tensor itself (not a view of it,
        # which would make autograd copy the whole gradient twice); its backward is two
        # matrix-vector products (`dynforecast.ops.rank_one`). In-place ops escape autocast:
        # the operands take pre's dtype, a no-op without it.
        add_outer_(pre, squared_distance, weight[:, 2 * hidden])
        edge_term = self.edge_term(edge_features)
        if edge_term is not None:
            pre += edge_term.view(edge_term.shape[0], *([1] * (pre.dim() - 2)), hidden)
        return self.activation(self.second(self.activation(pre)))

    def node_projections(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Receiver (with the bias) and sender projections A h + b1 and B h of every node.

        Two small matmuls with contiguous outputs (index_select on a strided slice is several
        times slower). Shapes: h [V, *S, H] -> two [V, *S, H].
        """
        hidden, weight = self.hidden_dim, self.first.weight
        flat = h.reshape(-1, hidden)
        receiver = torch.addmm(self.first.bias, flat, weight[:, :hidden].t())
        sender = flat @ weight[:, hidden : 2 * hidden].t()
        return receiver.view(h.shape), sender.view(h.shape)

    def edge_term(self, edge_features: Tensor | None) -> Tensor | None:
        """C e_ij, the edge features' share of the first Linear, once per edge ([E, H]).

        Raises:
            ValueError: edge features missing or of the wrong width for this layer.
        """
        if not self.edge_feature_dim:
            return None
        if edge_features is None or edge_features.shape[-1] != self.edge_feature_dim:
            got = None if edge_features is None else tuple(edge_features.shape)
            raise ValueError(f"expected edge features of width {self.edge_feature_dim} (got {got})")
        return edge_features @ self.first.weight[:, 2 * self.hidden_dim + 1 :].t()


def messages_and_coordinate_weights(
    message: EdgeMessageMLP,
    coordinate: CoordinateHead,
    h: Tensor,
    edge_src: Tensor,
    edge_dst: Tensor,
    squared_distance: Tensor,
    edge_features: Tensor | None,
    aggregate: bool = True,
) -> tuple[Tensor | None, Tensor]:
    """sum_{j -> i} m_ij per node (None without ``aggregate``) and the coordinate weights
    phi_x(m_ij) of every edge: the edge half of an EGNN/ESTAG layer.

    On the CPU in float32/float64 and for H <= 16 this is one fused kernel
    (`dynforecast.ops.fused_edge`: no [E, *S, H] tensor is stored for the backward); elsewhere
    (CUDA, autocast, torch.compile, wider layers, no C compiler) the same function in torch ops. Shapes: h [V, *S, H], squared_distance
    [E, *S, 1], edge_features [E, F] or None -> [V, *S, H] or None, [E, *S, 1].
    """
    if not use_fused_edge(h, message.hidden_dim):
        messages = message(h, edge_src, edge_dst, squared_distance, edge_features)
        aggregated = scatter_sum(messages, edge_dst, h.shape[0]) if aggregate else None
        return aggregated, coordinate(messages)
    return fused_messages_and_coordinate_weights(
        message, coordinate, h, edge_src, edge_dst, squared_distance, edge_features, aggregate
    )


def fused_messages_and_coordinate_weights(
    message: EdgeMessageMLP,
    coordinate: CoordinateHead,
    h: Tensor,
    edge_src: Tensor,
    edge_dst: Tensor,
    squared_distance: Tensor,
    edge_features: Tensor | None,
    aggregate: bool = True,
) -> tuple[Tensor | None, Tensor]:
    """`messages_and_coordinate_weights` through the fused kernel, whatever the width.

    Raises:
        RuntimeError: the kernel is unavailable (`dynforecast.ops.fused_edge`).
    """
    hidden = message.hidden_dim
    receiver, sender = message.node_projections(h)
    extra = math.prod(h.shape[1:-1])  # T for ESTAG, 1 for EGNN
    rows = (h.shape[0], extra, hidden)
    aggregated, weight = fused_edge_mlp(
        receiver.reshape(rows),
        sender.reshape(rows),
        edge_dst,
        edge_src,
        squared_distance.reshape(edge_dst.shape[0], extra),
        message.first.weight[:, 2 * hidden],
        message.edge_term(edge_features),
        message.second.weight,
        message.second.bias,
        coordinate[0].weight,
        coordinate[0].bias,
        coordinate[2].weight[0],
        aggregate=aggregate,
    )
    if aggregated is not None:
        aggregated = aggregated.view(h.shape)
    return aggregated, weight.view(squared_distance.shape)
