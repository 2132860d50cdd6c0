"""Run the benchmark tables cell by cell, caching each finished cell as one JSON file.

Run: ``python -m benchmarks.run TABLE [TABLE ...] [--quick] [--seeds 0 1 2] [--models estag ...]
[--datasets NAME ...] [--splits NAME ...] [--jobs 2] [--epochs N]``; TABLE is one of
benchmarks/suite.TABLES or ``all``. Then ``python -m benchmarks.tables`` writes the Markdown.

Each cell runs the commands a user runs, as subprocesses of the same interpreter:
``dynforecast train DATA --model M --seed S --epochs E --set ... --out RUN --json`` and
``dynforecast evaluate RUN/best.pt DATA --split test --json``. A finished cell is written to
``benchmarks/results/<table>/<dataset>/<split>/<model>-seed<S>.json`` (``results-quick`` with
``--quick``, which is not committed) and skipped by later runs, so the full tables can be filled
over several sessions; an interrupted cell resumes from its run directory's last.pt (train
resumes automatically). Data and run directories live in the cache, never in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.suite import (
    MODEL_VARIANTS,
    TABLES,
    DataSet,
    Split,
    Table,
    bench_cache,
    dynforecast_command,
)

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = Path(__file__).resolve().parent / "results-quick"


@dataclass(frozen=True)
class Cell:
    """One training run of a table: data set x split x model x seed."""

    table: Table
    dataset: DataSet
    split: Split
    model: str
    seed: int
    epochs: int
    quick: bool

    @property
    def key(self) -> str:
        return (
            f"{self.table.name}/{self.dataset.name}/{self.split.name}/{self.model}-seed{self.seed}"
        )

    def result_path(self) -> Path:
        return (QUICK_RESULTS if self.quick else RESULTS) / f"{self.key}.json"

    def run_dir(self) -> Path:
        folder = "runs-quick" if self.quick else "runs"
        return bench_cache() / folder / f"{self.key}-e{self.epochs}"

    def settings(self) -> list[str]:
        _, variant = MODEL_VARIANTS[self.model]
        extra = self.table.model_settings.get(self.model, ())
        return [*self.table.settings, *self.split.keys(self.quick), *variant, *extra]

    def train_argv(self, data: Path) -> list[str]:
        name, _ = MODEL_VARIANTS[self.model]
        argv = [*dynforecast_command(), "train", str(data), "--model", name]
        argv += ["--seed", str(self.seed), "--epochs", str(self.epochs)]
        for setting in self.settings():
            argv += ["--set", setting]
        return [*argv, "--out", str(self.run_dir()), "--json"]

    def evaluate_argv(self, data: Path) -> list[str]:
        checkpoint = self.run_dir() / "best.pt"
        return [*dynforecast_command(), "evaluate", str(checkpoint), str(data), "--json"]


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _json_command(argv: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"exit {result.returncode}: {tail[0]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cell(cell: Cell, data: Path) -> dict:
    """Train and evaluate one cell; write and return its result record."""
    started = time.perf_counter()
    training = _json_command(cell.train_argv(data))
    seconds = round(time.perf_counter() - started, 1)
    return _write_record(cell, data, training, seconds)


def refresh_evaluation(cell: Cell, data: Path) -> dict:
    """Evaluate a finished cell's best.pt again (e.g. after new baselines were added)."""
    record = json.loads(cell.result_path().read_text(encoding="utf-8"))
    return _write_record(cell, data, record["training"], record["seconds"])


def _write_record(cell: Cell, data: Path, training: dict, seconds: float) -> dict:
    evaluation = _json_command(cell.evaluate_argv(data))
    config_file = cell.run_dir() / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else None
    record = {
        "table": cell.table.name,
        "dataset": cell.dataset.name,
        "split": cell.split.name,
        "model": cell.model,
        "seed": cell.seed,
        "epochs": cell.epochs,
        "quick": cell.quick,
        "test_mse": evaluation["mse"],
        "baselines": evaluation["baselines"],
        "unit": evaluation.get("unit"),
        "windows": evaluation.get("windows"),
        "training": training,
        "config": config,
        "data_command": cell.dataset.command_for(cell.quick),
        "train_command": " ".join(_shown(cell.train_argv(data))),
        "seconds": seconds,
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = cell.result_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    scratch.replace(path)
    return record


def _shown(argv: list[str]) -> list[str]:
    """argv as a user would type it: `dynforecast` instead of the interpreter, quoted lists."""
    shown = ["dynforecast", *argv[3:]] if argv[1:3] == ["-m", "dynforecast"] else list(argv)
    return [f"'{a}'" if any(c in a for c in "[] ") else a for a in shown]


def plan(
    tables: list[str],
    *,
    quick: bool,
    seeds: list[int],
    models: list[str] | None,
    datasets: list[str] | None,
    splits: list[str] | None,
    epochs: int | None,
) -> list[Cell]:
    """Every cell of ``tables`` that matches the filters, in table order."""
    cells = []
    for name in tables:
        table = TABLES[name]
        budget = epochs or (table.quick_epochs if quick else table.epochs)
        chosen = [d for d in table.datasets if not datasets or d.name in datasets]
        if quick and not datasets:
            chosen = [table.datasets[table.quick_dataset]]
        for dataset in chosen:
            for split in table.splits:
                if splits and split.name not in splits:
                    continue
                for model in table.models:
                    if models and model not in models:
                        continue
                    for seed in seeds:
                        cells.append(Cell(table, dataset, split, model, seed, budget, quick))
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run benchmark tables, caching each cell.")
    parser.add_argument("tables", nargs="+", choices=[*TABLES, "all"])
    parser.add_argument("--quick", action="store_true", help="tiny data and budgets (minutes)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_VARIANTS))
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--splits", nargs="+")
    parser.add_argument("--epochs", type=int, help="override the table's epoch budget")
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once (one thread each)")
    parser.add_argument("--dry-run", action="store_true", help="list the cells still to run")
    parser.add_argument(
        "--refresh-evaluation",
        action="store_true",
        help="re-evaluate finished cells whose run directory is still in the cache",
    )
    args = parser.parse_args(argv)
    tables = list(TABLES) if "all" in args.tables else args.tables
    cells = plan(
        tables,
        quick=args.quick,
        seeds=args.seeds,
        models=args.models,
        datasets=args.datasets,
        splits=args.splits,
        epochs=args.epochs,
    )
    if args.refresh_evaluation:
        todo = [c for c in cells if c.result_path().exists() and (c.run_dir() / "best.pt").exists()]
    else:
        todo = [cell for cell in cells if not cell.result_path().exists()]
    print(
        f"{len(cells)} cells, {len(cells) - len(todo)} cached, {len(todo)} to run", file=sys.stderr
    )
    if args.dry_run:
        for cell in todo:
            print(cell.key)
        return 0
    data_dir = bench_cache() / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for cell in todo:  # data first, one at a time (generation is not thread-safe on one file)
        if cell.dataset.name not in paths:
            print(f"data {cell.dataset.name} ...", file=sys.stderr)
            paths[cell.dataset.name] = cell.dataset.make(data_dir, cell.quick)
    failures = 0

    def one(cell: Cell) -> None:
        nonlocal failures
        try:
            work = refresh_evaluation if args.refresh_evaluation else run_cell
            record = work(cell, paths[cell.dataset.name])
            print(
                f"{cell.key}: test MSE {record['test_mse']:.6g} ({record['seconds']} s)",
                file=sys.stderr,
            )
        except RuntimeError as error:
            failures += 1
            print(f"{cell.key}: FAILED {error}", file=sys.stderr)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, todo))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
