"""EGNN with velocities ("EGNN-vel", Satorras, Hoogeboom and Welling 2021): the learned baseline.

A frame-to-frame model: it sees the last past frame x and one velocity v per node and moves x
through L layers of E(n)-equivariant message passing,

    m_ij = phi_e([h_i, h_j, |x_i - x_j|^2, a_ij])        a_ij = q_i q_j (with charges)
    x_i += C sum_j (x_i - x_j) phi_x(m_ij) + phi_v(h_i) v_i dt_target
    h_i += phi_h([h_i, sum_j m_ij])

with C = 1/deg(i) ("mean", EGNN's N-body code) or 1 ("sum"), and h_i initialised from |v_i| and the
`NodeInput` scalars. The velocity is the data's velocity at the last past frame when the batch has
velocities, else the finite difference (x[T-1] - x[T-2]) / past_dt.

Decision (velocity scale): the velocity term is multiplied by ``target_dt`` and each layer's
phi_v ends in a Linear whose weights start near zero (Xavier gain 0.001) and whose bias starts at
1/L, so the L layers together move every node by ~v * target_dt: the untrained model is close to
constant-velocity extrapolation to the target time, whatever the data's time unit, and training
learns corrections to it. (EGNN's original phi_v has PyTorch's default init and no dt.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dynforecast.models.base import ForecastModel, register
from dynforecast.models.batch import WindowBatch
from dynforecast.models.features import NodeInput
from dynforecast.models.layers import (
    EdgeMessageMLP,
    coordinate_head,
    coordinate_shift,
    edge_geometry,
    inverse_in_degree,
    messages_and_coordinate_weights,
    mlp,
    small_init_,
)
from dynforecast.ops.fused_edge import FUSED_MAX_HIDDEN

COORDINATE_AGGREGATIONS = ("mean", "sum")


class VelocityLayer(nn.Module):
    """One EGNN-vel layer (reference order: messages, coordinates, velocity term, node update).

    Shapes:
        h [V, H], x [V, 3], velocity_step [V, 3] (velocity * target_dt), edge_src/edge_dst [E],
        edge_features [E, F] or None, coordinate_scale [V] -> h [V, H], x [V, 3]
    """

    def __init__(
        self, hidden_dim: int, edge_feature_dim: int, num_layers: int, update_features: bool
    ) -> None:
        super().__init__()
        self.message = EdgeMessageMLP(hidden_dim, edge_feature_dim)
        self.coordinate = coordinate_head(hidden_dim)
        self.velocity = mlp([hidden_dim, hidden_dim, 1], final_activation=False)
        small_init_(self.velocity[-1])
        nn.init.constant_(self.velocity[-1].bias, 1.0 / num_layers)
        # The last layer's features would feed nothing: no node MLP there (no dead parameters).
        self.node = (
            mlp([2 * hidden_dim, hidden_dim, hidden_dim], final_activation=False)
            if update_features
            else None
        )

    def forward(
        self,
        h: Tensor,
        x: Tensor,
        velocity_step: Tensor,
        edge_src: Tensor,
        edge_dst: Tensor,
        edge_features: Tensor | None,
        coordinate_scale: Tensor,
    ) -> tuple[Tensor, Tensor]:
        num_nodes = h.shape[0]
        difference, squared_distance = edge_geometry(x, edge_src, edge_dst)
        aggregated, coordinate_weight = messages_and_coordinate_weights(
            self.message,
            self.coordinate,
            h,
            edge_src,
            edge_dst,
            squared_distance,
            edge_features,
            aggregate=self.node is not None,
        )
        x = x + coordinate_shift(
            difference, coordinate_weight, edge_dst, num_nodes, coordinate_scale
        )
        x = x + self.velocity(h) * velocity_step
        if self.node is None or aggregated is None:
            return h, x
        return h + self.node(torch.cat([h, aggregated], dim=-1)), x


@register("egnn")
class EGNN(ForecastModel):
    """EGNN-vel baseline on edge lists (see the module docstring).

    Hyperparameters: hidden_dim (64), num_layers (4), coords_aggregation ("mean" | "sum"),
    node_attr_dim (0: no charges; 1: column 0 of batch.node_attrs holds charges q, which enter as
    the edge attribute q_i q_j, EGNN's N-body recipe; the data pipeline sets it from the data),
    species ("none" | "atomic_number" | "one_hot" over species_vocabulary) for the node input
    besides |v|.
    """

    def __init__(
        self,
        hidden_dim: int = 64,
        num_layers: int = 4,
        coords_aggregation: str = "mean",
        node_attr_dim: int = 0,
        species: str = "none",
        species_vocabulary: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if hidden_dim < 1 or num_layers < 1:
            raise ValueError(
                f"expected hidden_dim, num_layers >= 1 (got {hidden_dim}, {num_layers})"
            )
        if coords_aggregation not in COORDINATE_AGGREGATIONS:
            raise ValueError(
                f"expected coords_aggregation in {COORDINATE_AGGREGATIONS} "
                f"(got {coords_aggregation!r})"
            )
        if node_attr_dim not in (0, 1):
            raise ValueError(f"expected node_attr_dim 0 or 1 (charges) (got {node_attr_dim})")
        self.coords_aggregation = coords_aggregation
        self.edge_charges = node_attr_dim == 1
        self.node_input = NodeInput.from_options(species, species_vocabulary)
        self.embedding = nn.Linear(1 + self.node_input.dim, hidden_dim)
        self.layers = nn.ModuleList(
            VelocityLayer(hidden_dim, node_attr_dim, num_layers, index < num_layers - 1)
            for index in range(num_layers)
        )

    @staticmethod
    def last_velocity(batch: WindowBatch) -> Tensor:
        """The data's velocity at the last past frame, else the last finite difference.

        Shapes: batch -> [V, 3].
        """
        if batch.velocities is not None:
            return batch.velocities[:, -1]
        if batch.num_frames < 2:
            raise ValueError(
                "expected velocities or at least 2 past frames for egnn (got 1 frame, no velocities)"
            )
        return (batch.positions[:, -1] - batch.positions[:, -2]) / batch.past_dt

    def edge_features(self, batch: WindowBatch) -> Tensor | None:
        """q_src * q_dst from node_attrs column 0. Shapes: -> [E, 1] or None."""
        if not self.edge_charges:
            return None
        if batch.node_attrs.shape[1] < 1:
            raise ValueError(
                "expected a charge column in node_attrs for egnn with node_attr_dim=1 (got 0 columns)"
            )
        charge = batch.node_attrs[:, :1]
        return charge.index_select(0, batch.edge_src) * charge.index_select(0, batch.edge_dst)

    def cpu_kernels(self) -> list[str]:
        return ["edge MLP"] if self.embedding.out_features <= FUSED_MAX_HIDDEN else []

    def forward(self, batch: WindowBatch) -> Tensor:
        velocity = self.last_velocity(batch)
        speed = velocity.norm(dim=-1, keepdim=True)
        h = self.embedding(torch.cat([speed, self.node_input(batch)], dim=-1))
        x = batch.positions[:, -1]
        velocity_step = velocity * batch.target_dt
        edge_features = self.edge_features(batch)
        if self.coords_aggregation == "mean":
            scale = inverse_in_degree(batch.edge_dst, batch.num_nodes, x.dtype)
        else:
            scale = torch.ones(batch.num_nodes, dtype=x.dtype, device=x.device)
        for layer in self.layers:
            h, x = layer(h, x, velocity_step, batch.edge_src, batch.edge_dst, edge_features, scale)
        return x
