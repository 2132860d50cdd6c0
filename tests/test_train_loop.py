"""The training loop: learning, checkpoints, exact resumption after SIGTERM, early stopping."""

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
from dynforecast.train.loop import epoch_order, fit
from dynforecast.train.metrics import read_metrics_csv

CPU = torch.device("cpu")


def _config(**optim):
    values = {"optim": {"lr": 0.05, "epochs": 6, "batch_size": 7, **optim}, "seed": 3}
    return config_from_dict(values)


def _fit(run_dir, config, resume=None, hook=None, dataset=None):
    dataset = dataset or DriftDataset()
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


def test_fit_learns_and_writes_run_files(tmp_path):
    model, result = _fit(tmp_path, _config())
    history = result.history
    assert len(history) == 6
    assert history[-1]["val_mse"] < 0.05 * history[0]["val_mse"]
    assert abs(model.weight.item() - 1.0) < 0.2
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[-1]["val_mse"]) == pytest.approx(history[-1]["val_mse"])
    best = load_checkpoint(tmp_path / "best.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert best["best_val"] == pytest.approx(min(r["val_mse"] for r in history))
    assert last["epoch"] == 6 and last["finished"]
    assert last["train_config"]["optim"]["lr"] == 0.05


def test_epoch_order_depends_only_on_seed_and_epoch():
    ids = torch.arange(50).numpy()
    assert (epoch_order(ids, 1, 2) == epoch_order(ids, 1, 2)).all()
    assert not (epoch_order(ids, 1, 2) == epoch_order(ids, 1, 3)).all()
    assert sorted(epoch_order(ids, 1, 2)) == list(range(50))


def _kill_after(epoch_to_stop):
    def hook(epoch, row):
        if epoch == epoch_to_stop:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class _KillOnBatch(DriftDataset):
    """Sends SIGTERM to this process while the ``call``-th batch is built."""

    def __init__(self, call):
        super().__init__()
        self.calls, self.kill_at = 0, call

    def batch(self, window_ids):
        self.calls += 1
        if self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGUSR1)
        return super().batch(window_ids)


# 40 training windows in batches of 7 = 6 steps, then 2 validation batches: 8 batch builds per
# epoch, so build 11 is the 3rd training batch of epoch 2.
STOPS = {
    "sigterm_after_epoch_2": (
        {"hook": _kill_after(2)},
        "SIGTERM after epoch 2",
        (2, 0),
    ),
    "sigusr1_in_epoch_2": (
        {"dataset": _KillOnBatch(call=11)},
        "SIGUSR1 in epoch 2 after batch 3 of 6",
        (1, 3),
    ),
}


@pytest.mark.parametrize("stop", sorted(STOPS))
def test_stop_signal_checkpoint_then_resume_equals_uninterrupted(tmp_path, stop):
    stopper, where, position = STOPS[stop]
    config = _config()
    reference_model, reference = _fit(tmp_path / "ref", config)
    run = tmp_path / "run"
    with pytest.raises(Interrupted) as caught:
        _fit(run, config, **stopper)
    assert str(caught.value) == (f"{run}: stopped by {where}; checkpoint {run / 'last.pt'} written")
    assert caught.value.exit_code == 75
    saved = load_checkpoint(run / "last.pt")
    assert (saved["epoch"], saved["batch_in_epoch"]) == position
    model, resumed = _fit(run, config, resume=saved)
    _assert_same_history(resumed.history, reference.history)
    assert model.weight.item() == reference_model.weight.item()


def _assert_same_history(resumed, reference):
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(resumed) == drop(reference)


def test_signal_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    _fit(tmp_path, _config(epochs=1))
    assert signal.getsignal(signal.SIGTERM) is before


def test_early_stopping_stops_after_patience(tmp_path):
    # lr 0: the validation error never improves after epoch 1.
    _, result = _fit(tmp_path, _config(lr=1e-30, early_stopping_patience=2, epochs=10))
    assert result.epochs_completed == 3
    assert result.stopped_early
    assert result.best_epoch == 1


def test_finished_run_resumed_does_nothing(tmp_path):
    _, first = _fit(tmp_path, _config(epochs=2))
    _, again = _fit(tmp_path, _config(epochs=2), resume=load_checkpoint(tmp_path / "last.pt"))
    assert again.history == first.history


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_schedules_run_and_resume(tmp_path, schedule):
    config = _config(schedule=schedule, epochs=3)
    _, result = _fit(tmp_path, config)
    lrs = [row["lr"] for row in result.history]
    if schedule == "cosine":
        assert lrs[0] == 0.05 and lrs[1] < lrs[0]
    assert all(math.isfinite(row["val_mse"]) for row in result.history)


def test_compile_trains_through_torch_compile_and_checkpoints_the_plain_model(
    tmp_path, monkeypatch
):
    compiled = []
    real_compile = torch.compile

    def recording_compile(module, **options):
        compiled.append(type(module).__name__)
        return real_compile(module, backend="eager", **options)  # Dynamo only: no C++ build

    monkeypatch.setattr(torch, "compile", recording_compile)
    model, result = _fit(tmp_path / "compiled", _config(epochs=2, compile=True))
    _, eager = _fit(tmp_path / "eager", _config(epochs=2))
    assert compiled == ["DriftModel"]
    for ours, plain in zip(result.history, eager.history, strict=True):
        assert ours["train_mse"] == pytest.approx(plain["train_mse"], rel=1e-6)
        assert ours["val_mse"] == pytest.approx(plain["val_mse"], rel=1e-6)
    state = load_checkpoint(tmp_path / "compiled" / "last.pt")["model_state"]
    assert set(state) == set(model.state_dict())  # no "_orig_mod." prefixes
