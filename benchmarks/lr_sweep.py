"""Learning-rate sweep on one benchmark data set's validation windows, cell by cell, resumable.

Run: ``python -m benchmarks.lr_sweep md17 md17-aspirin md17_reference --models estag egnn
--lrs 5e-4 1e-3 5e-3 [--epochs 200] [--seed 0]``.

Why: one model's paper setting can make another diverge (issue 9 saw SAKE at ESTAG's MD17 lr 5e-3
never train on aspirin, EGNN at 5e-3 blow up at epoch 166), so the tables' learning rate of each
model is chosen on validation windows, never on test windows. Each (model, lr) runs
``dynforecast train ... --set optim.lr=LR --json`` with the table's settings into the cache
(``$DYNFORECAST_CACHE/benchmarks/sweeps/...``; rerunning resumes or skips it) and the best
validation MSE of every run, the chosen lr per model and the commands go to
``benchmarks/results/<table>/<dataset>/<split>/lr_sweep.json`` (committed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite import MODEL_VARIANTS, TABLES, bench_cache, dynforecast_command

RESULTS = Path(__file__).resolve().parent / "results"


def _lookup(table_name: str, dataset_name: str, split_name: str):
    table = TABLES[table_name]
    dataset = next((d for d in table.datasets if d.name == dataset_name), None)
    split = next((s for s in table.splits if s.name == split_name), None)
    if dataset is None or split is None:
        raise SystemExit(
            f"error: {table_name} has data sets {[d.name for d in table.datasets]} and splits "
            f"{[s.name for s in table.splits]} (got {dataset_name!r}, {split_name!r})"
        )
    return table, dataset, split


def sweep_argv(table, data: Path, split, model: str, lr: float, seed: int, epochs: int, out: Path):
    """The ``dynforecast train`` argv of one sweep run: the table's settings, then the lr."""
    base_model, variant_settings = MODEL_VARIANTS.get(model, (model, ()))
    settings = [
        *table.settings,
        *split.settings,
        *table.model_settings.get(model, ()),
        *variant_settings,
        f"optim.lr={lr:g}",
    ]
    argv = [*dynforecast_command(), "train", str(data), "--model", base_model]
    argv += ["--seed", str(seed), "--epochs", str(epochs)]
    for setting in settings:
        argv += ["--set", setting]
    return [*argv, "--out", str(out), "--json", "--quiet"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("dataset")
    parser.add_argument("split")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--lrs", nargs="+", type=float, required=True)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    table, dataset, split = _lookup(args.table, args.dataset, args.split)
    epochs = args.epochs or table.epochs
    data = dataset.make(bench_cache() / "data", False)
    result_path = RESULTS / table.name / dataset.name / split.name / "lr_sweep.json"
    record = json.loads(result_path.read_text()) if result_path.exists() else {"runs": []}
    done = {(r["model"], r["lr"], r["epochs"], r["seed"]) for r in record["runs"]}
    for model in args.models:
        for lr in args.lrs:
            if (model, lr, epochs, args.seed) in done:
                continue
            out = (
                bench_cache()
                / "sweeps"
                / table.name
                / dataset.name
                / split.name
                / f"{model}-lr{lr:g}-seed{args.seed}-e{epochs}"
            )
            command = sweep_argv(table, data, split, model, lr, args.seed, epochs, out)
            started = time.perf_counter()
            finished = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if finished.returncode not in (0, 6):
                print(f"{model} lr {lr:g}: failed ({finished.stderr.strip()[-300:]})", flush=True)
                continue
            summary = json.loads(finished.stdout) if finished.returncode == 0 else {}
            run = {
                "model": model,
                "lr": lr,
                "epochs": epochs,
                "seed": args.seed,
                "best_val_mse": summary.get("best_val_mse"),
                "best_epoch": summary.get("best_epoch"),
                "exit_code": finished.returncode,
                "seconds": round(seconds, 1),
                "command": " ".join(command[2:]).replace(str(bench_cache()), "$CACHE"),
            }
            record["runs"].append(run)
            print(
                f"{model} lr {lr:g}: best val MSE {run['best_val_mse']} at epoch "
                f"{run['best_epoch']} ({seconds:.0f} s)",
                flush=True,
            )
            result_path.parent.mkdir(parents=True, exist_ok=True)
            record["chosen"] = _chosen(record["runs"])
            result_path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record.get("chosen", {})))
    return 0


def _chosen(runs: list[dict]) -> dict[str, float]:
    """Per model, the lr with the lowest best validation MSE (diverged runs never win)."""
    best: dict[str, tuple[float, float]] = {}
    for run in runs:
        value = run["best_val_mse"]
        if value is None:
            continue
        if run["model"] not in best or value < best[run["model"]][0]:
            best[run["model"]] = (value, run["lr"])
    return {model: lr for model, (_, lr) in best.items()}


if __name__ == "__main__":
    sys.exit(main())
