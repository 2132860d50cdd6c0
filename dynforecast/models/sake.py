"""SAKE for dynamics: L kinetic layers move the last past frame to the target frame.

Recipe (spec §5.1, §7): node scalars h_in = NodeInput(batch) ‖ |v| (the N-body recipe is charges as
``node_attrs`` plus the speed), h⁰ = Linear(h_in), then each layer updates (h, x, v) with
x' = x + step · v'. The prediction is x after the last layer; the reference's output head is
unused for dynamics and not created (``readout=None``).

The velocity v fed to the first layer is the data's velocity at the last past frame when the
batch has velocities, else the finite difference (x[T-1] - x[T-2]) / past_dt, so that it is in
length per time unit either way. With ``use_velocity=False`` (the reference motion recipe) only
the speed |v| enters, as a node scalar, and the first layer starts from v = δ.

``dt_scale``: the reference adds each layer's full v' (an implicit time step of 1 per layer), so an
untrained model starts near x + L·v. ``dt_scale="target_dt/L"`` scales each step by
target_dt / L instead, which starts the model near constant-velocity extrapolation to the target.
The class default is the reference's; ``dynforecast train`` picks "target_dt/L" unless told
otherwise (``--set model.dt_scale=none``), because the reference form only suits data whose target
lies about L time units ahead: on BVH motion in seconds it starts 100x off and did not recover
(validation MSE 1.8e5 against 77 for "stay"), while "target_dt/L" reached 27 there and also
trained better on N-body (0.020 against 0.031 after 5 epochs).

``delta_scale`` (a velocity, in the data's length per time unit): the layer's displacement δ is
a mean of unit vectors weighted by tanh coefficients, so it has no unit, yet it is added to a
velocity (v' = δ + 2σ(·) v). The reference's δ is O(1) per layer, which on a molecule in Angstrom
and fs (speeds ~0.01 A/fs) moved atoms 0.3-2.6 A in one forecast and started 60-3,600x worse
than "stay". With ``delta_scale`` set, δ is multiplied by it and the last layer of every
velocity MLP starts at zero (2σ(0) = 1), so the untrained model is constant velocity plus a
perturbation of the size of ``delta_scale`` · target_dt. ``dynforecast train`` sets it from the
training windows (`dynforecast.train.init_scale`: 0.1 x the RMS deviation of the targets from
constant velocity, per target_dt), records it in the run's configuration and so in the checkpoint.

Graphs: any edge list of the batch; all pairs reproduces the dense reference (tested against a
dense computation). Self loops and edges that touch a padding node (``node_mask`` False) are
dropped; each node's means divide by n_i = in-degree + 1 (see sake_layer). Cost O(E·H²F²).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dynforecast.models.base import ForecastModel, register
from dynforecast.models.batch import WindowBatch
from dynforecast.models.features import NodeInput
from dynforecast.models.sake_graph import SakeGraph, build_sake_graph
from dynforecast.models.sake_layer import SakeLayer, lecun_normal_

DT_SCALES = (None, "none", "target_dt/L")  # "none" is None spelled for TOML and --set
INITS = ("lecun", "torch")


def sake_graph(batch: WindowBatch) -> SakeGraph:
    """The batch's edges as SAKE reduces over them (see `build_sake_graph`)."""
    return build_sake_graph(
        batch.edge_src, batch.edge_dst, batch.num_nodes, batch.node_mask, batch.positions.dtype
    )


def input_velocity(batch: WindowBatch) -> Tensor | None:
    """Velocity at the last past frame: the data's if present, else (x[T-1] - x[T-2]) / past_dt,
    else None (one past frame, no velocities). Shapes: batch -> [V, 3] or None."""
    if batch.velocities is not None:
        return batch.velocities[:, -1]
    if batch.num_frames >= 2:
        return (batch.positions[:, -1] - batch.positions[:, -2]) / batch.past_dt
    return None


@register("sake")
class Sake(ForecastModel):
    """Spatial Attention Kinetic Network (Wang & Chodera 2023) as a forecaster.

    Args:
        hidden_dim: F (64). num_heads: H (4). num_layers: L (4). num_basis: K (50). (Names shared
            with the other models, so that --set model.hidden_dim works for every one.)
        attention, cutoff, use_semantic_attention, use_euclidean_attention,
            use_spatial_attention: see `SakeLayer` (spec §1).
        dt_scale: None or "none" (x' = x + v', reference) or "target_dt/L".
        init: "lecun" (Flax defaults: LeCun-normal weights, zero biases) or "torch".
        use_velocity: pass the velocity vector to the first layer (N-body recipe); False is the
            motion recipe (speed only).
        species, species_vocabulary, node_attr_dim: `NodeInput` options.
        speed: append |v| to the node scalars (both reference recipes do).
        delta_scale: None (reference) or a velocity scaling the spatial displacement δ (module
            docstring); also zero-initialises the velocity MLPs' last layers.

    Shapes: batch (V nodes) -> predicted target positions [V, 3].
    """

    def __init__(
        self,
        hidden_dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 4,
        num_basis: int = 50,
        attention: str = "semantic",
        cutoff: float | None = None,
        use_semantic_attention: bool = True,
        use_euclidean_attention: bool = True,
        use_spatial_attention: bool = True,
        dt_scale: str | None = None,
        init: str = "lecun",
        use_velocity: bool = True,
        species: str = "atomic_number",
        species_vocabulary: Sequence[int] = (),
        node_attr_dim: int = 0,
        speed: bool = True,
        delta_scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"expected num_layers >= 1 (got {num_layers})")
        if dt_scale not in DT_SCALES:
            raise ValueError(f"expected dt_scale in {DT_SCALES} (got {dt_scale!r})")
        if init not in INITS:
            raise ValueError(f"expected init in {INITS} (got {init!r})")
        self.node_input = NodeInput.from_options(species, species_vocabulary, node_attr_dim)
        self.speed, self.use_velocity, self.dt_scale = speed, use_velocity, dt_scale
        self.embedding = nn.Linear(self.node_input.dim + int(speed), hidden_dim)
        self.layers = nn.ModuleList(
            SakeLayer(
                hidden_dim,
                num_heads,
                num_basis,
                attention,
                cutoff,
                use_semantic_attention,
                use_euclidean_attention,
                use_spatial_attention,
            )
            for _ in range(num_layers)
        )
        if delta_scale is not None and not delta_scale > 0:
            raise ValueError(f"expected a positive delta_scale or None (got {delta_scale})")
        self.delta_scale = delta_scale
        if init == "lecun":
            lecun_normal_(self)
        if delta_scale is not None:
            for layer in self.layers:
                nn.init.zeros_(layer.velocity_mlp[-1].weight)  # 2σ(0) = 1: v' = v + δ at init

    def node_scalars(self, batch: WindowBatch, velocity: Tensor | None) -> Tensor:
        """Invariant node input: NodeInput(batch) ‖ |v|. Shapes: -> [V, D_in]."""
        scalars = self.node_input(batch)
        if not self.speed:
            return scalars
        if velocity is None:
            raise ValueError(
                "expected velocities or at least 2 past frames for the speed input "
                "(got 1 frame, no velocities)"
            )
        return torch.cat([scalars, velocity.norm(dim=1, keepdim=True)], dim=1)

    def forward(self, batch: WindowBatch) -> Tensor:
        velocity = input_velocity(batch)
        h = self.embedding(self.node_scalars(batch, velocity))
        x = batch.positions[:, -1]
        v = velocity if self.use_velocity else None
        step = batch.target_dt / len(self.layers) if self.dt_scale == "target_dt/L" else 1.0
        graph = sake_graph(batch)
        for layer in self.layers:
            h, x, v = layer(h, x, v, graph, step, self.delta_scale or 1.0)
        return x
