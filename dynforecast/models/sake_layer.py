"""One SAKE layer (Wang & Chodera, ICLR 2023) on an edge list, and its radial basis.

The reference layer is dense over all ordered pairs of a system. Here it runs on any directed
edge list (``src`` = neighbour j, ``dst`` = receiver i, messages j -> i aggregated at i), so that
all pairs is one case and radius graphs another. Sums over neighbours become `scatter_sum` over
``dst`` and the semantic softmax becomes `scatter_softmax` over each node's incoming edges.

Self pairs are not edges. In the reference the pair (i, i) has u_ii = 0 and is excluded from the
semantic softmax, so it only counts in the denominators of the spatial and velocity means:
n_i = (number of real neighbours) + 1. `SakeGraph.inv_count` carries 1 / n_i; for all pairs this
is 1 / N as in the reference. Variant A of the attention (``"euclidean_softmax_2022"``) does give
the self pair a weight in its second softmax; its message m_ii is then computed on the nodes.

Never materialised: the (E, C, 3) tensor of c_ij ⊗ u_ij. The per-node sums
S_i = Σ_j c_ij u_ij^T are taken one Cartesian component at a time (three (E, C) products), and
δ_i mixes the C channels first ((E, 1) then (E, 3)). The concatenation [h_j ‖ h_i] is never
built either: the Linear maps that read it are split into a neighbour part and a receiver part,
evaluated once per node and gathered per edge (exact, and cheaper by 2F·(K + F) FLOPs per edge).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from dynforecast.models.layers import mlp
from dynforecast.ops.scatter import scatter_softmax, scatter_sum

ATTENTION_VARIANTS = ("semantic", "euclidean_softmax_2022")
DISTANCE_EPS = 1e-5  # inside the sqrt: d_ii = sqrt(1e-5), gradients finite at coincident points
UNIT_EPS = 1e-5  # u_ij = r_ij / (d_ij + 1e-5)


class SakeGraph(NamedTuple):
    """The edge list a SAKE layer runs on (self pairs and padding edges already removed).

    Fields:
        src: int64 [E], neighbour j of each edge.
        dst: int64 [E], receiver i of each edge (aggregation index).
        inv_count: float [V, 1], 1 / n_i with n_i = in-degree + 1 (the self pair counted).
        inv_degree: float [V, 1], 1 / max(in-degree, 1) (uniform λ when semantic attention is off).
    """

    src: Tensor
    dst: Tensor
    inv_count: Tensor
    inv_degree: Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.inv_count.shape[0])


def pair_geometry(x: Tensor, graph: SakeGraph) -> tuple[Tensor, Tensor]:
    """Relative vectors r_ij = x_j - x_i and distances sqrt(|r|² + 1e-5).

    Shapes: x [V, 3] -> r [E, 3], d [E, 1].
    """
    r = x.index_select(0, graph.src) - x.index_select(0, graph.dst)
    d = torch.sqrt((r * r).sum(dim=1, keepdim=True).clamp_min(0.0) + DISTANCE_EPS)
    return r, d


def cosine_cutoff(d: Tensor, cutoff: float) -> Tensor:
    """The standard decaying cutoff 0.5 (cos(π d / r_c) + 1) for d < r_c, else 0.

    (Not the reference's periodic ``cosine_cutoff``, which is 0 at d = 0; spec §3.4.)
    Shapes: d [E, 1] -> [E, 1].
    """
    inside = (d < cutoff).to(d.dtype)
    return 0.5 * (torch.cos(math.pi * d / cutoff) + 1.0) * inside


class ExpNormalBasis(nn.Module):
    """K radial functions exp(-β_k (exp(-d) - μ_k)²) with trainable centres and widths.

    Centres live in exp(-d) space, between e^-5 and 1, so the basis resolves short distances
    finely (spec §3.1, d_lo = 0, d_hi = 5, α = 1); no cutoff multiplies it.
    Shapes: d [E, 1] -> [E, K].
    """

    def __init__(self, num_basis: int = 50, upper: float = 5.0) -> None:
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"expected num_basis >= 1 (got {num_basis})")
        self.alpha = 5.0 / upper
        start = math.exp(-upper)
        self.means = nn.Parameter(torch.linspace(start, 1.0, num_basis))
        beta = (2.0 / num_basis * (1.0 - start)) ** -2
        self.betas = nn.Parameter(torch.full((num_basis,), beta))

    def forward(self, d: Tensor) -> Tensor:
        return torch.exp(-self.betas * (torch.exp(-self.alpha * d) - self.means) ** 2)


def lecun_normal_(module: nn.Module) -> None:
    """Flax's default init for every Linear inside ``module``: truncated normal of variance
    1 / fan_in (cut at ±2σ, σ corrected for the truncation) and zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(1.0 / layer.in_features) / 0.87962566103423978
            nn.init.trunc_normal_(layer.weight, std=std, a=-2.0 * std, b=2.0 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class SakeLayer(nn.Module):
    """Edge model, semantic (and optional distance) attention, spatial attention, node update
    and the kinetic velocity/position update of one SAKE layer (spec §3.10).

    Args:
        hidden: F, node feature width (input = output, the node update is residual).
        heads: H attention heads; the coefficient count is C = H·F.
        num_basis: K radial basis functions.
        attention: "semantic" (default, reference HEAD: α = λ μ / Σ λ μ) or
            "euclidean_softmax_2022" (variant A of commit d001e2b, spec §4).
        cutoff: r_c of the standard cosine cutoff μ, or None (μ = 1).
        use_semantic_attention: False makes λ uniform over the real neighbours (variant A: λ = 1).
        use_euclidean_attention: False sets μ = 1 (variant A: ε = 1).
        use_spatial_attention: False zeroes the spatial features p and the displacement δ.

    Shapes: h [V, F], x [V, 3], v [V, 3] or None, graph (E edges) -> h' [V, F], x' [V, 3], v' [V, 3].
    """

    def __init__(
        self,
        hidden: int = 64,
        heads: int = 4,
        num_basis: int = 50,
        attention: str = "semantic",
        cutoff: float | None = None,
        use_semantic_attention: bool = True,
        use_euclidean_attention: bool = True,
        use_spatial_attention: bool = True,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_VARIANTS:
            raise ValueError(f"expected attention in {ATTENTION_VARIANTS} (got {attention!r})")
        if hidden < 1 or heads < 1:
            raise ValueError(f"expected hidden >= 1 and heads >= 1 (got {hidden}, {heads})")
        if cutoff is not None and cutoff <= 0:
            raise ValueError(f"expected a positive cutoff or None (got {cutoff})")
        self.hidden, self.heads, self.num_basis = hidden, heads, num_basis
        self.attention, self.cutoff = attention, cutoff
        self.use_semantic_attention = use_semantic_attention
        self.use_euclidean_attention = use_euclidean_attention
        self.use_spatial_attention = use_spatial_attention
        coefficients = heads * hidden

        self.basis = ExpNormalBasis(num_basis)
        self.edge_filter = nn.Linear(2 * hidden, num_basis)  # a_ij from [h_j ‖ h_i]
        self.edge_in = nn.Linear(2 * hidden + num_basis + 1, hidden)  # [h_j ‖ h_i ‖ g_ij ‖ d_ij]
        self.edge_out = nn.Linear(hidden, hidden)
        self.semantic = nn.Linear(hidden, heads)
        if attention == "euclidean_softmax_2022":
            # γ_h = exp(g_h), initialised to 1 / linspace(1, 5, H): heads from sharp to broad.
            self.log_gamma = nn.Parameter(-torch.log(torch.linspace(1.0, 5.0, heads)))
        self.coefficient_mixing = nn.Linear(heads * hidden, coefficients, bias=False)
        # The node MLP ends in SiLU before the residual add, as in the reference.
        self.spatial_mlp = mlp([coefficients, hidden, hidden], final_activation=True)
        self.node_mlp = mlp([2 * hidden + heads * hidden, hidden, hidden], final_activation=True)
        self.velocity_mixing = nn.Linear(coefficients, 1, bias=False)
        self.velocity_mlp = mlp([hidden, hidden, 1], final_activation=False, bias_last=False)

    # -- edge model ------------------------------------------------------------------------
    def _node_parts(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Neighbour and receiver parts of the two Linear maps that read [h_j ‖ h_i].

        Shapes: h [V, F] -> neighbour part [V, K + F], receiver part [V, K + F] (biases included).
        """
        f, k = self.hidden, self.num_basis
        w_filter, w_in = self.edge_filter.weight, self.edge_in.weight
        neighbour = torch.cat([w_filter[:, :f], w_in[:, :f]], dim=0)
        receiver = torch.cat([w_filter[:, f : 2 * f], w_in[:, f : 2 * f]], dim=0)
        bias = torch.cat([self.edge_filter.bias, self.edge_in.bias])
        both = h @ torch.cat([neighbour, receiver], dim=0).t()
        return both[:, : k + f], both[:, k + f :] + bias

    def _edge_messages(self, pair_parts: Tensor, d: Tensor) -> Tensor:
        """m_ij = Lin₂(SiLU(Lin₁([z ‖ ρ(d) ⊙ Lin_a(z) ‖ d]))) from the summed node parts of z.

        Shapes: pair_parts [E, K + F], d [E, 1] -> m [E, F].
        """
        k = self.num_basis
        w_in = self.edge_in.weight
        filtered = self.basis(d) * pair_parts[:, :k]
        pre = pair_parts[:, k:] + filtered @ w_in[:, 2 * self.hidden : -1].t() + d * w_in[:, -1]
        return self.edge_out(F_.silu(pre))

    # -- attention -------------------------------------------------------------------------
    def _semantic_weights(self, m: Tensor, graph: SakeGraph) -> Tensor:
        """λ_ij: softmax over each receiver's neighbours of CELU₂(W_s m_ij). Shapes: [E, H]."""
        if not self.use_semantic_attention:
            if self.attention == "euclidean_softmax_2022":
                return m.new_ones(m.shape[0], self.heads)
            return graph.inv_degree.index_select(0, graph.dst).expand(-1, self.heads)
        logits = F_.celu(self.semantic(m), alpha=2.0)
        return scatter_softmax(logits, graph.dst, graph.num_nodes)

    def _attention_default(self, m: Tensor, d: Tensor, graph: SakeGraph) -> Tensor:
        """α = λ μ / Σ_j λ μ (μ = cutoff or 1; α = λ without a cutoff). Shapes: [E, H]."""
        weights = self._semantic_weights(m, graph)
        if self.cutoff is None or not self.use_euclidean_attention:
            return weights
        weights = weights * cosine_cutoff(d, self.cutoff)
        total = scatter_sum(weights, graph.dst, graph.num_nodes)
        return weights / total.clamp_min(torch.finfo(total.dtype).tiny).index_select(0, graph.dst)

    def _attention_2022(self, m: Tensor, d: Tensor, graph: SakeGraph) -> tuple[Tensor, Tensor]:
        """Variant A: α = softmax_j(ε λ) over the neighbours and the self pair (spec §4).

        ε = softmax_j(-γ_h d_ij) excludes the self pair (ε_ii = 0), λ excludes it too, so the
        self logit is ε_ii λ_ii = 0, or 1 when both switches are off. Logits lie in [0, 1]:
        no max-shift is needed. Shapes: edge weights [E, H], self weights [V, H].
        """
        semantic = self._semantic_weights(m, graph)
        if self.use_euclidean_attention:
            euclidean = scatter_softmax(-self.log_gamma.exp() * d, graph.dst, graph.num_nodes)
        else:
            euclidean = semantic.new_ones(())
        edge_exp = torch.exp(euclidean * semantic)
        self_logit = float(not self.use_semantic_attention and not self.use_euclidean_attention)
        self_exp = edge_exp.new_full((graph.num_nodes, self.heads), math.exp(self_logit))
        if self.cutoff is not None:
            edge_exp = edge_exp * cosine_cutoff(d, self.cutoff)
            self_d = torch.full_like(d[:1], math.sqrt(DISTANCE_EPS))
            self_exp = self_exp * cosine_cutoff(self_d, self.cutoff)
        total = scatter_sum(edge_exp, graph.dst, graph.num_nodes) + self_exp
        return edge_exp / total.index_select(0, graph.dst), self_exp / total

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self, h: Tensor, x: Tensor, v: Tensor | None, graph: SakeGraph, step: float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One layer; ``step`` scales the position update x' = x + step · v' (1 = reference)."""
        num_nodes, num_edges = graph.num_nodes, graph.src.shape[0]
        r, d = pair_geometry(x, graph)
        neighbour, receiver = self._node_parts(h)
        pair_parts = neighbour.index_select(0, graph.src) + receiver.index_select(0, graph.dst)
        m = self._edge_messages(pair_parts, d)

        if self.attention == "semantic":
            alpha = self._attention_default(m, d, graph)
        else:
            alpha, self_alpha = self._attention_2022(m, d, graph)
        # ĥ_ij = vec(m_ij ⊗ α_ij), feature-major (element f·H + h), as in the reference.
        multihead = (m.unsqueeze(2) * alpha.unsqueeze(1)).reshape(num_edges, -1)
        pooled = scatter_sum(multihead, graph.dst, num_nodes)
        if self.attention != "semantic":
            self_d = torch.full_like(h[:, :1], math.sqrt(DISTANCE_EPS))  # d_ii
            self_m = self._edge_messages(neighbour + receiver, self_d)
            pooled = pooled + (self_m.unsqueeze(2) * self_alpha.unsqueeze(1)).reshape(num_nodes, -1)

        if self.use_spatial_attention:
            coeff = torch.tanh(self.coefficient_mixing(multihead))  # c_ij [E, C]
            unit = r / (d + UNIT_EPS)  # u_ij [E, 3]
            squared_norm = h.new_zeros(num_nodes, coeff.shape[1])
            for axis in range(3):  # Σ_j c_ij u_ij per Cartesian axis: never an (E, C, 3) tensor
                component = scatter_sum(coeff * unit[:, axis : axis + 1], graph.dst, num_nodes)
                squared_norm = squared_norm + (component * graph.inv_count) ** 2
            spatial = self.spatial_mlp(squared_norm)
            weight = self.velocity_mixing(coeff)  # w_vᵀ c_ij [E, 1]
            delta = scatter_sum(weight * unit, graph.dst, num_nodes) * graph.inv_count
        else:
            spatial = h.new_zeros(num_nodes, self.hidden)
            delta = x.new_zeros(num_nodes, 3)

        h = h + self.node_mlp(torch.cat([h, pooled, spatial], dim=1))
        if v is None:
            v = delta
        else:
            v = delta + 2.0 * torch.sigmoid(self.velocity_mlp(h)) * v
        return h, x + step * v, v
