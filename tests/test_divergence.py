"""Issue 9 item 3: the divergence guard (train/divergence.py) rolls an exploded run back.

The explosion is injected through the CLI run: Adam's step is wrapped so that one given step
multiplies every weight by a factor (a finite blow-up: the loss never becomes NaN, as in the
issue's EGNN run) or by 30 (NaN/inf). The guard must warn, load best.pt's weights, lower the
learning rate, record the event in metrics.csv and keep training; with it off the run stays
diverged.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from data_kinds import make_kind
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.train.config import OptimSection
from dynforecast.train.divergence import DivergenceGuard

runner = CliRunner()
#: The clip trains 11 optimiser steps per epoch: step 35 lies in epoch 4.
BLOW_UP_STEP = 35


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = make_kind("clip", tmp_path_factory.mktemp("clip"))
    assert path is not None
    return path


@pytest.fixture
def blow_up(monkeypatch):
    """Multiply every weight by ``factor`` right after optimiser step `BLOW_UP_STEP`."""

    def install(factor: float) -> None:
        original, calls = torch.optim.Adam.step, [0]

        def step(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            calls[0] += 1
            if calls[0] == BLOW_UP_STEP:
                with torch.no_grad():
                    for group in self.param_groups:
                        for parameter in group["params"]:
                            parameter.mul_(factor)
            return out

        monkeypatch.setattr(torch.optim.Adam, "step", step)

    return install


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("factor", [4.0, 30.0], ids=["finite", "nan"])
def test_an_explosion_rolls_back_to_the_best_weights_with_a_lower_lr(
    clip, blow_up, factor, tmp_path
):
    blow_up(factor)
    run = tmp_path / "run"
    result = invoke("train", clip, "--epochs", 7, "--out", run)
    assert result.exit_code == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "diverged" in line)
    assert warning.startswith("warning: training diverged in epoch 4 (")
    assert f"back to {run / 'best.pt'} (epoch 3) with lr 0.0005 -> 5e-05" in warning
    rows = _rows(run)
    assert [row["event"] for row in rows] == [""] * 3 + [
        "rollback to epoch 3, lr 0.0005 -> 5e-05"
    ] + [""] * 3
    exploded = float(rows[3]["val_mse"])
    assert not math.isfinite(exploded) or exploded > 100 * float(rows[2]["val_mse"])
    # training went on from epoch 3's weights at a tenth of the rate: back at its level at once
    assert [float(row["lr"]) for row in rows[4:]] == [5e-05] * 3
    assert all(float(row["val_mse"]) < 1.5 * float(rows[2]["val_mse"]) for row in rows[4:])
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["rollbacks"] == 1
    assert state["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(5e-05)


def test_the_rollback_continues_from_exactly_the_best_checkpoint(
    clip, blow_up, tmp_path, monkeypatch
):
    """Right after the rollback the model holds best.pt's weights, every tensor equal."""
    from dynforecast.train import divergence

    loaded = {}
    original = divergence.DivergenceGuard.roll_back

    def spy(self, best_path, model, *rest):
        out = original(self, best_path, model, *rest)
        best = torch.load(best_path, weights_only=False)["model_state"]
        loaded["same"] = all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
        return out

    monkeypatch.setattr(divergence.DivergenceGuard, "roll_back", spy)
    blow_up(4.0)
    result = invoke("train", clip, "--epochs", 5, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert loaded == {"same": True}


def test_a_rolled_back_run_resumes_with_its_lower_lr_and_history(clip, blow_up, tmp_path):
    blow_up(4.0)
    run = tmp_path / "run"
    assert invoke("train", clip, "--epochs", 5, "--out", run).exit_code == 0
    result = invoke("train", clip, "--epochs", 7, "--out", run)
    assert result.exit_code == 0, result.stderr
    rows = _rows(run)
    assert [row["epoch"] for row in rows] == [str(e) for e in range(1, 8)]
    assert rows[3]["event"].startswith("rollback to epoch 3")
    assert [float(row["lr"]) for row in rows[4:]] == [5e-05] * 3


def test_with_the_guard_off_the_run_stays_diverged(clip, blow_up, tmp_path):
    blow_up(4.0)
    run = tmp_path / "run"
    result = invoke(
        "train", clip, "--epochs", 6, "--out", run, "--set", "optim.divergence_factor=none"
    )
    assert result.exit_code == 0, result.stderr
    assert "diverged" not in result.stderr
    rows = _rows(run)
    assert all(row["event"] == "" for row in rows)
    assert float(rows[-1]["val_mse"]) > 100 * float(rows[2]["val_mse"])


def test_after_max_rollbacks_the_next_divergence_stops_training(clip, blow_up, tmp_path):
    blow_up(4.0)
    run = tmp_path / "run"
    result = invoke("train", clip, "--epochs", 7, "--out", run, "--set", "optim.max_rollbacks=0")
    assert result.exit_code == 0, result.stderr
    assert "stopped after 0 rollbacks (optim.max_rollbacks)" in result.stderr
    rows = _rows(run)
    assert len(rows) == 4 and rows[-1]["event"] == "diverged; stopped after 0 rollbacks"
    assert torch.load(run / "best.pt", weights_only=False)["epoch"] == 3


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("optim.divergence_factor=1", "expected a number above 1, or none"),
        ("optim.rollback_lr_factor=0", "expected a number in (0, 1]"),
        ("optim.max_rollbacks=-1", "expected 0 or more"),
    ],
)
def test_bad_guard_keys_are_refused(key, message, tmp_path):
    result = invoke("train", "--set", key, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_threshold_is_the_factor_times_the_lower_of_best_and_stay():
    guard = DivergenceGuard(OptimSection(), {"stay": 2.0, "constant_velocity": 1.0})
    assert guard.threshold(0.5) == (50.0, "100 x the best validation MSE 0.5")
    assert guard.threshold(math.inf) == (200.0, '100 x "stay" 2')
    assert not guard.check(1.0, 199.0, math.inf).diverged
    assert guard.check(1.0, 201.0, math.inf).diverged  # far above stay before any best
    assert guard.check(float("nan"), None, 0.5).reason == "training MSE nan"
    off = DivergenceGuard(OptimSection(divergence_factor=None), {"stay": 2.0})
    assert not off.check(float("nan"), float("inf"), 0.5).diverged
