"""ESTAG: Equivariant Spatio-Temporal Attentive Graph network (Wu et al., NeurIPS 2023).

Pipeline (spec ../shared/specs/estag.md §3): embed node input + frame index -> EDFT spectral
features once -> L x (ESM: E(3)-equivariant message passing inside every frame; ETM: attention of
each node over its own T frames) -> ETP: a learned linear combination of the refined frames.
Defaults reproduce the reference code; the paper's variants are named options (spec §2).

Everything runs on the flat big-graph batch: node tensors [V, T, ...], edge tensors [E, T, ...],
aggregation with index_add at ``edge_dst``; the ETM is one batched [V, T, T] attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dynforecast.models.base import ForecastModel, register
from dynforecast.models.batch import WindowBatch
from dynforecast.models.edft import AMPLITUDE_FORMS, batch_edft_features
from dynforecast.models.features import NodeInput
from dynforecast.models.layers import (
    EdgeMessageMLP,
    SiLU,
    coordinate_head,
    coordinate_shift,
    edge_geometry,
    inverse_in_degree,
    messages_and_coordinate_weights,
    mlp,
    safe_unit,
    short_row_softmax,
)
from dynforecast.ops.fused_edge import FUSED_MAX_HIDDEN
from dynforecast.ops.fused_geometry import fused_edge_radial, fused_edge_shift, use_fused_geometry
from dynforecast.ops.fused_temporal import MAX_HIDDEN as TEMPORAL_MAX_HIDDEN
from dynforecast.ops.fused_temporal import fused_temporal_layer, use_fused_temporal

ATTENTION_MASKS = ("forward", "none")
POOLINGS = ("etp", "softmax")
NODE_INPUTS = ("atomic_number", "one_hot")
MASKED_SCORE = -1e9


class SpatialLayer(nn.Module):
    """ESM: one EGNN-style layer applied to all T frames in parallel with shared weights.

    Messages m_ij(t) = phi_e([h_i, h_j, |x_i - x_j|^2, e_ij]); coordinates move along unit vectors,
    x_i += mean_j clamp(u_ij phi_x(m_ij), +-100); features h_i += phi_h([h_i, sum_j m_ij, c_i]).
    Both updates use the layer's input h and x (reference order: messages, coordinates, nodes).

    Shapes:
        h [V, T, H], x [V, T, 3], edge_src/edge_dst [E], edge_features [E, F] or None,
        node_features [V, K] or None, inverse_degree [V] -> h [V, T, H], x [V, T, 3]
    """

    def __init__(self, hidden_dim: int, edge_feature_dim: int, node_feature_dim: int) -> None:
        super().__init__()
        self.message = EdgeMessageMLP(hidden_dim, edge_feature_dim)
        self.coordinate = coordinate_head(hidden_dim)
        self.node_feature_dim = node_feature_dim
        self.node = mlp(
            [2 * hidden_dim + node_feature_dim, hidden_dim, hidden_dim], final_activation=False
        )

    def forward(
        self,
        h: Tensor,
        x: Tensor,
        edge_src: Tensor,
        edge_dst: Tensor,
        edge_features: Tensor | None,
        node_features: Tensor | None,
        inverse_degree: Tensor,
    ) -> tuple[Tensor, Tensor]:
        num_nodes = h.shape[0]
        fused = use_fused_geometry(x)  # the same geometry as two CPU kernels (ops.fused_geometry)
        if fused:
            x = x.contiguous()
            squared_distance = fused_edge_radial(x, edge_src, edge_dst).unsqueeze(-1)
        else:
            difference, squared_distance = edge_geometry(x, edge_src, edge_dst)
        aggregated, coordinate_weight = messages_and_coordinate_weights(
            self.message, self.coordinate, h, edge_src, edge_dst, squared_distance, edge_features
        )
        if fused:
            shift = fused_edge_shift(
                x, edge_src, edge_dst, coordinate_weight.squeeze(-1), normalise=True
            )
            x = x + shift * inverse_degree.view(-1, 1, 1)
        else:
            x = x + coordinate_shift(
                safe_unit(difference, squared_distance),
                coordinate_weight,
                edge_dst,
                num_nodes,
                inverse_degree,
            )
        return h + self.node_update(h, aggregated, node_features), x

    def node_update(self, h: Tensor, aggregated: Tensor, node_features: Tensor | None) -> Tensor:
        """phi_h([h || sum_j m_ij || c]) with the first Linear split by input block.

        W [h || a || c] = W_h h + W_a a + W_c c: the frame-independent W_c c is computed once per
        node and broadcast over frames, instead of copying c to every frame and concatenating.
        Shapes: h, aggregated [V, T, H], node_features [V, K] or None -> [V, T, H].
        """
        first, hidden = self.node[0], h.shape[-1]
        weight = first.weight
        pre = torch.addmm(first.bias, h.reshape(-1, hidden), weight[:, :hidden].t())
        pre = pre.addmm(aggregated.reshape(-1, hidden), weight[:, hidden : 2 * hidden].t())
        pre = pre.view(h.shape)
        if self.node_feature_dim:
            if node_features is None:
                raise ValueError(
                    f"expected node features of width {self.node_feature_dim} (got None)"
                )
            pre = pre + (node_features @ weight[:, 2 * hidden :].t()).unsqueeze(1)
        return self.node[1:](pre)


class TemporalLayer(nn.Module):
    """ETM: single-head attention of each node over its own frames, no cross-node interaction.

    alpha_i(t, s) = softmax_s(q_i(t) . k_i(s)) (no 1/sqrt(H) scaling, reference D7), with s > t
    masked out under ``mask="forward"``. Features h_i(t) += sum_s alpha v_i(s); coordinates
    x_i(t) += sum_s alpha(t, s) phi_x(v_i(s)) (x_i(s) - x_i(t)) (unnormalised differences), so
    frame 0 under the forward mask attends only to itself and does not move.

    Shapes: h [V, T, H], x [V, T, 3] -> h [V, T, H], x [V, T, 3], attention [V, T, T]
    """

    def __init__(self, hidden_dim: int, mask: str) -> None:
        super().__init__()
        if mask not in ATTENTION_MASKS:
            raise ValueError(f"expected attention_mask in {ATTENTION_MASKS} (got {mask!r})")
        self.mask = mask
        self.hidden_dim = hidden_dim
        # q, k and v MLPs share one first Linear(H, 3H) (same parameters and init as three).
        self.first = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        self.activation = SiLU()
        self.coordinate = coordinate_head(hidden_dim)

    def attention(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Attention weights [V, T, T] (rows t, columns s) and values [V, T, H]."""
        hidden = self.activation(self.first(h))
        query_in, key_in, value_in = hidden.split(self.hidden_dim, dim=-1)
        query = self.activation(self.query(query_in))
        key = self.activation(self.key(key_in))
        value = self.activation(self.value(value_in))
        scores = query @ key.transpose(1, 2)
        if self.mask == "forward":
            frames = h.shape[1]
            future = torch.ones(frames, frames, dtype=torch.bool, device=h.device).triu(1)
            # -1e9 as the reference; float16 (autocast) holds down to -65504, which masks too.
            scores = scores.masked_fill(future, max(MASKED_SCORE, torch.finfo(scores.dtype).min))
        return short_row_softmax(scores), value

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """h', x' and the attention weights; on the CPU the fused kernel
        (`dynforecast.ops.fused_temporal`) computes h' and x' and returns no weights (None)."""
        if use_fused_temporal(h):
            moved_h, moved_x = fused_temporal_layer(
                h, x, self.mask == "forward", self.first, self.query, self.key, self.value,
                self.coordinate,
            )  # fmt: skip
            return moved_h, moved_x, None
        weights, value = self.attention(h)
        step_weights = weights * self.coordinate(value).transpose(1, 2)  # [V, T(t), T(s)]
        # sum_s w(t,s) (x(s) - x(t)) without forming [V, T, T, 3].
        shift = step_weights @ x - step_weights.sum(-1, keepdim=True) * x
        return h + weights @ value, x + shift, weights


class TemporalPooling(nn.Module):
    """ETP: the forecast from the T refined frames with learned weights theta [T].

    ``"etp"``: x_hat = x(T-1) + sum_t theta_t (x(t) - x(T-1)), theta = 0 at init, so the untrained
    model predicts the refined last frame; theta_{T-1} multiplies zero and never learns (kept for
    the reference's parameter layout). ``"softmax"``: x_hat = sum_t softmax(theta)_t x(t), uniform
    at init. Both are affine combinations, hence translation- and rotation-equivariant.

    Shapes: x [V, T, 3] -> [V, 3]
    """

    def __init__(self, num_frames: int, mode: str, extrapolation: float = 0.0) -> None:
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"expected pooling in {POOLINGS} (got {mode!r})")
        self.mode = mode
        self.theta = nn.Parameter(torch.zeros(num_frames))
        if extrapolation and mode == "etp" and num_frames >= 2:
            # theta_{T-2} = -H/D: x(T-1) + (H/D)(x(T-1) - x(T-2)), constant velocity to the target
            with torch.no_grad():
                self.theta[-2] = -extrapolation

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "softmax":
            return torch.einsum("t,vtd->vd", self.theta.softmax(0), x)
        last = x[:, -1]
        return last + torch.einsum("t,vtd->vd", self.theta, x - last.unsqueeze(1))


@register("estag")
class ESTAG(ForecastModel):
    """ESTAG on edge lists; see the module docstring and spec §3.

    Hyperparameters (defaults = the reference's MD17 README configuration):
        hidden_dim H, num_layers L, num_past_frames T (size of the frame-embedding table; a
        batch with another T is refused), amplitude ("code" | "paper"), spectral_features,
        frequency_gate, temporal_attention, attention_mask ("forward" | "none"), pooling
        ("etp" | "softmax"), node_input ("atomic_number" | "one_hot" over species_vocabulary),
        node_attr_dim (extra columns of batch.node_attrs appended to the node input),
        extrapolation_init (0 = the reference's ETP start at the last frame; H/D, which
        ``dynforecast train`` sets from the window, starts the ETP at constant-velocity
        extrapolation of the refined frames: theta_{T-2} = -H/D).

    The batch carries no edge attributes, so with ``spectral_features=False`` the ESM edge input
    is [h_i, h_j, r_ij] only. ``attention_mask="forward"`` restricts the ETM attention; the EDFT
    sees all frames, so the network is not causal (spec D6).
    """

    def __init__(
        self,
        hidden_dim: int = 16,
        num_layers: int = 2,
        num_past_frames: int = 10,
        amplitude: str = "code",
        spectral_features: bool = True,
        frequency_gate: bool = True,
        temporal_attention: bool = True,
        attention_mask: str = "forward",
        pooling: str = "etp",
        node_input: str = "atomic_number",
        species_vocabulary: Sequence[int] = (),
        node_attr_dim: int = 0,
        extrapolation_init: float = 0.0,
    ) -> None:
        super().__init__()
        if hidden_dim < 1 or num_layers < 1 or num_past_frames < 1:
            raise ValueError(
                "expected hidden_dim, num_layers, num_past_frames >= 1 "
                f"(got {hidden_dim}, {num_layers}, {num_past_frames})"
            )
        if amplitude not in AMPLITUDE_FORMS:
            raise ValueError(f"expected amplitude in {AMPLITUDE_FORMS} (got {amplitude!r})")
        if node_input not in NODE_INPUTS:
            raise ValueError(f"expected node_input in {NODE_INPUTS} (got {node_input!r})")
        self.num_past_frames = num_past_frames
        self.amplitude = amplitude
        self.spectral_features = spectral_features
        self.node_input = NodeInput.from_options(node_input, species_vocabulary, node_attr_dim)
        num_frequencies = num_past_frames - 1 if spectral_features else 0

        self.node_embedding = nn.Linear(self.node_input.dim, hidden_dim)
        self.frame_embedding = nn.Embedding(num_past_frames, hidden_dim)
        self.frequency_gate = (
            nn.Linear(hidden_dim, 1) if spectral_features and frequency_gate else None
        )
        self.spatial = nn.ModuleList(
            SpatialLayer(hidden_dim, num_frequencies, num_frequencies) for _ in range(num_layers)
        )
        self.temporal = (
            nn.ModuleList(TemporalLayer(hidden_dim, attention_mask) for _ in range(num_layers))
            if temporal_attention
            else None
        )
        self.pooling = TemporalPooling(num_past_frames, pooling, float(extrapolation_init))

    def cpu_kernels(self) -> list[str]:
        hidden = self.node_embedding.out_features
        kernels = ["edge MLP"] if hidden <= FUSED_MAX_HIDDEN else []
        kernels.append("edge geometry")
        if self.temporal is not None and hidden <= TEMPORAL_MAX_HIDDEN:
            kernels.append("temporal attention")
        return kernels

    def embed(self, batch: WindowBatch) -> Tensor:
        """h_i(t) = W z_i + b + E[t]. Shapes: batch -> [V, T, H]."""
        nodes = self.node_embedding(self.node_input(batch))
        return nodes.unsqueeze(1) + self.frame_embedding.weight.unsqueeze(0)

    def spectral(self, batch: WindowBatch, h: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """EDFT edge and node features (None, None with spectral features off).

        Gate k is sigmoid(Linear(h at frame k)) of the initial embedding (spec D3).
        Shapes: h [V, T, H] -> A [E, K], c [V, K].
        """
        if not self.spectral_features:
            return None, None
        gates = None
        if self.frequency_gate is not None:
            gates = torch.sigmoid(self.frequency_gate(h[:, 1:])).squeeze(-1)
        return batch_edft_features(batch, gates, self.amplitude)

    def refine(self, batch: WindowBatch) -> Tensor:
        """Coordinates of all T frames after the L (ESM, ETM) layers. Shapes: -> [V, T, 3]."""
        if batch.num_frames != self.num_past_frames:
            raise ValueError(
                f"expected batches of {self.num_past_frames} past frames (got {batch.num_frames})"
            )
        h = self.embed(batch)
        edge_features, node_features = self.spectral(batch, h)
        x = batch.positions
        inverse_degree = inverse_in_degree(batch.edge_dst, batch.num_nodes, x.dtype)
        for index, spatial in enumerate(self.spatial):
            h, x = spatial(
                h, x, batch.edge_src, batch.edge_dst, edge_features, node_features, inverse_degree
            )
            if self.temporal is not None:
                h, x, _ = self.temporal[index](h, x)
        return x

    def forward(self, batch: WindowBatch) -> Tensor:
        return self.pooling(self.refine(batch))
