"""Speed of each model on each benchmark data set: training windows/s, inference ms per window,
peak memory and wall time per epoch (issue 12, table 5), through the commands a user runs.

Run: ``python -m benchmarks.speed_table [--tables md17 nbody adk protein_md motion]
[--models estag sake egnn] [--epochs 3] [--quick] [--out FILE.json]``.

Per (data set, model), each in its own child processes so that peak memory is that cell's alone:
1. ``dynforecast train DATA --model M --epochs E`` with the table's settings (window, graph,
   split, the model's table settings) and ``optim.val_every`` past the last epoch, so that the
   epoch times in ``metrics.csv`` are training only; the epoch time is the median over epochs
   2..E (epoch 1 pays one-off costs), and training windows/s is the training windows over it.
   Peak memory is the child's maximum resident set size (``getrusage(RUSAGE_CHILDREN)``).
2. Inference: the trained checkpoint's forward pass (``torch.no_grad``) on one batch of the test
   windows (the table's batch size, at most 100), median of 10 after 3 warm-up calls, per window.
Data comes from the benchmark cache (the tables' own data sets; made there when missing, which
for MD17 means an xTB simulation: run ``benchmarks.run`` first). Threads: ``OMP_NUM_THREADS``,
1 by default here (the machine the tables were measured on has 2 cores shared with other work).
The JSON (one row per cell, with the machine and load) goes to ``--out``, default
``benchmarks/results/speed/speed.json``; ``--markdown`` prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.suite import MODEL_VARIANTS, TABLES, bench_cache, dynforecast_command

RESULTS = Path(__file__).resolve().parent / "results" / "speed"
# One data set and split per table: the first of each (MD17: aspirin, ESTAG's reference split).
DEFAULT_TABLES = ("md17", "nbody", "adk", "protein_md", "motion")


def _cell_settings(table_name: str, model: str, quick: bool) -> list[str]:
    table = TABLES[table_name]
    _, variant = MODEL_VARIANTS[model]
    split = table.splits[0]
    return [
        *table.settings,
        *split.keys(quick),
        *variant,
        *table.model_settings.get(model, ()),
    ]


def _peak_rss_of(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``argv`` in a fresh wrapper process and return (result, its child's peak RSS bytes).

    getrusage(RUSAGE_CHILDREN) is the maximum over every child ever waited for, so each
    measured command runs under its own small wrapper to keep the figure that command's own.
    """
    wrapper = (
        "import resource, subprocess, sys, json\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps({'rc': r.returncode, 'peak': peak, 'out': r.stdout, 'err': r.stderr}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], capture_output=True, text=True, env=env
    )
    record = json.loads(done.stdout)
    result = subprocess.CompletedProcess(argv, record["rc"], record["out"], record["err"])
    return result, int(record["peak"])


def _inference_ms_per_window(run_dir: Path, data: Path) -> tuple[float, int]:
    """Median forward time per window on one batch of test windows, and the batch's windows."""
    import numpy as np
    import torch

    from benchmarks.timing import median_ms
    from dynforecast.data.loading import load_systems
    from dynforecast.ensemble import load_members
    from dynforecast.train import setup

    (trained,) = load_members([run_dir])
    config = trained.config
    systems = load_systems(data, config.data.systems)
    dataset = setup.build_dataset(systems, config)
    splits = setup.build_splits(dataset, config)
    ids = splits["test"] if len(splits["test"]) else np.arange(len(dataset))
    size = min(len(ids), config.optim.batch_size or 100, 100)
    batch = dataset.batch(ids[:size])
    model = trained.model.eval()
    with torch.no_grad():
        ms = median_ms(lambda: model(batch), repeats=10, warmup=3)
    return ms / size, size


def measure(table_name: str, model: str, epochs: int, quick: bool) -> dict:
    """One cell: train E epochs in a child, then time inference in another."""
    table = TABLES[table_name]
    dataset = table.datasets[table.quick_dataset if quick else 0]
    data_dir = bench_cache() / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data = dataset.make(data_dir, quick)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    name, _ = MODEL_VARIANTS[model]
    with tempfile.TemporaryDirectory(prefix="speed-") as scratch:
        run_dir = Path(scratch) / "run"
        argv = [*dynforecast_command(), "train", str(data), "--model", name]
        argv += ["--epochs", str(epochs), "--out", str(run_dir), "--json", "--quiet"]
        for setting in (*_cell_settings(table_name, model, quick), f"optim.val_every={epochs}"):
            argv += ["--set", setting]
        started = time.perf_counter()
        trained, train_peak = _peak_rss_of(argv, env)
        wall = time.perf_counter() - started
        if trained.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {trained.stderr[-1500:]}")
        with (run_dir / "metrics.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        seconds = [float(r["seconds"]) for r in rows]
        epoch_seconds = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
        config = json.loads((run_dir / "config.json").read_text())
        probe = (
            "import json, sys; from pathlib import Path; "
            "from benchmarks.speed_table import _train_windows, _inference_ms_per_window; "
            "ms, size = _inference_ms_per_window(Path(sys.argv[1]), Path(sys.argv[2])); "
            "print(json.dumps({'ms': ms, 'size': size, "
            "'train': _train_windows(Path(sys.argv[1]), Path(sys.argv[2]))}))"
        )
        inferred, infer_peak = _peak_rss_of(
            [sys.executable, "-c", probe, str(run_dir), str(data)], env
        )
        if inferred.returncode != 0:
            raise RuntimeError(f"inference timing failed: {inferred.stderr[-1500:]}")
        timing = json.loads(inferred.stdout.strip().splitlines()[-1])
    return {
        "table": table_name,
        "dataset": dataset.name,
        "model": model,
        "train_windows": timing["train"],
        "batch_size": config["train_config"]["optim"]["batch_size"],
        "epoch_seconds": epoch_seconds,
        "train_windows_per_s": timing["train"] / epoch_seconds,
        "inference_ms_per_window": timing["ms"],
        "inference_batch": timing["size"],
        "train_peak_rss_mb": train_peak / 2**20,
        "inference_peak_rss_mb": infer_peak / 2**20,
        "epochs": epochs,
        "train_wall_s": round(wall, 1),
        "threads": int(env["OMP_NUM_THREADS"]),
    }


def _train_windows(run_dir: Path, data: Path) -> int:
    """Training windows of the run's split (as train counted them)."""
    from dynforecast.data.loading import load_systems
    from dynforecast.ensemble import load_members
    from dynforecast.train import setup

    (trained,) = load_members([run_dir])
    systems = load_systems(data, trained.config.data.systems)
    dataset = setup.build_dataset(systems, trained.config)
    return len(setup.build_splits(dataset, trained.config)["train"])


def _machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "torch": torch.__version__,
    }


def markdown(rows: list[dict]) -> str:
    """The speed table: one row per data set and model."""
    lines = [
        "| data set | model | train windows/s | epoch s | inference ms/window | "
        "peak RSS train MB | peak RSS inference MB | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['train_windows_per_s']:.0f} | "
            f"{row['epoch_seconds']:.2f} | {row['inference_ms_per_window']:.3f} | "
            f"{row['train_peak_rss_mb']:.0f} | {row['inference_peak_rss_mb']:.0f} | "
            f"{row['machine']['load_1min']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(DEFAULT_TABLES), choices=list(TABLES))
    parser.add_argument("--models", nargs="+", default=["estag", "sake", "egnn"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 pays one-off costs)")
    out = args.out or (RESULTS / ("speed-quick.json" if args.quick else "speed.json"))
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {(r["table"], r["model"]) for r in rows}
    for table_name in args.tables:
        for model in args.models:
            if (table_name, model) in done:
                continue
            row = {**measure(table_name, model, args.epochs, args.quick), "machine": _machine()}
            rows.append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")  # after each cell: resumable
            print(
                f"{row['dataset']} {model}: {row['train_windows_per_s']:.0f} windows/s, "
                f"{row['inference_ms_per_window']:.3f} ms/window, "
                f"{row['train_peak_rss_mb']:.0f} MB",
                flush=True,
            )
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
