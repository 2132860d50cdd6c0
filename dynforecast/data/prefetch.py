"""Batches assembled ahead of the step that uses them, in DataLoader worker processes.

Why: windows read out of core (`dynforecast.data.frame_store.CachedFileFrames`) cost HDF5 reads
and a gather per batch; in the training process they wait for the optimiser step and the step
waits for them. With ``workers`` > 0 a `torch.utils.data.DataLoader` of that many processes
builds batch i + 1, i + 2, ... while the model steps on batch i. Each batch is the batch the
training process would have built (`WindowDataset.batch` of the same window ids), so results
are bit-identical for any number of workers; only the time changes.

Workers are forked (Linux) and inherit the dataset: H5MD handles reopen in each worker
(`dynforecast.io.h5md_frames.open_for_reading`), block caches start empty
(`CachedFileFrames.__getstate__`). Stop signals (SIGINT, SIGTERM, SIGUSR1) are ignored in
workers: the training process alone decides to stop, writes ``last.pt`` and ends its workers.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

#: Batches each worker keeps ready (DataLoader's prefetch_factor).
PREFETCH_PER_WORKER = 2


class _WindowChunks(torch.utils.data.Dataset):
    """Item i = the batch of the i-th chunk of window ids."""

    def __init__(self, dataset: Any, chunks: Sequence[np.ndarray]) -> None:
        self.dataset = dataset
        self.chunks = list(chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> Any:
        return self.dataset.batch(self.chunks[index])


def _ignore_stop_signals(_: int) -> None:
    for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    torch.set_num_threads(1)


def _keep(batch: Any) -> Any:
    return batch


def batches(dataset: Any, chunks: Sequence[np.ndarray], workers: int = 0) -> Iterator[Any]:
    """``dataset.batch(chunk)`` for each chunk, in order; built by ``workers`` processes ahead
    of use when ``workers`` > 0, else in this process when asked for."""
    if workers <= 0 or len(chunks) <= 1:
        for chunk in chunks:
            yield dataset.batch(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    loader = torch.utils.data.DataLoader(
        _WindowChunks(dataset, chunks),
        batch_size=None,
        shuffle=False,
        num_workers=min(workers, len(chunks)),
        collate_fn=_keep,
        worker_init_fn=_ignore_stop_signals,
        prefetch_factor=PREFETCH_PER_WORKER,
        multiprocessing_context="fork" if "fork" in methods else None,
    )
    iterator = iter(loader)
    try:
        yield from iterator
    finally:
        # Ends the workers now (also when the consumer stops early: a stop signal, an error).
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
