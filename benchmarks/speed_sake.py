"""CPU speed of SAKE per batch, beside the JAX reference's figures (spec §9.1).

    OMP_NUM_THREADS=1 python -m benchmarks.speed_sake [--repeats 10] [--threads 1 2]
        [--cases nbody motion100 motion198] [--compile] [--retain-freed-memory] [--json]
        [--reference-dir /tmp/sake_ref]

Cases (F 64, L 4, H 4, K 50, float32, all pairs):
    nbody      5 charged particles, batch 100, velocity vector given (reference N-body recipe)
    motion100  31 joints, batch 100, v = None (reference motion recipe, GMN batch size)
    motion198  31 joints, batch 198, v = None (reference motion recipe: full batch)
Figures are median ms per batch after warm-up: forward (no_grad) and forward + backward of the
MSE. The reference (choderalab/sake 0a25409, JAX jitted, float32) was measured on the same machine
class, a shared 2-core x86-64 CPU, using both cores; its ranges span two runs. The ratio columns
divide the reference's *fastest* figure by ours (above 1 = we are faster); these spec figures are
labelled "spec figures, not re-measured": taken at another time, so machine load can move the
ratio either way (for ESTAG a same-run measurement found its spec figures about 2x off).

With ``--reference-dir`` pointing at a checkout of the reference (the package ``sake/``, with
jax and flax installed; neither is a dynforecast dependency), the reference DenseSAKEModel is
jitted and timed call by call alternately with ours in this process (benchmarks/reference_sake.py)
and the rows say "same run". Before timing, our weights are transplanted into a reference on a
small batch of each case and the forecasts compared (max difference printed to stderr; above
1e-4 the run stops). The timed N-body reference carries our weights; the timed motion reference
is the spec's configuration (D_in 32 = [|v| ‖ one-hot joint], Flax init), while ours reads |v|
only (D_in 1): the input embedding is a negligible part of the cost. XLA uses its own thread pool
(all cores); the cores each side really used (process CPU s per wall s) go to stderr and JSON.
The machine is shared:
the 1-minute load average before and after is printed to stderr; 2-thread figures are only
meaningful when the load is below about 1. `--compile` also times
``torch.compile(model)`` (the analogue of jit; compile time reported separately).
``--retain-freed-memory`` tunes glibc malloc first (`dynforecast.ops.allocator`): fewer page faults
for the multi-megabyte edge activations; the reference ran without such tuning (XLA has its own
allocator). Activations above 32 MiB (motion: [E, 256] floats are 95-188 MiB) are always mmapped
by glibc and page-faulted in 4 KiB at a time; PyTorch backs them with transparent huge pages when
the environment variable THP_MEM_ALLOC_ENABLE=1 is set before Python starts (read once by torch's
allocator; printed to stderr), which made the motion layers about 20% faster here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.model_timing import (
    Timing,
    all_pairs,
    nbody_batch,
    replicate,
    time_model,
    timed_variants,
)
from dynforecast.models import ForecastModel, WindowBatch, create_model
from dynforecast.ops.allocator import retain_freed_memory

# Reference ms per batch (fastest, slowest of its ranges): forward, forward + backward.
REFERENCE_MS = {
    "nbody": ((15.0, 16.0), (100.0, 140.0)),
    "motion100": ((500.0, 500.0), (2200.0, 2200.0)),
    "motion198": ((1070.0, 1690.0), (5000.0, 7900.0)),
}


def motion_batch(batch_size: int) -> WindowBatch:
    """31-joint skeletons, all pairs, two past frames with velocities (only |v| is used)."""
    species = torch.zeros(31, dtype=torch.long)
    return replicate(all_pairs(31), species, batch_size, 2, velocities=True)


def nbody_model() -> ForecastModel:
    """N-body recipe: h = [charge, |v|] (D_in 2), velocity vector passed to the first layer."""
    return create_model("sake", species="none", node_attr_dim=1)


def motion_model() -> ForecastModel:
    """Motion recipe: only |v| as a node scalar (plus a constant), v = None into layer 1."""
    return create_model("sake", species="none", use_velocity=False)


CASES: dict[str, tuple[Callable[[], ForecastModel], Callable[[], WindowBatch]]] = {
    "nbody": (nbody_model, lambda: nbody_batch(100)),
    "motion100": (motion_model, lambda: motion_batch(100)),
    "motion198": (motion_model, lambda: motion_batch(198)),
}


def run(
    names: list[str],
    threads: list[int],
    repeats: int,
    warmup: int,
    use_compile: bool,
    reference_dir: Path | None = None,
) -> list[dict]:
    """One row per case, mode and thread count; with ``reference_dir`` the reference is timed
    alternately with ours in each row (a same-run comparison)."""
    reference_class = None
    if reference_dir is not None:
        from benchmarks.reference_sake import load_reference_model, xla_threads_note

        reference_class = load_reference_model(reference_dir)
        print(f"reference SAKE from {reference_dir}: {xla_threads_note()}", file=sys.stderr)
    rows = []
    for name in names:
        build_model, build_batch = CASES[name]
        torch.manual_seed(0)
        model, batch = build_model(), build_batch()
        reference = None
        if reference_class is not None:
            reference = same_run_reference(name, model, batch, reference_class)
        for mode, runnable, compile_s in timed_variants(model, batch, use_compile):
            for count in threads:
                if reference is None:
                    timing = time_model(runnable, batch, count, repeats, warmup)  # type: ignore[arg-type]
                    rows.append(result_row(name, mode, timing, compile_s))
                    continue
                from benchmarks.reference_sake import time_pair

                pair = time_pair(runnable, reference, batch, count, repeats, warmup)
                rows.append(same_run_row(name, mode, pair, batch.num_graphs, compile_s, reference))
    return rows


def same_run_reference(name: str, model: ForecastModel, batch: WindowBatch, reference_class):
    """The reference to time beside ``model`` on ``batch``, after proving on a small batch of
    the same case that, with our weights, it computes our function."""
    from benchmarks.reference_sake import (
        DenseInputs,
        ReferenceSake,
        flax_parameters,
        one_hot_joints,
        same_function_check,
    )
    from dynforecast.models.sake import input_velocity

    small = nbody_batch(4) if name == "nbody" else motion_batch(2)
    difference = same_function_check(model, reference_class, small)  # type: ignore[arg-type]
    print(f"{name}: max |ours - reference| with our weights = {difference:.1e}", file=sys.stderr)
    if difference > 1e-4:
        raise RuntimeError(f"{name}: the reference SAKE computes another function")
    if name == "nbody":
        node_input = model.node_scalars(batch, input_velocity(batch))  # type: ignore[operator]
        inputs = DenseInputs.from_batch(batch, node_input, use_velocity=True)
        reference = ReferenceSake(reference_class, model, inputs, flax_parameters(model))  # type: ignore[arg-type]
    else:  # the spec's motion configuration: D_in 32, v = None, Flax init
        inputs = DenseInputs.from_batch(batch, one_hot_joints(batch), use_velocity=False)
        reference = ReferenceSake(reference_class, model, inputs)  # type: ignore[arg-type]
    print(
        f"{name}: reference {reference.num_parameters:,} parameters, jit compile "
        f"{reference.forward_compile_s:.1f} s (forward), "
        f"{reference.forward_backward_compile_s:.1f} s (value_and_grad)",
        file=sys.stderr,
    )
    return reference


def same_run_row(name: str, mode: str, pair, batch_size: int, compile_s, reference) -> dict:
    """A result row whose reference figures were measured in this run, call by call with ours."""
    timing = Timing(
        pair.threads, batch_size, pair.ours_forward.median_ms, pair.ours_forward_backward.median_ms
    )
    measured = (pair.reference_forward.median_ms, pair.reference_forward_backward.median_ms)
    row = result_row(name, mode, timing, compile_s, measured)
    row["cores_used"] = {
        "ours_forward": round(pair.ours_forward.cores_used, 2),
        "reference_forward": round(pair.reference_forward.cores_used, 2),
        "ours_forward_backward": round(pair.ours_forward_backward.cores_used, 2),
        "reference_forward_backward": round(pair.reference_forward_backward.cores_used, 2),
    }
    row["reference_compile_s"] = round(
        reference.forward_compile_s + reference.forward_backward_compile_s, 1
    )
    print(f"{name} {mode} {pair.threads} threads: cores used {row['cores_used']}", file=sys.stderr)
    return row


def result_row(
    name: str,
    mode: str,
    timing,
    compile_s: float | None,
    measured_reference: tuple[float, float] | None = None,
) -> dict:
    """A result row; ``measured_reference`` (forward, forward+backward ms) comes from the same
    run, otherwise the spec's figures are used and the row says so."""
    reference_ms = REFERENCE_MS[name]
    source = "spec figures, not re-measured"
    if measured_reference is not None:
        forward, backward = (round(ms, 1) for ms in measured_reference)
        reference_ms, source = ((forward, forward), (backward, backward)), "same run"
    (ref_fwd, _), (ref_bwd, _) = reference_ms
    row = {
        "case": name,
        "mode": mode,
        "threads": timing.threads,
        "batch": timing.batch_size,
        "forward_ms": round(timing.forward_ms, 1),
        "forward_backward_ms": round(timing.forward_backward_ms, 1),
        "forward_samples_per_s": round(timing.samples_per_second(timing.forward_ms)),
        "train_samples_per_s": round(timing.samples_per_second(timing.forward_backward_ms)),
        "reference_forward_ms": reference_ms[0],
        "reference_forward_backward_ms": reference_ms[1],
        "reference_source": source,
        "speedup_forward": round(ref_fwd / timing.forward_ms, 2),
        "speedup_forward_backward": round(ref_bwd / timing.forward_backward_ms, 2),
    }
    if compile_s is not None:
        row["compile_s"] = round(compile_s, 1)
    return row


def millisecond_range(low: float, high: float) -> str:
    """ "15-16" for a range of figures, "27.3" for a single one."""
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def print_table(rows: list[dict]) -> None:
    print(
        "| case | mode | threads | forward ms | fwd+bwd ms | fwd samples/s | fwd+bwd samples/s "
        "| reference fwd / fwd+bwd ms | speed-up vs fastest reference (fwd, fwd+bwd) "
        "| reference source |"
    )
    print("|" + "---|" * 10)
    for r in rows:
        forward = millisecond_range(*r["reference_forward_ms"])
        backward = millisecond_range(*r["reference_forward_backward_ms"])
        print(
            f"| {r['case']} | {r['mode']} | {r['threads']} | {r['forward_ms']:.1f} | "
            f"{r['forward_backward_ms']:.1f} | {r['forward_samples_per_s']} | "
            f"{r['train_samples_per_s']} | {forward} / {backward} | "
            f"{r['speedup_forward']:.2f}x, {r['speedup_forward_backward']:.2f}x | "
            f"{r['reference_source']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="tune glibc malloc first (dynforecast.ops.allocator); the reference ran without it",
    )
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument(
        "--reference-dir",
        type=Path,
        help="directory with the reference SAKE package (sake/models.py; needs jax and flax): "
        "time it alternately with ours in the same run",
    )
    args = parser.parse_args()
    if args.retain_freed_memory and not retain_freed_memory():
        parser.error("--retain-freed-memory: this C library does not accept the malloc tuning")
    huge_pages = os.environ.get("THP_MEM_ALLOC_ENABLE", "unset")
    print(f"THP_MEM_ALLOC_ENABLE={huge_pages}", file=sys.stderr)
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    try:
        rows = run(
            args.cases, args.threads, args.repeats, args.warmup, args.compile, args.reference_dir
        )
    except (FileNotFoundError, ImportError, RuntimeError) as error:
        if args.reference_dir is None:
            raise
        parser.error(f"--reference-dir: {error}")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
