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

from dynforecast.errors import InputError, UsageError
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel, model_from_config
from dynforecast.train.checkpoint import DataSignature, load_checkpoint
from dynforecast.train.config import TrainConfig, config_from_dict
from dynforecast.train.lock import LOCK_FILE
from dynforecast.train.loop import BEST, LAST, METRICS
from dynforecast.train.report import CONFIG_FILE
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


#: The files a training run writes in its directory (`dynforecast.train.loop`, `train.lock`,
#: `train.run`'s config.json).
RUN_FILES = (BEST, LAST, METRICS, CONFIG_FILE, LOCK_FILE)


def run_files(run_dir: Path) -> list[Path]:
    """The files a run writes in ``run_dir``, whether or not they exist: what no command may
    replace while it reads that run."""
    return [Path(run_dir) / name for name in RUN_FILES]


def checkpoint_inputs(paths: Sequence[Path]) -> list[Path]:
    """What reading the checkpoints ``paths`` (files, or run directories) reads: the paths and
    every file of their runs (`run_files`), for `dynforecast.io.atomic.reading_inputs`."""
    runs = [Path(p) if Path(p).is_dir() else Path(p).parent for p in paths]
    return [*map(Path, paths), *(f for run in runs for f in run_files(run))]


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


#: Suffixes that name a data file, not a checkpoint, as the last argument of ``evaluate``.
DATA_SUFFIXES = (".h5", ".hdf5", ".h5md")


def split_data_argument(arguments: Sequence[Path]) -> tuple[list[Path], Path]:
    """``evaluate``'s positionals: (checkpoints or run directories, the data file).

    The data file is the last argument when it is named like one (``DATA_SUFFIXES``) or is an
    HDF5 file; otherwise it is the file the first checkpoint was trained on (its recorded
    ``data_path``), so that ``dynforecast evaluate runs/x`` works on the built-in data and on a
    file still where training read it. UsageError when none is given and that file is gone.
    """
    import h5py

    items = [Path(a) for a in arguments]
    last = items[-1]
    if len(items) > 1 and (
        last.suffix.lower() in DATA_SUFFIXES or (last.is_file() and h5py.is_hdf5(last))
    ):
        return items[:-1], last
    return items, recorded_data_path(items[0])


def recorded_data_path(path: Path) -> Path:
    """The data file a checkpoint (or run directory) was trained on, as training recorded it.

    UsageError if the checkpoint records none or the file is no longer there.
    """
    checkpoint = checkpoint_path(path)
    recorded = load_checkpoint(checkpoint).get("data_path")
    if not recorded or not Path(recorded).is_file():
        raise UsageError(
            f"{path}: no data file given, and the file it was trained on "
            f"({recorded or 'not recorded'}) is not there; give the data file after the checkpoint"
        )
    return Path(recorded)
