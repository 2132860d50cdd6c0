"""A trained model restored from a checkpoint, with what it needs to be used on new data.

evaluate and predict both start here: the checkpoint holds the model's resolved hyperparameters
and weights, the resolved `TrainConfig` (window, graph and split specs, seed) and the signature
of the data it was trained on, against which any new data is checked first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dynforecast.errors import InputError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel, model_from_config
from dynforecast.train.checkpoint import DataSignature, load_checkpoint
from dynforecast.train.config import TrainConfig, config_from_dict
from dynforecast.train.setup import systems_signature


@dataclass(frozen=True)
class TrainedModel:
    """Fields: path, model (eval mode, on the CPU), config, signature, epoch, best_val, state."""

    path: Path
    model: ForecastModel
    config: TrainConfig
    signature: DataSignature
    epoch: int
    best_val: float
    state: dict[str, Any]

    def check_data(self, systems: Sequence[Trajectory], data_path: Path | str) -> None:
        """CompatibilityError (exit 5) if the systems are not data this model can serve."""
        self.signature.check(systems_signature(systems), self.path, data_path)

    def to(self, device: torch.device) -> TrainedModel:
        self.model.to(device=device, dtype=getattr(torch, self.config.dtype))
        return self


def checkpoint_path(path: Path) -> Path:
    """``path`` itself for a checkpoint file; a run directory's best.pt for a directory.

    InputError if a run directory has no best.pt yet (then naming its last.pt if there is one).
    """
    path = Path(path)
    if not path.is_dir():
        return path
    best = path / "best.pt"
    if best.is_file():
        return best
    last = path / "last.pt"
    if last.is_file():
        raise InputError(
            f"{path}: run directory has no best.pt yet (no validation finished); give {last}"
        )
    raise InputError(f"{path}: not a run directory (no best.pt or last.pt in it)")


def load_trained(path: Path) -> TrainedModel:
    """Rebuild the model of a checkpoint (best.pt or last.pt, or a run directory's best.pt)."""
    path = checkpoint_path(path)
    state = load_checkpoint(path)
    try:
        model = model_from_config(state["model_config"])
        model.load_state_dict(state["model_state"])
        config = config_from_dict(state["train_config"])
        signature = DataSignature.from_dict(state["data_signature"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: checkpoint cannot rebuild its model ({exc})") from None
    model.eval()
    return TrainedModel(
        path=path,
        model=model,
        config=config,
        signature=signature,
        epoch=int(state["epoch"]),
        best_val=float(state["best_val"]),
        state=state,
    )
