"""Trust horizons of ESTAG, SAKE and EGNN beside the baselines (issue 11's closing numbers).

Run: ``python -m benchmarks.horizon [--quick] [--epochs E] [--datasets nbody adk]``. Every step
is a command a user runs, as a subprocess of the same interpreter (as benchmarks/run.py does):

* nbody: ``dynforecast generate nbody --trajectories 300 --mode fast`` (the built-in set: seed
  43, streams 0-299, its default task "nbody-multiframe", T=10 D=1, target 10 frames on), then
  ``train --model M --epochs E`` for estag, sake and egnn with default settings; the built-in
  trajectories have 49 frames, so the rollouts run on 300 longer trajectories of the same
  generator at unseen stream indices (benchmarks/nbody_long.py, 149 frames, streams from
  12,000): ``evaluate RUN long.h5 --split all --rollout 100 --starts 300`` (100 frames = 10 model
  calls of 10 frames, 10 time units).
* adk: the AdK C-alpha file of the README's protein recipe (MDAnalysisTests ``adk_dims.dcd``),
  ``train`` with defaults for the three models and ``train --seeds 3`` for an ESTAG ensemble,
  ``evaluate RUN adk.h5 --rollout 8`` on the test split (the members one by one and together).
* ethanol, chignolin, motion: the benchmark tables' data sets (benchmarks/suite.py: the MD17
  ethanol GFN2-xTB trajectory with heavy atoms, the OpenMM chignolin C-alpha trajectory, the
  bvhtools clips), made in or taken from the tables' cache; ``train`` with defaults for the three
  models, ``evaluate RUN DATA --split test --rollout 20`` (each step one model call).

Each step's output (data file, run directory, evaluation JSON) lives in the cache
(``$DYNFORECAST_CACHE/horizon``) and a finished step is skipped, so an interrupted run resumes.
Results: ``benchmarks/results/horizon/horizon.json`` and one plot per data set under
``docs/img/`` (``--quick``: tiny data, 1 epoch, everything in ``$DYNFORECAST_CACHE/horizon-quick``,
nothing committed and never to be quoted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.run import machine
from benchmarks.suite import TABLES, bench_cache, dynforecast_command
from dynforecast.data.builtin import cache_dir

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "horizon" / "horizon.json"
IMAGES = REPO / "docs" / "img"
MODELS = ("estag", "sake", "egnn")
BASELINES = ("stay", "constant_velocity", "linear")
ENSEMBLE_MODEL = "estag"
ENSEMBLE_SEEDS = 3
#: Epochs per model (a CPU budget on a shared, loaded 2-core machine, not a convergence choice):
#: ESTAG the CLI's default 20, EGNN 10, SAKE (about 70x ESTAG's parameters, several times slower
#: per epoch) 5. ``--epochs`` sets one number for all.
EPOCHS = {"estag": 20, "sake": 5, "egnn": 10}


@dataclass(frozen=True)
class Scenario:
    """One data set: how its data is made, and how its rollouts are evaluated.

    ``make(directory, quick)`` writes the training file and returns (training file, rollout file).
    ``rollout`` holds the evaluate arguments after the data file (split, --rollout, --starts).
    """

    name: str
    make: Callable[[Path, bool], tuple[Path, Path]]
    rollout: tuple[str, ...]
    quick_rollout: tuple[str, ...]
    ensemble: bool
    data_command: str


def _cli(*args: str) -> list[str]:
    return [*dynforecast_command(), *args]


def _call(argv: list[str]) -> str:
    """Run ``argv`` with one thread per process; its stdout, or RuntimeError with stderr's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-3:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(argv[2:])}: exit {result.returncode}: {' | '.join(tail)}")
    return result.stdout


def _nbody(directory: Path, quick: bool) -> tuple[Path, Path]:
    train, long = directory / "nbody.h5", directory / "nbody-long.h5"
    count, long_count, frames = ("30", "20", "60") if quick else ("300", "300", "149")
    if not train.exists():
        _call(
            _cli("generate", "nbody", "-o", str(train), "--trajectories", count, "--mode", "fast")
        )
    if not long.exists():
        argv = [sys.executable, "-m", "benchmarks.nbody_long", "-o", str(long)]
        _call([*argv, "--trajectories", long_count, "--frames", frames])
    return train, long


def _adk(directory: Path, quick: bool) -> tuple[Path, Path]:
    import MDAnalysisTests.datafiles as files

    path = directory / "adk.h5"
    if not path.exists():
        argv = _cli("ingest", files.DCD, "--topology", files.PSF, "--select", "name CA")
        _call([*argv, "-o", str(path)])
    return path, path


def _table_data(table: str, dataset: str) -> Callable[[Path, bool], tuple[Path, Path]]:
    """A benchmark table's data set (made in, or taken from, the tables' shared cache)."""

    def make(directory: Path, quick: bool) -> tuple[Path, Path]:
        (found,) = (d for d in TABLES[table].datasets if d.name == dataset)
        shared = bench_cache() / "data"
        shared.mkdir(parents=True, exist_ok=True)
        path = found.make(shared, quick)
        return path, path

    return make


SCENARIOS = {
    "nbody": Scenario(
        "nbody",
        _nbody,
        ("--split", "all", "--rollout", "100", "--starts", "300"),
        ("--split", "all", "--rollout", "30", "--starts", "20"),
        ensemble=False,
        data_command="dynforecast generate nbody -o nbody.h5 --trajectories 300 --mode fast; "
        "python -m benchmarks.nbody_long -o nbody-long.h5 --trajectories 300 --frames 149",
    ),
    "adk": Scenario(
        "adk",
        _adk,
        ("--split", "test", "--rollout", "8"),
        ("--split", "test", "--rollout", "8"),
        ensemble=True,
        data_command='dynforecast ingest $D/adk_dims.dcd --topology $D/adk.psf --select "name CA" '
        "-o adk.h5",
    ),
    # The molecule, the long protein and the motion clips of the benchmark tables (issue 12,
    # item 6), each with train's defaults and rolled out on its test split.
    "ethanol": Scenario(
        "ethanol",
        _table_data("md17", "md17-ethanol"),
        ("--split", "test", "--rollout", "20"),
        ("--split", "test", "--rollout", "3"),
        ensemble=False,
        data_command=next(d for d in TABLES["md17"].datasets if d.name == "md17-ethanol").command,
    ),
    "chignolin": Scenario(
        "chignolin",
        _table_data("protein_md", "chignolin-ca"),
        ("--split", "test", "--rollout", "20"),
        ("--split", "test", "--rollout", "3"),
        ensemble=False,
        data_command=TABLES["protein_md"].datasets[0].command,
    ),
    "motion": Scenario(
        "motion",
        _table_data("motion", "bvhtools"),
        ("--split", "test", "--rollout", "20"),
        ("--split", "test", "--rollout", "1"),  # the quick clips' test blocks are 60 frames
        ensemble=False,
        data_command=TABLES["motion"].datasets[0].command,
    ),
}


def _json_step(output: Path, argv: list[str]) -> dict[str, Any]:
    """The JSON ``argv`` prints, cached in ``output`` (a finished step is not run again)."""
    if output.exists():
        return json.loads(output.read_text(encoding="utf-8"))
    started = time.perf_counter()
    record = json.loads(_call(argv).strip().splitlines()[-1])
    record["seconds"] = round(time.perf_counter() - started, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.with_suffix(".tmp")
    scratch.write_text(json.dumps(record) + "\n", encoding="utf-8")
    scratch.replace(output)
    return record


def run_scenario(
    scenario: Scenario, root: Path, epochs: dict[str, int], quick: bool
) -> dict[str, Any]:
    """Train (``epochs[model]``), evaluate and summarise one data set; steps cached in ``root``."""
    directory = root / scenario.name
    directory.mkdir(parents=True, exist_ok=True)
    train_file, rollout_file = scenario.make(directory, quick)
    rollout = scenario.quick_rollout if quick else scenario.rollout
    reports: dict[str, dict[str, Any]] = {}
    training: dict[str, Any] = {}
    for model in MODELS:
        e = epochs[model]
        seeds = ENSEMBLE_SEEDS if scenario.ensemble and model == ENSEMBLE_MODEL else 1
        run = directory / f"runs/{model}-e{e}"
        argv = _cli("train", str(train_file), "--model", model, "--epochs", str(e))
        argv += ["--seed", "0", "--out", str(run), "--quiet", "--json"]
        if seeds > 1:
            argv += ["--seeds", str(seeds)]
        training[model] = _json_step(directory / f"{model}-e{e}.train.json", argv)
        member = run / "seed-0" if seeds > 1 else run
        evaluate = _cli("evaluate", str(member), str(rollout_file), *rollout, "--json", "--quiet")
        reports[model] = _json_step(directory / f"{model}-e{e}.rollout.json", evaluate)
        if seeds > 1:
            members = [str(run / f"seed-{s}") for s in range(seeds)]
            evaluate = _cli("evaluate", *members, str(rollout_file), *rollout, "--json", "--quiet")
            reports["ensemble"] = _json_step(
                directory / f"{model}-x{seeds}-e{e}.rollout.json", evaluate
            )
    return summarise(scenario, reports, training, epochs)


def _at(values: list[float | None], step: int) -> float | None:
    return values[step - 1]


def summarise(
    scenario: Scenario,
    reports: dict[str, dict[str, Any]],
    training: dict[str, Any],
    epochs: dict[str, int],
) -> dict[str, Any]:
    """The numbers the README quotes, from the rollout reports of one data set.

    Per model: trust horizon (steps, time), first step it stops beating each baseline, median
    MSE at step 1 and step K; per baseline (from the first model's report: every model has the
    same window, so the same starts): the same medians and its own trust horizon; the ensemble's
    calibration per step (correlation of spread with error, fraction inside mean +- 2 sd).
    """
    first = reports[MODELS[0]]
    steps = first["steps"]
    models = {}
    for name, report in reports.items():
        median = report["metrics"]["model"]["median_mse"]
        models[name] = {
            "trust_steps": report["trust_horizon"]["model"]["steps"],
            "trust_time": report["trust_horizon"]["model"]["time"],
            "stops_beating": report["stops_beating"],
            "step1_median_mse": _at(median, 1),
            "stepK_median_mse": _at(median, steps),
            "epochs": epochs[ENSEMBLE_MODEL if name == "ensemble" else name],
            "seconds_train": training.get(name, {}).get("seconds"),
            "threshold": report["threshold"],
        }
    baselines = {}
    for name in BASELINES:
        if name not in first["metrics"]:
            continue
        median = first["metrics"][name]["median_mse"]
        baselines[name] = {
            "trust_steps": first["trust_horizon"][name]["steps"],
            "trust_time": first["trust_horizon"][name]["time"],
            "step1_median_mse": _at(median, 1),
            "stepK_median_mse": _at(median, steps),
        }
    ensemble = reports.get("ensemble")
    return {
        "data_command": scenario.data_command,
        "rollout": {
            "data": first["data"],
            "split": first["split"],
            "starts": first["starts"],
            "steps": steps,
            "step_time": first["step_time"],
            "time_unit": first["time_unit"],
            "unit": first["unit"],
            "window": first["window"],
            "threshold": first["threshold"],
            "threshold_source": first["threshold_source"],
        },
        "models": models,
        "baselines": baselines,
        "ensemble": None
        if ensemble is None
        else {
            "members": ensemble["members"],
            "model": ensemble["model"],
            **ensemble["calibration"],
        },
        "curves": {
            **{n: r["metrics"]["model"]["median_mse"] for n, r in reports.items()},
            **{n: first["metrics"][n]["median_mse"] for n in baselines},
        },
    }


#: Curve styles: models solid in distinct colours, baselines in grey / dashed.
CURVE_STYLE = {
    "estag": ("C0", "-"),
    "sake": ("C3", "-"),
    "egnn": ("C4", "-"),
    "ensemble": ("C0", (0, (1, 1))),
    "stay": ("C7", ":"),
    "constant_velocity": ("C1", "--"),
    "linear": ("C2", "-."),
}


def plot_horizons(summary: dict[str, Any], title: str, path: Path) -> None:
    """Median MSE versus forecast time, every model and baseline of ``summary``, to a PNG.

    Log y axis in the data's unit squared, forecast time on the x axis (steps on the top axis),
    the trust threshold dotted. Written atomically (`dynforecast.io.atomic.atomic_output`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from dynforecast.io.atomic import atomic_output
    from dynforecast.plot import _values

    rollout = summary["rollout"]
    steps = np.arange(1, rollout["steps"] + 1)
    dt = rollout["step_time"]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    for name, curve in summary["curves"].items():
        colour, line = CURVE_STYLE[name]
        horizon = summary["models"].get(name, {}).get("trust_steps")
        label = name.replace("_", " ") if name != "ensemble" else "estag x3 ensemble"
        if horizon is not None:
            label += f" (trust {horizon})"
        axes.plot(steps * dt, _values(curve), linestyle=line, color=colour, label=label)
    axes.axhline(rollout["threshold"], color="k", linestyle=":", linewidth=0.8, label="threshold")
    unit = rollout["unit"]
    time_unit = rollout["time_unit"]
    axes.set_yscale("log")
    axes.set_xlabel(f"forecast time ({time_unit if time_unit != '1' else 'dimensionless'})")
    axes.set_ylabel("median MSE" + (f" ({unit})" if unit != "1" else " (dimensionless)"))
    axes.set_title(f"{title}: {rollout['starts']} rollouts", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    top = axes.secondary_xaxis("top", functions=(lambda t: t / dt, lambda k: k * dt))
    top.set_xlabel("steps")
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as scratch:
        figure.savefig(scratch, format="png")
    plt.close(figure)


TITLES = {
    "nbody": "built-in N-body (unseen 149-frame trajectories)",
    "adk": "AdK C-alpha, test",
    "ethanol": "ethanol heavy atoms (GFN2-xTB, 500 K), test",
    "chignolin": "chignolin C-alpha (OpenMM, 300 K), test",
    "motion": "bvhtools motion-capture clips, test clip",
}
IMAGE_NAMES = {name: f"{name}-horizons.png" for name in TITLES}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, cache only")
    parser.add_argument("--epochs", type=int, default=None, help="all models (default EPOCHS)")
    parser.add_argument("--datasets", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args(argv)
    single = args.epochs or (1 if args.quick else None)
    epochs = {m: single for m in MODELS} if single else dict(EPOCHS)
    root = cache_dir() / ("horizon-quick" if args.quick else "horizon")
    results_path = root / "horizon.json" if args.quick else RESULTS
    images = root if args.quick else IMAGES
    results: dict[str, Any] = {}
    for name in args.datasets:
        summary = run_scenario(SCENARIOS[name], root, epochs, args.quick)
        summary["machine"] = machine()
        summary["quick"] = args.quick
        results[name] = summary
        plot_horizons(summary, TITLES[name], images / IMAGE_NAMES[name])
        print(
            f"{name}: "
            + ", ".join(f"{m} {s['trust_steps']}" for m, s in summary["models"].items())
            + f" trust steps (threshold {summary['rollout']['threshold']:.4g})",
            file=sys.stderr,
        )
    if results_path.exists():  # keep the other data sets' results (re-read: runs may overlap)
        results = {**json.loads(results_path.read_text(encoding="utf-8")), **results}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
