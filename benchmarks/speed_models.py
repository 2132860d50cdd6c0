"""CPU speed of ESTAG and EGNN per batch of 100 windows, beside the reference ESTAG's figures.

    OMP_NUM_THREADS=1 python -m benchmarks.speed_models [--repeats 30] [--rounds 1]
        [--threads 1 2] [--compile] [--json] [--retain-freed-memory] [--reference-dir /tmp/estag_ref]

Cases: ESTAG reference configuration (H 16, L 2, T 10) on aspirin-like windows (13 nodes, 60
directed edges); EGNN (64 hidden, 4 layers) on 5-particle all-pairs N-body windows. Figures are
median ms per batch, float32.

The reference ESTAG's code is not part of this repository. With ``--reference-dir`` pointing at a
checkout of it (``models/model.py``, ``models/gcl.py``), it is built with our model's weights,
checked to give the same forecast, and timed call by call alternately with ours in this process
(benchmarks/reference_estag.py): a same-run comparison. Without it, the ESTAG rows are compared
with the spec's figures (§9.3), labelled "spec figures, not re-measured": taken on the same machine
class but at another time, so machine load can move the ratio either way. ``--compile`` also times
``torch.compile(model)`` (what ``train --compile`` runs; compile time reported separately) against
the same eager reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.model_timing import Timing, aspirin_batch, nbody_batch, time_model, timed_variants
from benchmarks.reference_estag import (
    load_reference_class,
    max_output_difference,
    reference_from,
    time_pair,
)
from dynforecast.models import ForecastModel, WindowBatch, create_model
from dynforecast.models.estag import ESTAG
from dynforecast.ops.allocator import retain_freed_memory

# Reference ESTAG (ManlioWu/ESTAG bc9a99e), ms per batch of 100: threads -> (forward, fwd+bwd),
# spec §9.3 (not re-measured by this script unless --reference-dir is given).
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
    cases: list[Case],
    threads: list[int],
    repeats: int,
    warmup: int,
    rounds: int = 1,
    reference_dir: Path | None = None,
    use_compile: bool = False,
) -> list[dict]:
    """Time every case at every thread count, eager and (``use_compile``) compiled; one result
    row (a plain dict) per triple.

    With ``reference_dir``, ESTAG is timed interleaved with the reference built from that
    directory (same weights, same batch) and its rows carry the same-run reference figures.
    """
    rows = []
    for name, build_model, build_batch in cases:
        torch.manual_seed(0)
        model, batch = build_model(), build_batch()
        reference = None
        if name == "estag" and reference_dir is not None:
            reference = same_function_reference(model, batch, reference_dir)
        for mode, runnable, compile_s in timed_variants(model, batch, use_compile):
            for count in threads:
                if reference is None:
                    timing = time_model(runnable, batch, count, repeats, warmup, rounds)
                    rows.append(row(name, timing, mode=mode, compile_s=compile_s))
                    continue
                pair = time_pair(runnable, reference, batch, count, repeats, warmup, rounds)
                timing = Timing(
                    count, batch.num_graphs, pair.ours_forward_ms, pair.ours_forward_backward_ms
                )
                measured = (pair.reference_forward_ms, pair.reference_forward_backward_ms)
                rows.append(row(name, timing, measured, mode=mode, compile_s=compile_s))
    return rows


def same_function_reference(model: ESTAG, batch: WindowBatch, reference_dir: Path):
    """The reference ESTAG with ``model``'s weights; refuses to time if the forecasts differ."""
    reference = reference_from(
        model,
        load_reference_class(reference_dir),
        nodes_per_graph=batch.num_nodes // batch.num_graphs,
    )
    difference = max_output_difference(model, reference, batch)
    print(
        f"reference ESTAG from {reference_dir}: max |ours - reference| = {difference:.1e}",
        file=sys.stderr,
    )
    if difference > 1e-4:
        raise RuntimeError(f"{reference_dir}: the reference ESTAG computes another function")
    return reference


def row(
    name: str,
    timing: Timing,
    measured_reference: tuple[float, float] | None = None,
    mode: str = "eager",
    compile_s: float | None = None,
) -> dict:
    """A result row; for ESTAG also our time divided by the reference's (below 1 = faster).

    ``measured_reference`` (forward, forward+backward ms) comes from the same run; otherwise the
    spec's figures are used and the row says so.
    """
    result = {
        "model": name,
        "mode": mode,
        "threads": timing.threads,
        "batch": timing.batch_size,
        "forward_ms": round(timing.forward_ms, 2),
        "forward_backward_ms": round(timing.forward_backward_ms, 2),
        "forward_samples_per_s": round(timing.samples_per_second(timing.forward_ms)),
        "train_samples_per_s": round(timing.samples_per_second(timing.forward_backward_ms)),
    }
    if compile_s is not None:
        result["compile_s"] = round(compile_s, 1)
    reference, source = measured_reference, "same run"
    if reference is None and name == "estag":
        reference, source = REFERENCE_ESTAG_MS.get(timing.threads), "spec figures, not re-measured"
    if reference is not None:
        result["reference_forward_ms"] = round(reference[0], 2)
        result["reference_forward_backward_ms"] = round(reference[1], 2)
        result["reference_source"] = source
        result["forward_ratio"] = round(timing.forward_ms / reference[0], 2)
        result["forward_backward_ratio"] = round(timing.forward_backward_ms / reference[1], 2)
    return result


def print_table(rows: list[dict]) -> None:
    print(
        "| model | mode | threads | forward ms | fwd+bwd ms | fwd samples/s | fwd+bwd samples/s "
        "| reference ms (fwd, fwd+bwd) | ours / reference (fwd, fwd+bwd) |"
    )
    print("|" + "---|" * 9)
    for r in rows:
        reference = ratio = "-"
        if "forward_ratio" in r:
            reference = (
                f"{r['reference_forward_ms']:.1f}, {r['reference_forward_backward_ms']:.1f} "
                f"({r['reference_source']})"
            )
            ratio = f"{r['forward_ratio']:.2f}x, {r['forward_backward_ratio']:.2f}x"
        print(
            f"| {r['model']} | {r['mode']} | {r['threads']} | {r['forward_ms']:.1f} | "
            f"{r['forward_backward_ms']:.1f} | {r['forward_samples_per_s']} | "
            f"{r['train_samples_per_s']} | {reference} | {ratio} |"
        )


def main(cases: list[Case] = CASES) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=1, help="best median of this many rounds (shared machines)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="tune glibc malloc first (dynforecast.ops.allocator); the reference ran without it",
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        help="directory with the reference ESTAG code (models/model.py): time it in the same run",
    )
    args = parser.parse_args()
    if args.retain_freed_memory and not retain_freed_memory():
        parser.error("--retain-freed-memory: this C library does not accept the malloc tuning")
    try:
        rows = run_cases(
            cases,
            args.threads,
            args.repeats,
            args.warmup,
            args.rounds,
            args.reference_dir,
            args.compile,
        )
    except (FileNotFoundError, ImportError, RuntimeError) as error:
        parser.error(f"--reference-dir: {error}")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
