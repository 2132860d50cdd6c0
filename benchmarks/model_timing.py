"""Helpers for model speed benchmarks: synthetic batches and a forward / forward+backward timer.

Shared by benchmarks/speed_models.py (ESTAG, EGNN) and model-specific scripts (e.g. SAKE's), so
that every model is timed the same way: median wall time over repeats after warm-up, float32,
a fixed number of CPU threads, synthetic inputs (timing does not depend on the values).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks.timing import median_ms
from dynforecast.models import ForecastModel, WindowBatch

# Aspirin's 13 heavy atoms: benzene ring C0..C5, carboxyl C6(O7)(O8) on C0, ester O9 on C1,
# acetyl C10(O11) C12. 13 bonds; with the 17 two-hop pairs 30 pairs = 60 directed edges, the
# reference's MD17 aspirin graph size.
ASPIRIN_HEAVY_BONDS = [
    (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0),
    (0, 6), (6, 7), (6, 8), (1, 9), (9, 10), (10, 11), (10, 12),
]  # fmt: skip
ASPIRIN_HEAVY_SPECIES = [6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 8, 6]


def bonds_and_two_hop(num_nodes: int, bonds: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """Directed edges (src, dst) of bonded pairs plus pairs two bonds apart.

    Shapes: -> [E], [E].
    """
    adjacency = np.zeros((num_nodes, num_nodes), dtype=bool)
    first, second = np.array(bonds).T
    adjacency[first, second] = adjacency[second, first] = True
    two_hop = (adjacency.astype(int) @ adjacency.astype(int)) > 0
    connected = adjacency | two_hop
    np.fill_diagonal(connected, False)
    src, dst = np.nonzero(connected)
    return torch.from_numpy(src).long(), torch.from_numpy(dst).long()


def all_pairs(num_nodes: int) -> tuple[Tensor, Tensor]:
    """Directed edges between every ordered pair of distinct nodes. Shapes: -> [E], [E]."""
    src, dst = np.nonzero(~np.eye(num_nodes, dtype=bool))
    return torch.from_numpy(src).long(), torch.from_numpy(dst).long()


def replicate(
    edges: tuple[Tensor, Tensor],
    species: Tensor,
    batch_size: int,
    num_frames: int,
    *,
    velocities: bool = False,
    charges: bool = False,
    seed: int = 0,
) -> WindowBatch:
    """A float32 batch of ``batch_size`` copies of one graph with random coordinates.

    Node indices of copy b are offset by b * N, as a data loader's collate would do.
    """
    generator = torch.Generator().manual_seed(seed)
    num_nodes = species.shape[0]
    src, dst = edges
    offsets = (torch.arange(batch_size) * num_nodes).repeat_interleave(src.shape[0])
    total = batch_size * num_nodes
    positions = torch.randn(total, 1, 3, generator=generator) * 1.5
    positions = positions + 0.05 * torch.randn(total, num_frames, 3, generator=generator).cumsum(1)
    node_attrs = torch.zeros(total, 0)
    if charges:
        node_attrs = torch.randint(0, 2, (total, 1), generator=generator) * 2.0 - 1.0
    return WindowBatch(
        positions=positions,
        species=species.repeat(batch_size),
        node_attrs=node_attrs,
        edge_src=src.repeat(batch_size) + offsets,
        edge_dst=dst.repeat(batch_size) + offsets,
        node_graph=torch.arange(batch_size).repeat_interleave(num_nodes),
        num_graphs=batch_size,
        velocities=torch.randn(total, num_frames, 3, generator=generator) if velocities else None,
        target=torch.randn(total, 3, generator=generator),
    )


def aspirin_batch(batch_size: int = 100, num_frames: int = 10) -> WindowBatch:
    """ESTAG's MD17 aspirin setting: 13 nodes, 60 directed edges, T frames, per window."""
    edges = bonds_and_two_hop(13, ASPIRIN_HEAVY_BONDS)
    return replicate(edges, torch.tensor(ASPIRIN_HEAVY_SPECIES), batch_size, num_frames)


def nbody_batch(batch_size: int = 100, num_particles: int = 5) -> WindowBatch:
    """EGNN's N-body setting: 5 charged particles, all pairs, one frame plus velocities."""
    edges = all_pairs(num_particles)
    species = torch.zeros(num_particles, dtype=torch.long)
    return replicate(edges, species, batch_size, 1, velocities=True, charges=True)


@dataclass(frozen=True)
class Timing:
    """Median milliseconds per batch, and the batch size they refer to."""

    threads: int
    batch_size: int
    forward_ms: float
    forward_backward_ms: float

    def samples_per_second(self, milliseconds: float) -> float:
        return self.batch_size / (milliseconds / 1000.0)


def timed_calls(
    model: nn.Module, predict: Callable[[], Tensor], batch: WindowBatch
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The two calls every speed figure times: ``predict()`` under no_grad (inference), and the
    MSE of ``predict()`` to ``batch.target`` backpropagated into ``model`` (gradients cleared
    first). ``predict`` may run a model other than ours on converted inputs (the references)."""
    if batch.target is None:
        raise ValueError("expected a batch with a target for the backward timing (got none)")
    target = batch.target

    def forward() -> None:
        with torch.no_grad():
            predict()

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        (predict() - target).square().mean().backward()

    return forward, forward_backward


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_model(
    model: ForecastModel,
    batch: WindowBatch,
    threads: int,
    repeats: int = 30,
    warmup: int = 5,
    rounds: int = 1,
) -> Timing:
    """Time ``model`` on ``batch`` with ``threads`` intra-op CPU threads (restored afterwards).

    Forward runs under no_grad (inference); forward+backward computes the MSE to batch.target
    and backpropagates into the parameters, gradients cleared between calls. Each figure is the
    median of ``repeats`` calls; with ``rounds`` > 1 the best (lowest) median of that many
    rounds, which filters out periods when other jobs load a shared machine.
    """
    forward, forward_backward = timed_calls(model, lambda: model(batch), batch)
    with torch_threads(threads):
        forward_ms = min(median_ms(forward, repeats, warmup) for _ in range(rounds))
        backward_ms = min(median_ms(forward_backward, repeats, warmup) for _ in range(rounds))
    return Timing(threads, batch.num_graphs, forward_ms, backward_ms)


def compiled(model: ForecastModel, batch: WindowBatch) -> tuple[ForecastModel, float]:
    """``torch.compile(model)`` and the seconds its first forward + backward (and first no-grad
    forward) took: compilation happens there, so the timed calls afterwards exclude it."""
    fast = torch.compile(model)
    start = time.perf_counter()
    (fast(batch) - batch.target).square().mean().backward()
    with torch.no_grad():
        fast(batch)
    return fast, time.perf_counter() - start  # type: ignore[return-value]


def timed_variants(
    model: ForecastModel, batch: WindowBatch, use_compile: bool
) -> list[tuple[str, ForecastModel, float | None]]:
    """What a speed script times: ("eager", model, None) and, with ``use_compile``, ("compile",
    the compiled model, its compile seconds)."""
    variants: list[tuple[str, ForecastModel, float | None]] = [("eager", model, None)]
    if use_compile:
        variants.append(("compile", *compiled(model, batch)))
    return variants
