"""One SAKE layer (Wang & Chodera, ICLR 2023) on an edge list, and its radial basis.

The reference layer is dense over all ordered pairs of a system. Here it runs on any directed
edge list (``src`` = neighbour j, ``dst`` = receiver i, messages j -> i aggregated at i), so that
all pairs is one case and radius graphs another: sums over neighbours and the semantic softmax
are taken over each node's incoming edges by `SakeGraph` (which also defines n_i, the self pair
counted). Variant A of the attention (``"euclidean_softmax_2022"``) gives the self pair a weight
in its second softmax; its message m_ii is then computed on the nodes.

Never materialised: the (E, C, 3) tensor of c_ij ⊗ u_ij (`SakeGraph.receiver_outer_sum`). δ_i is
linear in S_i (δ_i = S_i w_v), so it costs no extra pass over the (E, C) coefficients. The concatenation [h_j ‖ h_i] is never
built either: the Linear maps that read it are split into a neighbour part and a receiver part,
evaluated once per node and gathered per edge (exact, and cheaper by 2F·(K + F) FLOPs per edge).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from dynforecast.models.layers import mlp
from dynforecast.models.sake_graph import SakeGraph
from dynforecast.ops.outer import row_outer

ATTENTION_VARIANTS = ("semantic", "euclidean_softmax_2022")
DISTANCE_EPS = 1e-5  # inside the sqrt: d_ii = sqrt(1e-5), gradients finite at coincident points
UNIT_EPS = 1e-5  # u_ij = r_ij / (d_ij + 1e-5)
BASIS_FLOOR = -60.0  # radial basis exponents are floored here (see ExpNormalBasis)


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
        exponent = -self.betas * (torch.exp(-self.alpha * d) - self.means) ** 2
        # Exponents are floored at -60 (values >= e^-60 ≈ 9e-27 instead of ~0): on the CPU, exp
        # of arguments below about -87 takes a slow underflow path and yields denormals that
        # slow every later product (measured 50x for the basis, 6x for the next matmul). The
        # change is far below the resolution of any sum these values enter.
        return torch.exp(exponent.clamp_min(BASIS_FLOOR))


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
    def _node_projections(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Neighbour and receiver parts of the two Linear maps that read [h_j ‖ h_i], per node.

        Four small contiguous matmuls: gathering rows of contiguous tensors is several times
        faster than gathering column slices of one wide result.
        Shapes: h [V, F] -> filter (neighbour, receiver) [V, K] each, edge-MLP input (neighbour,
        receiver) [V, F] each; biases are in the receiver parts.
        """
        f = self.hidden
        w_filter, w_in = self.edge_filter.weight, self.edge_in.weight
        return (
            F_.linear(h, w_filter[:, :f]),
            F_.linear(h, w_filter[:, f : 2 * f], self.edge_filter.bias),
            F_.linear(h, w_in[:, :f]),
            F_.linear(h, w_in[:, f : 2 * f], self.edge_in.bias),
        )

    def _edge_messages(self, filter_pre: Tensor, in_pre: Tensor, d: Tensor) -> Tensor:
        """m_ij = Lin₂(SiLU(Lin₁([z ‖ ρ(d) ⊙ Lin_a(z) ‖ d]))), given the z parts of Lin_a and Lin₁.

        Shapes: filter_pre [E, K] (= Lin_a z), in_pre [E, F] (z part of Lin₁), d [E, 1] -> [E, F].
        """
        w_in = self.edge_in.weight
        filtered = self.basis(d) * filter_pre
        pre = torch.addmm(in_pre, filtered, w_in[:, 2 * self.hidden : -1].t())
        pre = pre.addcmul_(d, w_in[:, -1])  # + d_ij w_d in one pass (addmm keeps no output)
        return self.edge_out(F_.silu(pre))

    def messages(self, h: Tensor, d: Tensor, graph: SakeGraph) -> tuple[Tensor, Tensor]:
        """Edge messages m_ij and the self-pair messages m_ii (d_ii = sqrt(1e-5)).

        Shapes: h [V, F], d [E, 1] -> m [E, F], m_self [V, F].
        """
        filter_nb, filter_rc, in_nb, in_rc = self._node_projections(h)
        filter_pre = filter_nb.index_select(0, graph.src) + filter_rc.index_select(0, graph.dst)
        in_pre = in_nb.index_select(0, graph.src) + in_rc.index_select(0, graph.dst)
        m = self._edge_messages(filter_pre, in_pre, d)
        if self.attention == "semantic":  # the self pair carries no weight: skip its message
            return m, h.new_zeros(0, self.hidden)
        self_d = torch.full_like(h[:, :1], math.sqrt(DISTANCE_EPS))
        return m, self._edge_messages(filter_nb + filter_rc, in_nb + in_rc, self_d)

    # -- attention -------------------------------------------------------------------------
    def _semantic_weights(self, m: Tensor, graph: SakeGraph) -> Tensor:
        """λ_ij: softmax over each receiver's neighbours of CELU₂(W_s m_ij). Shapes: [E, H]."""
        if not self.use_semantic_attention:
            if self.attention == "euclidean_softmax_2022":
                return m.new_ones(m.shape[0], self.heads)
            return graph.inv_degree.index_select(0, graph.dst).expand(-1, self.heads)
        logits = F_.celu(self.semantic(m), alpha=2.0)
        return graph.receiver_softmax(logits)

    def _attention_default(self, m: Tensor, d: Tensor, graph: SakeGraph) -> Tensor:
        """α = λ μ / Σ_j λ μ (μ = cutoff or 1; α = λ without a cutoff). Shapes: [E, H]."""
        weights = self._semantic_weights(m, graph)
        if self.cutoff is None or not self.use_euclidean_attention:
            return weights
        weights = weights * cosine_cutoff(d, self.cutoff)
        total = graph.receiver_sum(weights)
        return weights / total.clamp_min(torch.finfo(total.dtype).tiny).index_select(0, graph.dst)

    def _attention_2022(self, m: Tensor, d: Tensor, graph: SakeGraph) -> tuple[Tensor, Tensor]:
        """Variant A: α = softmax_j(ε λ) over the neighbours and the self pair (spec §4).

        ε = softmax_j(-γ_h d_ij) excludes the self pair (ε_ii = 0), λ excludes it too, so the
        self logit is ε_ii λ_ii = 0, or 1 when both switches are off. Logits lie in [0, 1]:
        no max-shift is needed. Shapes: edge weights [E, H], self weights [V, H].
        """
        semantic = self._semantic_weights(m, graph)
        if self.use_euclidean_attention:
            euclidean = graph.receiver_softmax(-self.log_gamma.exp() * d)
        else:
            euclidean = semantic.new_ones(())
        edge_exp = torch.exp(euclidean * semantic)
        self_logit = float(not self.use_semantic_attention and not self.use_euclidean_attention)
        self_exp = edge_exp.new_full((graph.num_nodes, self.heads), math.exp(self_logit))
        if self.cutoff is not None:
            edge_exp = edge_exp * cosine_cutoff(d, self.cutoff)
            self_d = torch.full_like(d[:1], math.sqrt(DISTANCE_EPS))
            self_exp = self_exp * cosine_cutoff(self_d, self.cutoff)
        total = graph.receiver_sum(edge_exp) + self_exp
        return edge_exp / total.index_select(0, graph.dst), self_exp / total

    def _head_major_mixing(self) -> Tensor:
        """W_x with its input columns reordered from feature-major (f·H + h) to head-major.

        Shapes: [C, F·H] -> [C, H·F].
        """
        weight = self.coefficient_mixing.weight
        grouped = weight.view(weight.shape[0], self.hidden, self.heads)
        return grouped.transpose(1, 2).reshape(weight.shape[0], -1)

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        h: Tensor,
        x: Tensor,
        v: Tensor | None,
        graph: SakeGraph,
        step: float = 1.0,
        delta_scale: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One layer; ``step`` scales the position update x' = x + step · v' (1 = reference),
        ``delta_scale`` the spatial displacement δ in v' = δ + 2σ(·) v (1 = reference; δ is a
        mean of unit vectors, so a velocity unit is brought in by the caller, see models/sake.py)."""
        num_nodes = graph.num_nodes
        r, d = pair_geometry(x, graph)
        m, self_m = self.messages(h, d, graph)

        if self.attention == "semantic":
            alpha = self._attention_default(m, d, graph)
        else:
            alpha, self_alpha = self._attention_2022(m, d, graph)
        # ĥ_ij = α_ij ⊗ m_ij, built head-major (element h·F + f: 3x faster to form than the
        # reference's feature-major f·H + h); the mixing weight's columns are permuted to match.
        multihead = row_outer(alpha, m)  # [E, H·F]
        pooled = graph.receiver_pair_sum(alpha, m, multihead)  # Σ_j ĥ_ij [V, H·F]
        if self.attention != "semantic":
            pooled = pooled + row_outer(self_alpha, self_m)
        pooled = pooled.view(num_nodes, self.heads, self.hidden).transpose(1, 2)
        pooled = pooled.reshape(num_nodes, -1)  # feature-major, as the node MLP was defined

        if self.use_spatial_attention:
            coeff = F_.linear(multihead, self._head_major_mixing())
            coeff = torch.tanh_(coeff)  # c_ij [E, C], in place
            unit = r / (d + UNIT_EPS)  # u_ij [E, 3]
            vectors = graph.receiver_outer_sum(coeff, unit)  # n_i S_i = Σ_j u_ij c_ijᵀ [V, 3, C]
            # q_i = |S_i|² per channel: scale after the norm, on [V, C]
            squared_norm = vectors.square().sum(1) * graph.inv_count.square()
            spatial = self.spatial_mlp(squared_norm)
            # δ_i = (1/n_i) Σ_j (w_vᵀ c_ij) u_ij = S_i w_v: linear, so mixed after the sum and
            # no second pass over the [E, C] coefficients
            delta = self.velocity_mixing(vectors).squeeze(2) * graph.inv_count
            if delta_scale != 1.0:
                delta = delta * delta_scale
        else:
            spatial = h.new_zeros(num_nodes, self.hidden)
            delta = x.new_zeros(num_nodes, 3)

        h = h + self.node_mlp(torch.cat([h, pooled, spatial], dim=1))
        if v is None:
            v = delta
        else:
            v = delta + 2.0 * torch.sigmoid(self.velocity_mlp(h)) * v
        return h, x + step * v, v
