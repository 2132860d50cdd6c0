"""The one error metric of the project and its bookkeeping: MSE over all target coordinates.

MSE = mean over windows, nodes and the 3 coordinates of (predicted - true target position)^2, in
(length unit)^2 — the metric of the ESTAG, SAKE and EGNN papers. It is accumulated as sums of
squared errors and coordinate counts per system, so that batches of any size, DDP ranks and
systems of different sizes combine exactly (a mean of batch means would weight small batches
too much). Padding nodes (``node_mask`` False) count for nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from dynforecast.io.atomic import atomic_output
from dynforecast.models.batch import WindowBatch
from dynforecast.ops.scatter import scatter_sum
from dynforecast.train.distributed import DistContext, all_reduce_sum, shard_exact


class BatchSource(Protocol):
    """What the loop and the metrics need from a data set (`dynforecast.data.windows.WindowDataset`)."""

    def batch(self, window_ids: np.ndarray) -> WindowBatch: ...

    def __len__(self) -> int: ...


def window_systems(dataset: Any, window_ids: np.ndarray) -> np.ndarray:
    """System index of each window (`dynforecast.data.windows.WindowIndex.system`)."""
    return dataset.windows.system[np.asarray(window_ids, dtype=np.int64)]


def node_squared_errors(prediction: Tensor, batch: WindowBatch) -> tuple[Tensor, Tensor]:
    """Squared error summed over xyz per node, and coordinates counted per node (0 for padding).

    Shapes: prediction [V, 3], batch.target [V, 3] -> ([V], [V]).
    """
    if batch.target is None:
        raise ValueError("expected a batch with target positions (got target=None)")
    squared = (prediction - batch.target).pow(2).sum(dim=1)
    coords = torch.full_like(squared, 3.0)
    if batch.node_mask is not None:
        mask = batch.node_mask.to(squared.dtype)
        squared, coords = squared * mask, coords * mask
    return squared, coords


def mse_loss(prediction: Tensor, batch: WindowBatch) -> Tensor:
    """Training loss: mean squared error over the batch's real target coordinates."""
    squared, coords = node_squared_errors(prediction, batch)
    return squared.sum() / coords.sum().clamp_min(1.0)


@dataclass
class ErrorSums:
    """Sums of squared errors and coordinate counts per system (float64 [S] each)."""

    sse: np.ndarray
    count: np.ndarray

    @classmethod
    def zeros(cls, n_systems: int) -> ErrorSums:
        return cls(np.zeros(n_systems), np.zeros(n_systems))

    @property
    def mse(self) -> float:
        total = float(self.count.sum())
        return float(self.sse.sum()) / total if total else float("nan")

    def per_system(self) -> np.ndarray:
        """MSE per system (NaN for systems without windows in the split)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sse / self.count


@torch.no_grad()
def evaluate_errors(
    models: Mapping[str, nn.Module],
    dataset: Any,
    window_ids: np.ndarray,
    n_systems: int,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    context: DistContext | None = None,
) -> dict[str, ErrorSums]:
    """Error sums per system of several models on the same windows (one batch build per chunk).

    Under DDP each rank evaluates its share and the sums are all-reduced, so every rank returns
    the totals over all ``window_ids``.
    """
    context = context or DistContext()
    ids = shard_exact(np.asarray(window_ids, dtype=np.int64), context)
    systems_of_windows = window_systems(dataset, ids)
    sums = {name: torch.zeros(2, n_systems, dtype=torch.float64, device=device) for name in models}
    for model in models.values():
        model.eval()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        batch = dataset.batch(chunk).to(device, dtype)
        window_system = torch.as_tensor(
            systems_of_windows[start : start + batch_size], device=device
        )
        node_system = window_system[batch.node_graph]
        for name, model in models.items():
            squared, coords = node_squared_errors(model(batch), batch)
            sums[name][0] += scatter_sum(squared.double(), node_system, n_systems)
            sums[name][1] += scatter_sum(coords.double(), node_system, n_systems)
    out = {}
    for name, value in sums.items():
        total = all_reduce_sum(value, context).cpu().numpy()
        out[name] = ErrorSums(total[0], total[1])
    return out


def write_metrics_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Rewrite ``metrics.csv`` from the full history, atomically (a resumed run keeps one history)."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(path, overwrite=True) as scratch:
        scratch.write_text(buffer.getvalue())


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def format_mse(value: float) -> str:
    """MSE in a fixed short form for logs and tables."""
    return f"{value:.6g}"
