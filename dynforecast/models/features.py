"""Invariant per-node input scalars, built the same way for every model.

Models differ in what they feed their node embedding: ESTAG's reference uses the raw atomic number
as one float, SAKE's recipes a one-hot code plus charges and speeds. `NodeInput` turns a batch into
those scalars, E(3)-invariantly, and reports its width so that a model can size its first layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dynforecast.models.batch import WindowBatch

SPECIES_ENCODINGS = ("atomic_number", "one_hot", "none")


@dataclass(frozen=True)
class NodeInput:
    """How node scalars are built from a batch.

    Fields:
        species: "atomic_number" (z as one float, ESTAG's reference), "one_hot" (over
            ``species_vocabulary``; a species outside it gets an all-zero row) or "none".
        species_vocabulary: the species codes for "one_hot", e.g. (1, 6, 7, 8).
        node_attr_dim: how many columns of ``batch.node_attrs`` to append (e.g. 1 for charges).
        speed: append |v| at the last past frame (needs velocities; SAKE's and EGNN's N-body
            recipe), else nothing.
    """

    species: str = "atomic_number"
    species_vocabulary: tuple[int, ...] = ()
    node_attr_dim: int = 0
    speed: bool = False

    def __post_init__(self) -> None:
        if self.species not in SPECIES_ENCODINGS:
            raise ValueError(
                f"expected species encoding in {SPECIES_ENCODINGS} (got {self.species!r})"
            )
        if self.species == "one_hot" and not self.species_vocabulary:
            raise ValueError("expected a non-empty species_vocabulary for one_hot (got none)")
        if self.node_attr_dim < 0:
            raise ValueError(f"expected node_attr_dim >= 0 (got {self.node_attr_dim})")

    @classmethod
    def from_options(
        cls,
        species: str = "atomic_number",
        species_vocabulary: Sequence[int] = (),
        node_attr_dim: int = 0,
        speed: bool = False,
    ) -> NodeInput:
        return cls(
            species, tuple(int(s) for s in species_vocabulary), int(node_attr_dim), bool(speed)
        )

    @property
    def dim(self) -> int:
        """Number of scalars per node; at least 1 (a constant 1.0 when nothing else is asked for)."""
        width = {"atomic_number": 1, "one_hot": len(self.species_vocabulary), "none": 0}[
            self.species
        ]
        width += self.node_attr_dim + int(self.speed)
        return max(width, 1)

    def __call__(self, batch: WindowBatch) -> Tensor:
        """Shapes: batch -> [V, dim], in the dtype of ``batch.positions``."""
        dtype, device = batch.positions.dtype, batch.positions.device
        parts: list[Tensor] = []
        if self.species == "atomic_number":
            parts.append(batch.species.to(dtype).unsqueeze(1))
        elif self.species == "one_hot":
            vocab = torch.tensor(self.species_vocabulary, device=device)
            parts.append((batch.species.unsqueeze(1) == vocab).to(dtype))
        if self.node_attr_dim:
            if batch.node_attrs.shape[1] < self.node_attr_dim:
                raise ValueError(
                    f"expected at least {self.node_attr_dim} node attributes "
                    f"(got {batch.node_attrs.shape[1]})"
                )
            parts.append(batch.node_attrs[:, : self.node_attr_dim].to(dtype))
        if self.speed:
            if batch.velocities is None:
                raise ValueError("expected velocities in the batch for the speed input (got none)")
            parts.append(batch.velocities[:, -1].norm(dim=-1, keepdim=True))
        if not parts:
            return torch.ones(batch.num_nodes, 1, dtype=dtype, device=device)
        return torch.cat(parts, dim=1)
