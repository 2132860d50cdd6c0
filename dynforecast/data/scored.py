"""Reading only the systems an evaluation scores, for files of thousands of small systems.

The split of a checkpoint's configuration depends on the window index alone, and the index on
the systems' frame counts, which the file's dataset shapes give without reading a frame
(`dynforecast.io.h5md.frame_shapes`). So `evaluate` learns which systems hold the scored
windows first and reads those; EGNN's N-body recipe (7,000 five-particle systems) scores 2,000 of
them, and reading the other 5,000 took most of its time.

The fitted linear baseline needs training windows too. It is fitted on the training windows of
at most `LINEAR_FIT_SYSTEMS` training systems, spread evenly over the training split's systems in
the file's order; with fewer training systems (one long trajectory, a few transitions, a handful
of clips) that is all of them, so the fit is the one on every training window. It has at most
T coefficients, which a few hundred systems determine to far better precision than the MSE is
quoted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.data.loading import load_systems
from dynforecast.data.windows import WindowDataset, WindowIndex
from dynforecast.errors import InputError, UsageError, describe_path
from dynforecast.io.trajectory import Trajectory
from dynforecast.train import setup
from dynforecast.train.config import TrainConfig

#: Most training systems whose windows fit the linear baseline in `evaluate`.
LINEAR_FIT_SYSTEMS = 500


@dataclass(frozen=True)
class ScoredData:
    """The systems an evaluation reads and its window ids into the data set built from them.

    ``splits`` are the file's splits (ids into the index of every system, for the log line's
    counts); ``ids`` and ``train_ids`` index ``dataset``, which holds only ``systems``.
    """

    systems: list[Trajectory]
    dataset: WindowDataset
    splits: dict[str, np.ndarray]
    ids: np.ndarray
    train_ids: np.ndarray
    systems_in_file: int


def load_scored(
    path: Path,
    config: TrainConfig,
    split: str,
    check: Callable[[list[Trajectory]], None],
    *,
    fit_systems: int = LINEAR_FIT_SYSTEMS,
) -> ScoredData:
    """Read the systems holding ``split``'s windows (and the linear fit's) from ``path``.

    ``split`` is "train", "val", "test" or "all"; ``check`` (the checkpoints' compatibility
    check) is called on the systems read. Raises InputError as `load_systems` (missing,
    unreadable or malformed file, a system the configuration names that the file lacks, NaN
    frames), and `setup.split_index`'s UsageError when the split mode does not fit the data,
    unless the file's first system already fails ``check``: data the model cannot serve is the
    more basic fault, so it is reported first, as when every system was read before splitting.
    """
    from dynforecast.data.frame_store import frames_in_memory
    from dynforecast.io.h5md import frame_shapes, shapes_frame_bytes

    try:
        shapes = frame_shapes(path, config.data.systems)
    except OSError as exc:
        raise InputError(f"{describe_path(path)}: cannot read as HDF5/H5MD ({exc})") from None
    if not shapes:
        raise InputError(f"{describe_path(path)}: no systems in the file")
    names = list(shapes)
    counts = np.array([shapes[name][0][0] for name in names], dtype=np.int64)
    spec = setup.window_spec(config)
    index = WindowIndex(counts, spec)
    try:
        splits = setup.split_index(index, spec, config)
    except UsageError:
        check(load_systems(path, names[:1]))
        raise
    scored = np.arange(len(index), dtype=np.int64) if split == "all" else splits[split]
    train = _spread_systems(index, splits["train"], fit_systems)
    keep = np.union1d(index.system[scored], index.system[train])
    if keep.size == 0:  # nothing to score (the caller says so): one system still gets checked
        keep = np.zeros(1, dtype=np.int64)
    read = [names[i] for i in keep]
    lazy = not frames_in_memory(shapes_frame_bytes(shapes[name] for name in read))
    systems = load_systems(path, read, lazy=lazy)
    check(systems)
    dataset = setup.build_dataset(systems, config)
    return ScoredData(
        systems=systems,
        dataset=dataset,
        splits=splits,
        ids=_renumber(index, scored, keep, dataset.windows),
        train_ids=_renumber(index, train, keep, dataset.windows),
        systems_in_file=len(names),
    )


def _spread_systems(index: WindowIndex, ids: np.ndarray, limit: int) -> np.ndarray:
    """The windows of ``ids`` in at most ``limit`` of their systems, spread evenly over them."""
    systems = np.unique(index.system[ids])
    if systems.size <= limit:
        return ids
    chosen = systems[np.linspace(0, systems.size - 1, limit).round().astype(np.int64)]
    return ids[np.isin(index.system[ids], chosen)]


def _renumber(
    full: WindowIndex, ids: np.ndarray, kept: np.ndarray, subset: WindowIndex
) -> np.ndarray:
    """Ids of windows of ``full`` as ids of ``subset``, the index of the systems ``kept``.

    Windows are ordered by system, then first frame, in both; a window keeps its rank within
    its system, so its new id is its system's first id in ``subset`` plus that rank.
    """
    systems = full.system[ids]
    first_full = np.searchsorted(full.system, systems, side="left")
    position = np.searchsorted(kept, systems)
    first_subset = np.searchsorted(subset.system, position, side="left")
    return (first_subset + (ids - first_full)).astype(np.int64)
