"""A real `dynforecast train` process stopped by SIGTERM exits 75 and resumes exactly.

This is what a SLURM job sees: the signal arrives, the process writes last.pt and exits with
EX_TEMPFAIL (75); the requeued job runs the same command and continues at the same batch, so its
metrics equal those of a run that was never stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import write_h5md
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import resolve_config
from dynforecast.train.metrics import read_metrics_csv
from dynforecast.train.run import train

CLI = [sys.executable, "-c", "from dynforecast.cli import app; app()"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_exits_75_and_the_rerun_matches_an_uninterrupted_run(tmp_path):
    data = tmp_path / "nbody.h5"
    write_h5md(data, nbody_trajectories(simulate_nbody(20, seed=43, mode="fast")))
    reference = train(
        data, resolve_config(None, [], {"optim.epochs": 3, "seed": 1}), tmp_path / "ref"
    )

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*CLI, "train", str(data), "--out", str(run), "--seed", "1"]
    process = subprocess.Popen(
        [*command, "--epochs", "50"], stderr=subprocess.PIPE, text=True, env=env
    )
    seen = []
    for line in process.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith("epoch 1/50 "):
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()  # type: ignore[union-attr]
    assert process.wait(timeout=60) == 75, "".join(seen) + rest
    last_line = rest.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {run}: stopped by SIGTERM ")
    assert last_line.endswith(
        f"checkpoint {run / 'last.pt'} written, run the same command again to resume"
    )
    stopped = load_checkpoint(run / "last.pt")
    assert stopped["epoch"] < 3 and not stopped["finished"]

    resumed = subprocess.run(
        [*command, "--epochs", "3"], capture_output=True, text=True, env=env, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = read_metrics_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    expected = read_metrics_csv(reference.run_dir / "metrics.csv")
    for row, wanted in zip(rows, expected, strict=True):
        assert (row["train_mse"], row["val_mse"], row["lr"]) == (
            wanted["train_mse"],
            wanted["val_mse"],
            wanted["lr"],
        )
