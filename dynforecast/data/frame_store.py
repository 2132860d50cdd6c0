"""Where a data set's frames live while windows are gathered: in memory, or in the H5MD file.

`WindowDataset` asks a store for the coordinates of (system, frame, particle) triples and gets
float32 [V, K, 3]. Two stores give bit-identical results:

* `MemoryFrames`: every system's frames concatenated frame-major into one flat [sum F*N, 3]
  array; a gather is one ``np.take``. Fastest, memory = the frame data.
* `FileFrames` systems (`dynforecast.io.h5md_frames`): `CachedFileFrames` reads only the
  blocks (HDF5 chunks: runs of whole frames of one system) a batch touches, one read per block,
  keeps recently used blocks in a least-recently-used cache of bounded bytes, then gathers from
  the blocks with one ``np.take``. Memory is the cache, whatever the number of frames, and a DDP
  rank (or DataLoader worker) reads only the windows it is given.

Which one `load_systems` picks: `frames_in_memory` (size against the memory the process may
use; ``DYNFORECAST_FRAMES=memory|file|auto`` overrides). Memory maps were not chosen: under an
address-space limit (``ulimit -v``, common on shared login and compute nodes) a map of a file
larger than the limit fails, and chunked or compressed datasets cannot be mapped at all.
"""

from __future__ import annotations

import os
import resource
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynforecast.data.ragged import group_offsets
from dynforecast.errors import UsageError
from dynforecast.io.h5md_frames import FileFrames

#: Environment variable choosing the store: "auto" (default), "memory" or "file".
FRAMES_ENV = "DYNFORECAST_FRAMES"
#: Environment variable setting the block cache of each file-backed store, in MiB.
CACHE_ENV = "DYNFORECAST_FRAME_CACHE_MB"
#: Default block cache per store (positions, velocities): at most this, at most 1/8 of what the
#: process may still use.
DEFAULT_CACHE_BYTES = 256 << 20
#: Frames stay in memory when they take at most this fraction of what the process may use:
#: the in-memory path holds them twice while building (read arrays + the flat concatenation).
IN_MEMORY_FRACTION = 0.25


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of the address-space limit left
    (``ulimit -v``: RLIMIT_AS minus the current VmSize), the cgroup's memory.max left and the
    system's MemAvailable; None when none is known."""
    candidates = []
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        candidates.append(max(0, soft - (_proc_status("VmSize") or 0)))
    for value in (_cgroup_available(), _meminfo_available()):
        if value is not None:
            candidates.append(value)
    return min(candidates) if candidates else None


def frames_mode() -> str:
    mode = os.environ.get(FRAMES_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "memory", "file"):
        raise UsageError(f"{FRAMES_ENV}={mode}: expected auto, memory or file")
    return mode


def frames_in_memory(frame_bytes: int) -> bool:
    """Whether frames of ``frame_bytes`` bytes (positions + velocities) are read into memory.

    "auto": yes when they take at most `IN_MEMORY_FRACTION` of `available_memory` (always,
    when that is unknown); ``DYNFORECAST_FRAMES`` forces "memory" or "file".
    """
    mode = frames_mode()
    if mode != "auto":
        return mode == "memory"
    available = available_memory()
    return available is None or frame_bytes <= IN_MEMORY_FRACTION * available


def cache_bytes() -> int:
    """Bytes of each file-backed store's block cache (`CACHE_ENV` or the default)."""
    text = os.environ.get(CACHE_ENV)
    if text:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{CACHE_ENV}={text}: expected a number of MiB") from None
        if value < 0:
            raise UsageError(f"{CACHE_ENV}={text}: expected a number of MiB >= 0")
        return int(value * (1 << 20))
    available = available_memory()
    return DEFAULT_CACHE_BYTES if available is None else min(DEFAULT_CACHE_BYTES, available // 8)


class MemoryFrames:
    """Frames of all systems in one flat float32 [sum F*N, 3] array (read once)."""

    def __init__(self, arrays: Sequence, n_nodes: np.ndarray) -> None:
        frame_rows = np.array([len(a) for a in arrays], dtype=np.int64) * n_nodes
        self._row_offset = group_offsets(frame_rows)
        self._n_nodes = n_nodes
        self._flat = np.concatenate(
            [np.asarray(a, dtype=np.float32).reshape(-1, 3) for a in arrays]
        )

    @property
    def nbytes(self) -> int:
        return int(self._flat.nbytes)

    def gather(self, system: np.ndarray, frames: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Shapes: system [V], frames [V, K], node [V] -> float32 [V, K, 3]."""
        rows = self._row_offset[system][:, None] + frames * self._n_nodes[system][:, None]
        return np.take(self._flat, rows + node[:, None], axis=0)


class CachedFileFrames:
    """Frames left in the file, read block by block with a bounded LRU cache of blocks.

    A block is ``block_frames`` consecutive frames of one system (its dataset's chunk length),
    so one HDF5 read returns whole chunks and nothing is decompressed twice while cached.
    ``reads`` counts HDF5 reads and ``systems_read`` the systems any read touched (tests and
    benchmarks use them as evidence of what was read).
    """

    def __init__(self, sources: Sequence[FileFrames], cache_limit: int | None = None) -> None:
        self._sources = list(sources)
        self._n_nodes = np.array([s.shape[1] for s in self._sources], dtype=np.int64)
        self._n_frames = np.array([s.shape[0] for s in self._sources], dtype=np.int64)
        self._block_frames = np.array([s.block_frames for s in self._sources], dtype=np.int64)
        blocks = -(-self._n_frames // self._block_frames)
        self._block_base = group_offsets(blocks)
        self.cache_limit = cache_bytes() if cache_limit is None else int(cache_limit)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.reads = 0
        self.systems_read: set[int] = set()

    @property
    def nbytes(self) -> int:
        """Bytes of the frames left in the file (what `MemoryFrames` would hold)."""
        return int(sum(s.nbytes for s in self._sources))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)  # a worker process starts with an empty cache of its own
        state["_cache"], state["_cached_bytes"] = OrderedDict(), 0
        return state

    def _block(self, block: int, system: int) -> np.ndarray:
        """Flat float32 [f * N, 3] frames of ``block`` (cached, else one read)."""
        cached = self._cache.get(block)
        if cached is not None:
            self._cache.move_to_end(block)
            return cached
        first = (block - int(self._block_base[system])) * int(self._block_frames[system])
        stop = min(first + int(self._block_frames[system]), int(self._n_frames[system]))
        data = self._sources[system].read(first, stop).reshape(-1, 3)
        self.reads += 1
        self.systems_read.add(system)
        if data.nbytes <= self.cache_limit:
            self._cache[block] = data
            self._cached_bytes += data.nbytes
            while self._cached_bytes > self.cache_limit:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= dropped.nbytes
        return data

    def gather(self, system: np.ndarray, frames: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Shapes: system [V], frames [V, K], node [V] -> float32 [V, K, 3]."""
        per_frame = self._block_frames[system][:, None]
        block = self._block_base[system][:, None] + frames // per_frame  # [V, K]
        unique, inverse = np.unique(block, return_inverse=True)
        owner = np.searchsorted(self._block_base, unique, side="right") - 1
        # One read (or cache hit) per distinct block of the batch: a loop over HDF5 chunks,
        # not over particles, frames or windows.
        parts = [self._block(int(b), int(s)) for b, s in zip(unique, owner, strict=True)]
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        base = group_offsets(sizes)[inverse.reshape(block.shape)]  # [V, K]
        local_frame = frames - (block - self._block_base[system][:, None]) * per_frame
        rows = base + local_frame * self._n_nodes[system][:, None] + node[:, None]
        staging = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.take(staging, rows, axis=0)


def _byte_size(n_bytes: float) -> str:
    return (
        f"{n_bytes / (1 << 30):.3g} GiB" if n_bytes >= 1 << 30 else f"{n_bytes / (1 << 20):.3g} MiB"
    )


def describe_stores(stores: Sequence[MemoryFrames | CachedFileFrames]) -> str:
    """One line for the start-of-run block: where the frames are and why (the user's memory)."""
    total = sum(store.nbytes for store in stores)
    if all(isinstance(store, MemoryFrames) for store in stores):
        return f"in memory, {_byte_size(total)}"
    cache = sum(store.cache_limit for store in stores if isinstance(store, CachedFileFrames))
    available = available_memory()
    why = (
        f"{FRAMES_ENV}=file"
        if frames_mode() == "file"
        else f"more than {IN_MEMORY_FRACTION:g} of the {_byte_size(available or 0)} this process may use"
    )
    return f"read from the file on demand, {_byte_size(total)} ({why}); block cache {_byte_size(cache)}"


def frame_store(arrays: Sequence, n_nodes: np.ndarray) -> MemoryFrames | CachedFileFrames:
    """`CachedFileFrames` when every system's frames are `FileFrames`, else `MemoryFrames`."""
    if arrays and all(isinstance(a, FileFrames) for a in arrays):
        return CachedFileFrames(arrays)
    return MemoryFrames(arrays, n_nodes)
