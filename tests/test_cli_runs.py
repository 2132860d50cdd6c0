"""Runs through the CLI: the printed resume command, the stable default run directory, the lock,
another model in a run directory, --print-config and config.json as --config, `models`, `report`
(and --plot), and run directories given to evaluate / predict / info."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.errors import OutputError
from dynforecast.io.h5md import write_h5md
from dynforecast.models.base import model_names
from dynforecast.models.catalogue import UNDESCRIBED
from dynforecast.train import lock as lock_module
from dynforecast.train.config import resolve_config
from dynforecast.train.lock import RunLock
from dynforecast.train.metrics import read_metrics_csv
from dynforecast.train.report import curves_figure, describe_run
from dynforecast.train.run import resolve_for_data

runner = CliRunner()
SMALL = ["--model", "egnn", "--seed", "1", "--set", "model.hidden_dim=8", "--set",
         "model.num_layers=1", "--set", "optim.batch_size=8"]  # fmt: skip


def invoke(*args: object, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = root / "nbody.h5"
    write_h5md(data, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    run = root / "run"
    result = invoke("train", data, *SMALL, "--epochs", 2, "--out", run)
    assert result.exit_code == 0, result.stderr
    return data, run


def _metrics(path: Path) -> list[tuple[str, str, str]]:
    return [(r["train_mse"], r["val_mse"], r["lr"]) for r in read_metrics_csv(path)]


def sigterm_after_first_epoch(monkeypatch):
    """Make training send itself SIGTERM once epoch 1's metrics are written; returns the loop
    module and its real metrics writer, for the test to put back."""
    import dynforecast.train.loop as loop

    real_write = loop.write_metrics_csv

    def write_then_sigterm(rows, path):
        real_write(rows, path)
        if len(rows) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "write_metrics_csv", write_then_sigterm)
    return loop, real_write


def test_a_stop_prints_the_resume_command_and_the_same_command_continues(
    workspace, tmp_path, monkeypatch
):
    data, reference_run = workspace
    monkeypatch.chdir(tmp_path)
    loop, real_write = sigterm_after_first_epoch(monkeypatch)
    command = ["train", str(data), *SMALL, "--epochs", "2"]
    stopped = invoke(*command)
    assert stopped.exit_code == 75, stopped.stderr
    run = Path(re.search(r"^run directory (\S+)$", stopped.stderr, re.M).group(1))
    assert run.parent == Path("runs") and re.fullmatch(r"egnn-[0-9a-f]{12}", run.name)
    printed = stopped.stderr.strip().splitlines()[-1]
    assert printed == (
        f"error: {run}: stopped by SIGTERM after epoch 1; checkpoint {run / 'last.pt'} written; "
        f"resume with: dynforecast train {shlex.quote(str(data))} --model egnn --set "
        "model.hidden_dim=8 --set model.num_layers=1 --set optim.batch_size=8 --epochs 2 "
        f"--seed 1 --out {run}"
    )
    monkeypatch.setattr(loop, "write_metrics_csv", real_write)
    resumed = invoke(*shlex.split(printed.split("resume with: ")[1])[1:])
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming {run / 'last.pt'}: 1 epoch done" in resumed.stderr
    assert _metrics(run / "metrics.csv") == _metrics(reference_run / "metrics.csv")
    again = invoke(*command)  # the same command finds the same directory: nothing left to do
    assert again.exit_code == 0, again.stderr
    assert "2 epochs done; nothing to train (give --epochs above 2 to continue)" in again.stderr
    assert again.stdout.startswith(f"{run}: egnn, 2 epochs, ")
    assert "(baselines on val: stay " in again.stdout


def test_seed_members_without_out_share_a_stable_directory_and_a_stop_names_it(
    workspace, tmp_path, monkeypatch
):
    """`train --seeds 2` without --out: runs/<model>-seeds-<digest>/seed-<s>; a stop in a member
    prints the command that resumes all members, and the same command again trains nothing."""
    data, _ = workspace
    monkeypatch.chdir(tmp_path)
    loop, real_write = sigterm_after_first_epoch(monkeypatch)
    command = ["train", str(data), *SMALL, "--epochs", "2", "--seeds", "2"]
    stopped = invoke(*command)
    assert stopped.exit_code == 75, stopped.stderr
    base = Path(re.search(r"resume with: .* --out (\S+)$", stopped.stderr, re.M).group(1))
    assert base.parent == Path("runs") and re.fullmatch(r"egnn-seeds-[0-9a-f]{12}", base.name)
    assert (base / "seed-1" / "last.pt").exists() and not (base / "seed-2").exists()
    monkeypatch.setattr(loop, "write_metrics_csv", real_write)
    printed = stopped.stderr.strip().splitlines()[-1]
    resumed = invoke(*shlex.split(printed.split("resume with: ")[1])[1:])
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout.count("egnn, 2 epochs") == 2
    assert f"resuming {base / 'seed-1' / 'last.pt'}: 1 epoch done" in resumed.stderr
    assert sorted(p.name for p in base.iterdir()) == ["seed-1", "seed-2"]
    again = invoke(*command)  # the same command without --out finds the same members
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("nothing to train") == 2
    assert sorted(p.name for p in Path("runs").iterdir()) == [base.name]


def test_a_live_holder_is_refused_and_a_crashed_one_is_not(workspace, tmp_path):
    data, _ = workspace
    run = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from dynforecast.train.lock import RunLock; RunLock(Path(sys.argv[1])).__enter__(); "
         "print('locked', flush=True); time.sleep(120)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "locked\n"  # type: ignore[union-attr]
        refused = invoke("train", data, *SMALL, "--epochs", 1, "--out", run)
        assert refused.exit_code == 4
        assert re.fullmatch(
            rf"error: {re.escape(str(run))}: in use by another training \(pid {holder.pid} on "
            rf"{re.escape(socket.gethostname())}, since [0-9: -]+\); wait for it to end or stop "
            r"it, or give another --out\n",
            refused.stderr,
        ), refused.stderr
        assert not (run / "last.pt").exists()
    finally:
        holder.kill()  # a crash: no cleanup, the record stays in .lock
        holder.wait()
    assert (run / ".lock").read_text().split()[0] == str(holder.pid)
    result = invoke("train", data, *SMALL, "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr


def test_without_file_locks_the_record_decides(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "lockf", no_locks)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(f"{sleeper.pid} {socket.gethostname()} 0\n")
        with pytest.raises(OutputError, match=rf"in use by another training \(pid {sleeper.pid}"):
            RunLock(tmp_path).__enter__()
    finally:
        sleeper.kill()
        sleeper.wait()
    with RunLock(tmp_path):  # its process is gone: the record is stale
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    assert (tmp_path / ".lock").read_text() == ""


def test_another_model_in_a_run_directory_is_named(workspace):
    data, run = workspace
    result = invoke("train", data, "--model", "sake", "--epochs", 2, "--out", run)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {run}: holds a run of model 'egnn', not 'sake'; give another --out for a new "
        "sake run\n"
    )


def test_print_config_round_trips_and_a_runs_config_json_is_accepted(workspace, tmp_path):
    data, run = workspace
    printed = invoke("train", data, *SMALL, "--print-config")
    assert printed.exit_code == 0, printed.stderr
    first = tmp_path / "first.toml"
    first.write_text(printed.stdout)
    values = tomllib.loads(printed.stdout)
    assert values["data"]["graph"]["kind"] == "all_pairs"  # "auto" resolved
    assert values["optim"]["ema_decay"] == "none" and values["model"]["hidden_dim"] == 8
    assert printed.stdout.count("\n# ") >= 6  # a comment per section
    again = invoke("train", data, "--config", first, "--print-config")
    assert again.exit_code == 0, again.stderr
    assert tomllib.loads(again.stdout) == values
    given = resolve_config(None, SMALL[5::2], {"model.name": "egnn", "seed": 1})
    assert resolve_for_data(data, resolve_config(first)) == resolve_for_data(data, given)
    from_run = invoke("train", data, "--config", run / "config.json", "--print-config")
    assert from_run.exit_code == 0, from_run.stderr
    saved = json.loads((run / "config.json").read_text())["train_config"]
    assert tomllib.loads(from_run.stdout)["model"]["hidden_dim"] == saved["model"]["hidden_dim"]
    assert tomllib.loads(from_run.stdout)["optim"] == {
        k: "none" if v is None else v for k, v in saved["optim"].items()
    }


def test_train_help_says_where_the_keys_are_listed():
    result = invoke("train", "--help")
    assert "--print-config" in result.stdout and "dynforecast models" in result.stdout


def test_models_json_lists_every_registered_model_with_its_hyperparameters():
    import inspect

    from dynforecast.models.base import _REGISTRY

    result = invoke("models", "--json")
    assert result.exit_code == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)["models"]}
    assert sorted(listed) == model_names()
    for name, entry in listed.items():
        signature = inspect.signature(_REGISTRY[name].__init__).parameters
        assert [h["name"] for h in entry["hyperparameters"]] == [
            p for p in signature if p != "self"
        ]
        for h in entry["hyperparameters"]:
            default = signature[h["name"]].default
            assert h["default"] == (list(default) if isinstance(default, tuple) else default)
            assert h["meaning"] != UNDESCRIBED and h["type"]
    sake = {h["name"]: h for h in listed["sake"]["hyperparameters"]}
    assert sake["cutoff"]["type"] == "float or none" and sake["cutoff"]["default"] is None
    text = invoke("models").stdout
    assert "  model.hidden_dim (int, default 16): width H of node and edge features" in text


def test_evaluate_predict_and_info_accept_a_run_directory(workspace, tmp_path):
    data, run = workspace
    by_dir = invoke("evaluate", run, data, "--json")
    by_file = invoke("evaluate", run / "best.pt", data, "--json")
    assert by_dir.exit_code == 0, by_dir.stderr
    drop = lambda out: {k: v for k, v in json.loads(out).items() if k != "checkpoint"}  # noqa: E731
    assert drop(by_dir.stdout) == drop(by_file.stdout)
    forecast = tmp_path / "forecast.h5"
    predicted = invoke("predict", data, "--checkpoint", run, "--steps", 2, "-o", forecast)
    assert predicted.exit_code == 0, predicted.stderr
    info = invoke("info", run)
    assert info.exit_code == 0, info.stderr
    assert info.stdout.startswith(f"run        {run}\ndata       {data} (sha256 ")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = invoke("evaluate", empty, data)
    assert missing.exit_code == 3
    assert missing.stderr == f"error: {empty}: not a run directory (no best.pt or last.pt in it)\n"


def test_report_summarises_and_plots_the_curves_of_metrics_csv(workspace, tmp_path):
    _, run = workspace
    result = invoke("report", run, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == "egnn" and summary["epochs"] == 2 and summary["state"] == "finished"
    assert summary["parameters"] > 0 and summary["best_epoch"] in (1, 2)
    assert summary["changed_from_defaults"]["model.hidden_dim"] == {"value": 8, "default": 64}
    assert "data.graph.kind" not in summary["changed_from_defaults"]  # resolved from "auto"
    png = tmp_path / "curves.png"
    plotted = invoke("report", run, "--plot", png)
    assert plotted.exit_code == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert invoke("report", run, "--plot", png).exit_code == 4  # exists: --overwrite replaces it
    lines = {line.get_label(): line for line in curves_figure(describe_run(run)).axes[0].lines}
    rows = read_metrics_csv(run / "metrics.csv")
    np.testing.assert_allclose(lines["train"].get_ydata(), [float(r["train_mse"]) for r in rows])
    np.testing.assert_allclose(lines["validation"].get_ydata(), [float(r["val_mse"]) for r in rows])
    baselines = json.loads((run / "config.json").read_text())["baselines_val_mse"]
    assert lines["stay (val)"].get_ydata()[0] == pytest.approx(baselines["stay"])


def test_an_epochs_extension_is_what_report_and_config_json_show(workspace, tmp_path):
    data, reference_run = workspace
    run = tmp_path / "extended"
    assert invoke("train", data, *SMALL, "--epochs", 1, "--out", run).exit_code == 0
    extended = invoke("train", data, *SMALL, "--epochs", 2, "--out", run)
    assert extended.exit_code == 0, extended.stderr
    assert f"resuming {run / 'last.pt'}: 1 epoch done" in extended.stderr
    assert _metrics(run / "metrics.csv") == _metrics(reference_run / "metrics.csv")
    report = invoke("report", run)
    assert report.exit_code == 0, report.stderr
    assert "epochs     2 of 2 (finished)" in report.stdout
    assert re.search(r"optim\.epochs\s+= 2 \(default 20\)", report.stdout)
    meta = json.loads((run / "config.json").read_text())
    assert meta["train_config"]["optim"]["epochs"] == 2
    again = invoke("train", data, "--config", run / "config.json", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.stderr
    assert _metrics(tmp_path / "again" / "metrics.csv") == _metrics(run / "metrics.csv")
