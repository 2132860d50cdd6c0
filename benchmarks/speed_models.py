"""CPU speed of ESTAG and EGNN per batch of 100 windows, beside the reference ESTAG's figures.

    OMP_NUM_THREADS=1 python -m benchmarks.speed_models [--repeats 30] [--rounds 1]
        [--threads 1 2] [--json] [--retain-freed-memory]

Cases: ESTAG reference configuration (H 16, L 2, T 10) on aspirin-like windows (13 nodes, 60
directed edges); EGNN (64 hidden, 4 layers) on 5-particle all-pairs N-body windows. Figures are
median ms per batch, float32. The reference ESTAG figures (spec §9.3) were taken on the same
machine class, a shared 2-core CPU with torch 2.13; re-measure both when comparing for real.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch

from benchmarks.model_timing import Timing, aspirin_batch, nbody_batch, time_model
from dynforecast.models import ForecastModel, WindowBatch, create_model
from dynforecast.ops.allocator import retain_freed_memory

# Reference ESTAG (ManlioWu/ESTAG bc9a99e), ms per batch of 100: threads -> (forward, fwd+bwd).
REFERENCE_ESTAG_MS = {1: (27.5, 75.0), 2: (18.6, 67.9)}

Case = tuple[str, Callable[[], ForecastModel], Callable[[], WindowBatch]]

CASES: list[Case] = [
    ("estag", lambda: create_model("estag"), lambda: aspirin_batch(100, 10)),
    (
        "egnn",
        lambda: create_model("egnn", hidden_dim=64, num_layers=4, node_attr_dim=1),
        lambda: nbody_batch(100),
    ),
]


def run_cases(
    cases: list[Case], threads: list[int], repeats: int, warmup: int, rounds: int = 1
) -> list[dict]:
    """Time every case at every thread count; one result row (a plain dict) per pair."""
    rows = []
    for name, build_model, build_batch in cases:
        torch.manual_seed(0)
        model, batch = build_model(), build_batch()
        for count in threads:
            timing = time_model(model, batch, count, repeats, warmup, rounds)
            rows.append(row(name, timing))
    return rows


def row(name: str, timing: Timing) -> dict:
    """A result row; for ESTAG also our time divided by the reference's (below 1 = faster)."""
    result = {
        "model": name,
        "threads": timing.threads,
        "batch": timing.batch_size,
        "forward_ms": round(timing.forward_ms, 2),
        "forward_backward_ms": round(timing.forward_backward_ms, 2),
        "forward_samples_per_s": round(timing.samples_per_second(timing.forward_ms)),
        "train_samples_per_s": round(timing.samples_per_second(timing.forward_backward_ms)),
    }
    reference = REFERENCE_ESTAG_MS.get(timing.threads) if name == "estag" else None
    if reference is not None:
        result["reference_forward_ms"], result["reference_forward_backward_ms"] = reference
        result["forward_ratio"] = round(timing.forward_ms / reference[0], 2)
        result["forward_backward_ratio"] = round(timing.forward_backward_ms / reference[1], 2)
    return result


def print_table(rows: list[dict]) -> None:
    header = "| model | threads | forward ms | fwd+bwd ms | fwd samples/s | fwd+bwd samples/s | vs reference (fwd, fwd+bwd) |"
    print(header)
    print("|" + "---|" * 7)
    for r in rows:
        ratio = (
            f"{r['forward_ratio']:.2f}x, {r['forward_backward_ratio']:.2f}x"
            if "forward_ratio" in r
            else "-"
        )
        print(
            f"| {r['model']} | {r['threads']} | {r['forward_ms']:.1f} | "
            f"{r['forward_backward_ms']:.1f} | {r['forward_samples_per_s']} | "
            f"{r['train_samples_per_s']} | {ratio} |"
        )


def main(cases: list[Case] = CASES) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=1, help="best median of this many rounds (shared machines)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="tune glibc malloc first (dynforecast.ops.allocator); the reference ran without it",
    )
    args = parser.parse_args()
    if args.retain_freed_memory and not retain_freed_memory():
        parser.error("--retain-freed-memory: this C library does not accept the malloc tuning")
    rows = run_cases(cases, args.threads, args.repeats, args.warmup, args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
