"""Checkpoints: atomic writes, safe reads, and the data signature a checkpoint can serve.

A checkpoint is one ``torch.save`` dict with plain values only (tensors, numbers, strings, lists,
dicts), so that it loads with ``weights_only=True``: opening a checkpoint from someone else never
runs code. Keys (``FORMAT`` = 1):

    format, model_config, model_state, optimizer_state, scheduler_state,
    epoch (completed epochs), batch_in_epoch (batches done of the next epoch; > 0 only after an
    interrupt), partial_sums (the interrupted epoch's running train-loss sums), best_val,
    best_epoch, bad_epochs, history (metrics rows), finished, rng (torch/cuda/numpy/python states),
    train_config (the resolved `TrainConfig` as a dict), data_signature, data_checksum, data_path,
    versions.

Writes go to a temporary file in the same directory and are renamed into place, so a kill at any
moment leaves either the old or the new checkpoint under the final name, never half of one.
"""

from __future__ import annotations

import platform
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynforecast.errors import CompatibilityError, InputError
from dynforecast.io.atomic import atomic_output, create_directory

FORMAT = 1


def versions() -> dict[str, str]:
    """Versions that decide whether a run can be reproduced."""
    from dynforecast import __version__

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "dynforecast": __version__,
    }


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + rename in the same directory)."""
    create_directory(path.parent)
    with atomic_output(path, overwrite=True) as scratch:
        torch.save(state, scratch)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU; InputError if it is missing or not a dynforecast checkpoint."""
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for foreign or damaged files
        raise InputError(f"{path}: not a readable checkpoint (torch.load failed)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not a dynforecast checkpoint (format {FORMAT} expected)")
    return state


# RNG states ----------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Every RNG state training draws from, in checkpoint-safe types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - libraries may draw from it
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": _tuple_to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng` (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    legacy = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(legacy)  # noqa: NPY002 - libraries may draw from it
    random.setstate(_lists_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuple_to_lists(value: Any) -> Any:
    return [_tuple_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _lists_to_tuple(value: Any) -> Any:
    return tuple(_lists_to_tuple(v) for v in value) if isinstance(value, list) else value


# Data signature ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSignature:
    """What a trained model assumes about its data; `check` refuses data that breaks it.

    Fields:
        length_unit, time_unit: units of positions and time.
        frame_time: time between consecutive stored frames (the window spacing counts these).
        species: sorted species codes seen in training.
        node_attr_width: node attribute columns (1 with charges, else 0).
        has_velocities: the model was trained with velocities in its batches.
        particle_counts: sorted particle counts seen; only enforced when ``fixed_size``.
        fixed_size: the model's weights depend on the particle count (none of the built-in ones).
    """

    length_unit: str
    time_unit: str
    frame_time: float
    species: tuple[int, ...]
    node_attr_width: int
    has_velocities: bool
    particle_counts: tuple[int, ...] = ()
    fixed_size: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["species"] = list(self.species)
        out["particle_counts"] = list(self.particle_counts)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSignature:
        return cls(
            length_unit=str(values["length_unit"]),
            time_unit=str(values["time_unit"]),
            frame_time=float(values["frame_time"]),
            species=tuple(int(s) for s in values["species"]),
            node_attr_width=int(values["node_attr_width"]),
            has_velocities=bool(values["has_velocities"]),
            particle_counts=tuple(int(n) for n in values.get("particle_counts", ())),
            fixed_size=bool(values.get("fixed_size", False)),
        )

    def check(self, data: DataSignature, checkpoint: Path | str, data_path: Path | str) -> None:
        """Raise CompatibilityError (one line naming both files) if ``data`` cannot be served."""
        problem = self._problem(data)
        if problem:
            raise CompatibilityError(
                f"{data_path}: does not fit checkpoint {checkpoint}: {problem}"
            )

    def _problem(self, data: DataSignature) -> str | None:
        if (data.length_unit, data.time_unit) != (self.length_unit, self.time_unit):
            return (
                f"units {data.length_unit}/{data.time_unit}, trained on "
                f"{self.length_unit}/{self.time_unit}"
            )
        if not np.isclose(data.frame_time, self.frame_time, rtol=1e-6, atol=0.0):
            return (
                f"frame time step {data.frame_time:g} {data.time_unit}, trained on "
                f"{self.frame_time:g} {self.time_unit}"
            )
        unseen = sorted(set(data.species) - set(self.species))
        if unseen:
            return f"species {unseen} not seen in training (trained on {list(self.species)})"
        if self.node_attr_width and data.node_attr_width < self.node_attr_width:
            return f"no charges/node attributes (trained with {self.node_attr_width} per node)"
        if self.has_velocities and not data.has_velocities:
            return "no velocities (the model was trained with velocities)"
        if self.fixed_size and set(data.particle_counts) - set(self.particle_counts):
            return (
                f"particle counts {list(data.particle_counts)}, trained on "
                f"{list(self.particle_counts)}"
            )
        return None
