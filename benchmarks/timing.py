"""Timing helpers shared by the benchmark scripts: median wall time after warm-up, and an
alternating timer for same-run comparisons of two implementations."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def median_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls after ``warmup`` calls.

    The median, not the mean: shared CI machines are noisy and a few slow outliers are common.
    Callers that run on CUDA must synchronise inside ``fn``.
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


@dataclass(frozen=True)
class CallSamples:
    """Wall and process-CPU seconds of each timed call of one function."""

    wall: list[float]
    cpu: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall) * 1e3

    @property
    def cores_used(self) -> float:
        """CPU seconds per wall second over all calls (1 = one busy core)."""
        return sum(self.cpu) / sum(self.wall)


def alternate(
    first: Callable[[], object], second: Callable[[], object], repeats: int, warmup: int
) -> tuple[CallSamples, CallSamples]:
    """Call the two functions alternately, recording wall and process CPU time of each call.

    Alternating call by call makes the load of a shared machine fall on both sides equally.
    """
    for _ in range(warmup):
        first()
        second()
    samples = (CallSamples([], []), CallSamples([], []))
    for _ in range(repeats):
        for fn, record in zip((first, second), samples, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            record.cpu.append(time.process_time() - cpu)
            record.wall.append(time.perf_counter() - wall)
    return samples
