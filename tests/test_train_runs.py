"""Run-level behaviour of the training loop: validation cadence, weight averaging (EMA), a larger
epoch budget continuing a finished run, and Ctrl-C handled like SIGTERM."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from train_fakes import DriftDataset, DriftModel, splits_of

from dynforecast.errors import Interrupted
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import config_from_dict
from dynforecast.train.ema import WeightAverage
from dynforecast.train.loop import fit
from dynforecast.train.metrics import evaluate_errors, read_metrics_csv

CPU = torch.device("cpu")


def _config(**optim):
    values = {"optim": {"lr": 0.05, "epochs": 6, "batch_size": 7, **optim}, "seed": 3}
    return config_from_dict(values)


def _fit(run_dir, config, resume=None, hook=None):
    dataset = DriftDataset()
    torch.manual_seed(0)
    model = DriftModel()
    result = fit(
        model,
        dataset,
        splits_of(dataset),
        config,
        run_dir,
        n_systems=len(dataset.systems),
        device=CPU,
        metadata={"train_config": config.to_dict()},
        resume=resume,
        on_epoch_end=hook,
    )
    return model, result


def _without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _stop_after(epoch_to_stop, sig=signal.SIGTERM):
    def hook(epoch, row):
        if epoch == epoch_to_stop:
            os.kill(os.getpid(), sig)

    return hook


def test_val_every_validates_every_nth_and_the_last_epoch(tmp_path):
    _, result = _fit(tmp_path, _config(epochs=5, val_every=2))
    assert [row["validated"] for row in result.history] == [False, True, False, True, True]
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["val_mse"] for r in rows][0::2][:2] == ["", ""]  # epochs 1 and 3: no validation
    assert [r["validated"] for r in rows] == ["False", "True", "False", "True", "True"]
    assert all(float(rows[i]["val_mse"]) > 0 for i in (1, 3, 4))
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] in (2, 4, 5)


def test_early_stopping_counts_validations_not_epochs(tmp_path):
    # lr ~0: only the first validation (epoch 2) improves; 2 more validations (4, 6) end the run.
    config = _config(lr=1e-30, early_stopping_patience=2, epochs=20, val_every=2)
    _, result = _fit(tmp_path, config)
    assert result.epochs_completed == 6 and result.stopped_early
    assert result.best_epoch == 2


def test_a_larger_epoch_budget_continues_a_finished_run(tmp_path):
    _, reference = _fit(tmp_path / "ref", _config(epochs=4))
    run = tmp_path / "run"
    _fit(run, _config(epochs=2))
    _, extended = _fit(run, _config(epochs=4), resume=load_checkpoint(run / "last.pt"))
    assert _without_seconds(extended.history) == _without_seconds(reference.history)
    assert extended.epochs_completed == 4


def test_an_early_stopped_run_stays_stopped_with_more_epochs(tmp_path):
    config = _config(lr=1e-30, early_stopping_patience=1, epochs=10)
    _, first = _fit(tmp_path, config)
    assert first.stopped_early and first.epochs_completed == 2
    _, again = _fit(
        tmp_path, _config(lr=1e-30, early_stopping_patience=1, epochs=20),
        resume=load_checkpoint(tmp_path / "last.pt"),
    )  # fmt: skip
    assert again.epochs_completed == 2


def test_extending_a_cosine_schedule_restarts_it_on_the_new_length(tmp_path):
    _fit(tmp_path, _config(schedule="cosine", epochs=2))
    _, extended = _fit(
        tmp_path, _config(schedule="cosine", epochs=4), resume=load_checkpoint(tmp_path / "last.pt")
    )
    lrs = [row["lr"] for row in extended.history]
    assert lrs[2] == pytest.approx(0.05 * (1 + math.cos(math.pi * 2 / 4)) / 2)
    assert lrs[3] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 4)) / 2)


def test_ctrl_c_checkpoints_exits_130_and_resumes_exactly(tmp_path):
    # The handler found at the start (SIG_IGN when the suite runs in a background job of a
    # non-interactive shell) is what training must put back.
    handler_before = signal.getsignal(signal.SIGINT)
    _, reference = _fit(tmp_path / "ref", _config())
    run = tmp_path / "run"
    with pytest.raises(Interrupted) as caught:
        _fit(run, _config(), hook=_stop_after(2, signal.SIGINT))
    assert caught.value.exit_code == 130
    assert (
        str(caught.value)
        == f"{run}: stopped by SIGINT after epoch 2; checkpoint {run / 'last.pt'} written"
    )
    _, resumed = _fit(run, _config(), resume=load_checkpoint(run / "last.pt"))
    assert _without_seconds(resumed.history) == _without_seconds(reference.history)
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_weight_average_follows_the_warm_up_formula():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    values, expected = [1.0, 2.0, 3.0], 0.0
    for n, value in enumerate(values):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    assert average.state_dict()["weight"].item() == pytest.approx(expected)
    with average.swapped_in():
        assert model.weight.item() == pytest.approx(expected)
    assert model.weight.item() == 3.0


def test_ema_weights_are_validated_and_saved_in_best_and_resume_restores_them(tmp_path):
    config = _config(ema_decay=0.8)
    _, reference = _fit(tmp_path / "ref", config)
    best = load_checkpoint(tmp_path / "ref" / "best.pt")
    assert best["model_state"]["weight"] != best["training_model_state"]["weight"]
    # What best.pt holds evaluates to the validation MSE the loop recorded for that epoch.
    dataset = DriftDataset()
    model = DriftModel()
    model.load_state_dict(best["model_state"])
    mse = evaluate_errors(
        {"m": model}, dataset, splits_of(dataset)["val"], len(dataset.systems),
        batch_size=7, device=CPU,
    )["m"].mse  # fmt: skip
    recorded = reference.history[best["epoch"] - 1]["val_mse"]
    assert mse == pytest.approx(recorded, rel=1e-6)
    # Interrupted and resumed: the same history and the same average as the uninterrupted run.
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        _fit(run, config, hook=_stop_after(3))
    _, resumed = _fit(run, config, resume=load_checkpoint(run / "last.pt"))
    assert _without_seconds(resumed.history) == _without_seconds(reference.history)
    ours, theirs = load_checkpoint(run / "last.pt"), load_checkpoint(tmp_path / "ref" / "last.pt")
    assert ours["model_state"]["weight"].item() == theirs["model_state"]["weight"].item()
    assert ours["ema_updates"] == theirs["ema_updates"] > 0
