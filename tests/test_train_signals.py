"""A real `dynforecast train` process stopped by SIGTERM exits 75 and resumes exactly.

This is what a SLURM job sees: the signal arrives, the process writes last.pt, prints the exact
command that resumes and exits with EX_TEMPFAIL (75). Here the run has no ``--out``: its default
directory is stable, so the printed command and the same command with a larger ``--epochs`` both
continue it, to the metrics of a run that was never stopped.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import write_h5md
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import resolve_config
from dynforecast.train.metrics import read_metrics_csv
from dynforecast.train.run import train

CLI = [sys.executable, "-c", "from dynforecast.cli import app; app()"]
SMALL = ["optim.batch_size=8", "model.hidden_dim=8", "model.num_layers=1"]
OPTIONS = ["--model", "egnn", "--seed", "1", *(w for s in SMALL for w in ("--set", s))]


def _metrics(path: Path) -> list[tuple[str, str, str]]:
    return [(r["train_mse"], r["val_mse"], r["lr"]) for r in read_metrics_csv(path)]


@pytest.mark.slow  # three processes (~40 s on a loaded 2-core machine); fast: test_cli_runs.py
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_prints_the_resume_command_and_the_same_command_continues(tmp_path):
    data = tmp_path / "nbody.h5"
    write_h5md(data, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    config = resolve_config(None, SMALL, {"optim.epochs": 4, "seed": 1, "model.name": "egnn"})
    reference = _metrics(train(data, config, tmp_path / "ref").run_dir / "metrics.csv")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["train", "nbody.h5", *OPTIONS, "--epochs", "3"]
    process = subprocess.Popen(
        [*CLI, *command], stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    seen = []
    for line in process.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith("epoch 1/3 "):
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()  # type: ignore[union-attr]
    assert process.wait(timeout=60) == 75, "".join(seen) + rest
    run_line = next(line for line in seen if line.startswith("run directory "))
    run = Path(run_line.split()[-1])
    assert run.parent == Path("runs") and run.name.startswith("egnn-")
    last_line = rest.strip().splitlines()[-1]
    where = last_line.removeprefix(f"error: {run}: stopped by SIGTERM ").split(";")[0]
    assert where == "after epoch 1" or where.startswith("in epoch 2 after batch "), last_line
    assert f"; checkpoint {run / 'last.pt'} written; resume with: dynforecast train " in last_line
    printed = shlex.split(last_line.split("; resume with: ")[1])
    assert printed[:3] == ["dynforecast", "train", "nbody.h5"]
    assert printed[-2:] == ["--out", str(run)]
    pairs = lambda words: sorted(zip(words[0::2], words[1::2], strict=True))  # noqa: E731
    assert pairs(printed[3:-2]) == pairs(command[2:])  # the user's options, in any order
    stopped = load_checkpoint(tmp_path / run / "last.pt")
    assert stopped["epoch"] == 1 and not stopped["finished"]

    resumed = subprocess.run(
        [*CLI, *printed[1:]],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run / 'last.pt'}: 1 epoch done" in resumed.stderr
    assert _metrics(tmp_path / run / "metrics.csv") == reference[:3]

    # The same command, no --out, a larger --epochs: the finished run continues to epoch 4.
    extended = subprocess.run(
        [*CLI, *command[:-1], "4"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.startswith(f"{run}: egnn, 4 epochs, ")
    assert _metrics(tmp_path / run / "metrics.csv") == reference
