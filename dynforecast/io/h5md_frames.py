"""Frames left in the H5MD file: an array-like view of one [F, N, 3] dataset, read on demand.

`read_h5md(..., lazy=True)` puts a `FileFrames` where a `Trajectory` would hold its positions
(and velocities) array, so that a trajectory larger than memory can still be described, split
into windows and trained on: `dynforecast.data.frame_store` reads only the chunks a batch needs.

Files are opened once per process and path (`open_for_reading`): h5py handles must not cross a
``fork`` (DataLoader workers, DDP launchers), so a process that finds a handle opened by its
parent opens its own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import h5py
import numpy as np

#: Frames per read block when a dataset is not chunked (about this many bytes per block).
BLOCK_BYTES = 1 << 20

_handles: dict[str, tuple[int, h5py.File]] = {}
_lock = threading.Lock()


def open_for_reading(path: str | Path) -> h5py.File:
    """This process's read-only handle of ``path`` (opened on first use, reopened after fork)."""
    key = os.fspath(Path(path).resolve())
    with _lock:
        held = _handles.get(key)
        if held is not None and held[0] == os.getpid() and held[1].id.valid:
            return held[1]
        handle = h5py.File(key, "r")
        _handles[key] = (os.getpid(), handle)
        return handle


def close_all() -> None:
    """Close the handles this process opened (tests, before a file is replaced)."""
    with _lock:
        for pid, handle in _handles.values():
            if pid == os.getpid() and handle.id.valid:
                handle.close()
        _handles.clear()


class FileFrames:
    """float32 frames [F, N, 3] (or [F, ...]) of ``dataset`` in the H5MD file ``path``.

    Behaves like a read-only NumPy array for what the data layer asks of positions: ``shape``,
    ``ndim``, ``dtype``, ``len``, indexing by an int, a slice or an int array of frames (each a
    read of just those frames), and ``np.asarray`` (a read of all). ``block_frames`` is the
    number of frames one read block holds: the dataset's chunk length, or about `BLOCK_BYTES`.
    """

    def __init__(self, path: str | Path, dataset: str) -> None:
        self.path = Path(path)
        self.dataset = dataset
        ds = self._open()
        self.shape: tuple[int, ...] = tuple(int(n) for n in ds.shape)
        self.dtype = np.dtype(np.float32)
        frame_bytes = max(1, int(np.prod(self.shape[1:], dtype=np.int64)) * 4)
        self.block_frames = int(ds.chunks[0]) if ds.chunks else max(1, BLOCK_BYTES // frame_bytes)

    def _open(self) -> h5py.Dataset:
        return open_for_reading(self.path)[self.dataset]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as float32 [stop - start, ...]: one HDF5 read."""
        return np.asarray(self._open()[start:stop], dtype=np.float32)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            head, rest = key[0], key[1:]
            return self[head][(slice(None), *rest) if not np.isscalar(head) else rest]
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"frame {key} out of range for {self.shape[0]} frames")
            return self.read(index, index + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                return self.read(start, max(start, stop))
            key = np.arange(start, stop, step)
        frames = np.asarray(key, dtype=np.int64)
        frames = np.where(frames < 0, frames + self.shape[0], frames)
        if frames.size and (frames.min() < 0 or frames.max() >= self.shape[0]):
            raise IndexError(f"frames out of range for {self.shape[0]} frames")
        unique, inverse = np.unique(frames.reshape(-1), return_inverse=True)
        read = (
            np.asarray(self._open()[unique.tolist()], dtype=np.float32)
            if unique.size
            else np.zeros((0, *self.shape[1:]), np.float32)
        )
        return read[inverse].reshape(*frames.shape, *self.shape[1:])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.read(0, self.shape[0])
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"FileFrames({str(self.path)!r}, {self.dataset!r}, shape={self.shape})"
