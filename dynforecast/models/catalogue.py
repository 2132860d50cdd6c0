"""What `dynforecast models` prints: every registered model, its hyperparameters, their types,
defaults and one-line meanings.

Names, types and defaults come from the constructors' signatures (the registry's single source);
the meanings live here, one line each, and a test refuses a registered model whose constructor
has a hyperparameter without one, so the list cannot fall behind the code.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any

from dynforecast.models.base import _REGISTRY, _type_name, model_names

_NODE_INPUT = {
    "species_vocabulary": "species codes of the one-hot encoding (auto in train: the data's)",
    "node_attr_dim": "extra node attribute columns, e.g. charges (auto in train: the data's)",
}

UNDESCRIBED = "(no description yet)"

#: One-line meaning of each hyperparameter, per model.
MEANINGS: dict[str, dict[str, str]] = {
    "estag": {
        "hidden_dim": "width H of node and edge features",
        "num_layers": "number L of ESTAG layers (ESM + ETM each)",
        "num_past_frames": "past frames T per window (= data.window.past_frames in train)",
        "amplitude": 'EDFT amplitude: "code" (reference code) or "paper" (|FFT| as published)',
        "spectral_features": "feed the EDFT's frequency features into the edge messages",
        "frequency_gate": "learned gate over the EDFT frequencies",
        "temporal_attention": "use the equivariant temporal attention module (ETM)",
        "attention_mask": 'ETM attention: "forward" (each frame sees earlier ones) or "none"',
        "pooling": 'temporal pooling to the target frame: "etp" (reference) or "softmax"',
        "extrapolation_init": "ETP start: 0 = last frame (reference), horizon/spacing = constant "
        "velocity (auto in train)",
        "node_input": 'species encoding: "atomic_number" or "one_hot" over species_vocabulary',
        **_NODE_INPUT,
    },
    "sake": {
        "hidden_dim": "width F of node features",
        "num_heads": "attention heads H (C = H * F spatial coefficients)",
        "num_layers": "number L of SAKE layers",
        "num_basis": "radial basis functions K of the edge filter",
        "attention": 'attention form: "semantic" (reference) or "euclidean_softmax_2022" (paper)',
        "cutoff": "distance beyond which attention vanishes smoothly (none = no cutoff)",
        "use_semantic_attention": "learned semantic attention over neighbours (false = uniform)",
        "use_euclidean_attention": "distance-based attention weights (false = 1)",
        "use_spatial_attention": "spatial attention features and displacements (false = off)",
        "dt_scale": 'velocity step: "none" (x + v\', reference) or "target_dt/L" (auto in train)',
        "init": 'weight initialisation: "lecun" (Flax defaults, reference) or "torch"',
        "use_velocity": "pass the velocity vector to the first layer (N-body recipe)",
        "species": 'species encoding: "atomic_number", "one_hot" or "none"',
        "speed": "append the speed |v| to the node scalars",
        "delta_scale": "velocity scaling the spatial displacement; velocity MLPs start at 1 "
        "(none = reference; auto in train: from the training windows)",
        **_NODE_INPUT,
    },
    "egnn": {
        "hidden_dim": "width of node and edge features",
        "num_layers": "number of EGNN layers",
        "coords_aggregation": 'coordinate update over neighbours: "mean" or "sum"',
        "species": 'species encoding: "atomic_number", "one_hot" or "none"',
        **_NODE_INPUT,
    },
    "linear": {
        "weights": "one weight per past frame difference, fitted by least squares on the "
        "training windows (none: constant velocity)",
        "velocity_weight": "weight of the last frame's velocity times the target time step",
    },
}


@dataclass(frozen=True)
class Hyperparameter:
    """One constructor option: dotted key ``model.<name>``, type, default and meaning."""

    name: str
    type: str
    default: Any
    meaning: str


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: name, whether it is trained, its one-line summary, hyperparameters."""

    name: str
    learnable: bool
    summary: str
    hyperparameters: tuple[Hyperparameter, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "learnable": self.learnable,
            "summary": self.summary,
            "hyperparameters": [
                {"name": h.name, "type": h.type, "default": h.default, "meaning": h.meaning}
                for h in self.hyperparameters
            ],
        }


def describe_models() -> list[ModelEntry]:
    """Every registered model (sorted by name); a hyperparameter without a listed meaning gets
    `UNDESCRIBED` (tests refuse that)."""
    entries = []
    for name in model_names():
        cls = _REGISTRY[name]
        hints = typing.get_type_hints(cls.__init__)
        meanings = MEANINGS.get(name, {})
        options = []
        for key, parameter in inspect.signature(cls.__init__).parameters.items():
            if key == "self":
                continue
            default = parameter.default
            options.append(
                Hyperparameter(
                    key,
                    _type_name(hints.get(key, Any)),
                    list(default) if isinstance(default, tuple) else default,
                    meanings.get(key, UNDESCRIBED),
                )
            )
        summary = (inspect.getdoc(cls) or "").splitlines()[0] if cls.__doc__ else ""
        entries.append(ModelEntry(name, cls.learnable, summary, tuple(options)))
    return entries


def format_models(entries: list[ModelEntry]) -> str:
    """Plain-text listing: a header line per model, one line per hyperparameter."""
    lines: list[str] = []
    for entry in entries:
        kind = "" if entry.learnable else " (baseline, nothing to train)"
        lines.append(f"{entry.name}{kind}: {entry.summary}")
        for h in entry.hyperparameters:
            default = "none" if h.default is None else json.dumps(h.default)
            lines.append(f"  model.{h.name} ({h.type}, default {default}): {h.meaning}")
        lines.append("")
    lines.append("set with --set model.<name>=<value> or a [model] table in --config")
    return "\n".join(lines)
