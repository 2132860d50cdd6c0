"""evaluate reads only the systems it scores (and those its linear fit uses), same numbers as all.

A 24-trajectory N-body file split by trajectory: the test split holds a few systems, so reading
every system is the old cost this module pins away; the numbers must be those of the old path
(every system read, the split taken on all of them).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data import scored as scored_module
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.loading import load_systems
from dynforecast.data.scored import load_scored
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.evaluate import evaluate_checkpoint
from dynforecast.io.h5md import list_systems, write_h5md
from dynforecast.models.baselines import fit_linear
from dynforecast.train import setup
from dynforecast.train.trained import load_trained

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("scored")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 24, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    out = root / "run"
    result = invoke("train", data, "--model", "egnn", "--out", out, "--epochs", 1,
                    "--set", "split.mode=systems")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return data, out


def _reads(monkeypatch) -> list[list[str]]:
    """Record the system names of every `load_systems` call that `load_scored` makes."""
    calls: list[list[str]] = []

    def spy(path, systems=None, **kwargs):
        calls.append(list(systems))
        return load_systems(path, systems, **kwargs)

    monkeypatch.setattr(scored_module, "load_systems", spy)
    return calls


def _full(data, config):
    """The old path: every system read, the split taken on all of them."""
    systems = load_systems(data, config.data.systems)
    dataset = setup.build_dataset(systems, config)
    return systems, dataset, setup.build_splits(dataset, config)


def test_only_scored_and_fitted_systems_are_read(run, monkeypatch):
    data, out = run
    config = load_trained(out).config
    names = list_systems(data)
    systems, full, splits = _full(data, config)
    test_systems = {systems[i].name for i in np.unique(full.windows.system[splits["test"]])}
    train_systems = sorted(np.unique(full.windows.system[splits["train"]]).tolist())
    calls = _reads(monkeypatch)
    scored = load_scored(data, config, "test", check=lambda read: None, fit_systems=3)
    (read,) = calls
    picked = [
        train_systems[i] for i in np.linspace(0, len(train_systems) - 1, 3).round().astype(int)
    ]
    assert set(read) == test_systems | {names[i] for i in picked}
    assert read == [n for n in names if n in set(read)]  # the file's order
    assert len(read) < len(names)
    assert scored.systems_in_file == len(names)
    # The same windows: the scored ids of the subset give the full data set's test batch.
    mine = scored.dataset.batch(scored.ids)
    theirs = full.batch(splits["test"])
    assert torch.equal(mine.positions, theirs.positions)
    assert torch.equal(mine.target, theirs.target)
    # The linear fit's windows are the train windows of the 3 picked systems.
    fitted = full.windows.system[splits["train"]]
    expected_train = splits["train"][np.isin(fitted, picked)]
    assert torch.equal(
        scored.dataset.batch(scored.train_ids).positions, full.batch(expected_train).positions
    )


def test_evaluation_numbers_are_those_of_reading_every_system(run):
    """Fewer than LINEAR_FIT_SYSTEMS train systems: the linear fit is on all train windows."""
    data, out = run
    trained = load_trained(out)
    config = trained.config
    report = evaluate_checkpoint(out, data)
    _, full, splits = _full(data, config)
    linear = fit_linear(full, splits["train"], use_velocity=full.has_velocities)
    batch = full.batch(splits["test"])
    with torch.no_grad():
        model_mse = (trained.model(batch) - batch.target).pow(2).mean().item()
        linear_mse = (linear(batch) - batch.target).pow(2).mean().item()
        stay_mse = (batch.positions[:, -1] - batch.target).pow(2).mean().item()
    assert report.windows == len(splits["test"])
    assert report.mse == pytest.approx(model_mse, rel=1e-5)
    assert report.baselines["linear"] == pytest.approx(linear_mse, rel=1e-5)
    assert report.baselines["stay"] == pytest.approx(stay_mse, rel=1e-5)


def test_incompatible_data_is_reported_before_an_unusable_split(run, tmp_path):
    """One system cannot be split by systems; its wrong units are still the error reported."""
    data, out = run
    (system,) = load_systems(data, list_systems(data)[:1])
    other = tmp_path / "one.h5"
    write_h5md(other, [dataclasses.replace(system, length_unit="nm", time_unit="ps")])
    result = invoke("evaluate", out / "best.pt", other)
    assert result.exit_code == 5
    assert "units nm/ps, trained on 1/1" in result.stderr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_renumbered_windows_are_the_same_windows(seed):
    """Random frame counts (some systems too short for any window) and random kept systems."""
    from dynforecast.data.windows import WindowIndex
    from dynforecast.io.trajectory import Trajectory

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, size=15)
    spec = WindowSpec(past_frames=3, spacing=2, horizon=1)
    systems = [
        Trajectory(
            name=f"s{i}",
            positions=rng.normal(size=(int(n), 4, 3)).astype(np.float32),
            species=np.ones(4, dtype=np.int32),
            time=np.arange(int(n), dtype=np.float64),
            step=np.arange(int(n), dtype=np.int64),
            length_unit="nm",
            time_unit="ps",
        )
        for i, n in enumerate(counts)
    ]
    full = WindowIndex(counts, spec)
    ids = np.sort(rng.choice(len(full), size=min(20, len(full)), replace=False))
    kept = np.unique(full.system[ids])
    extra = rng.choice(len(counts), size=3, replace=False)
    kept = np.union1d(kept, extra)
    graph = GraphSpec(kind="all_pairs")
    subset = WindowDataset([systems[i] for i in kept], spec, graph)
    renumbered = scored_module._renumber(full, ids, kept, subset.windows)
    whole = WindowDataset(systems, spec, graph)
    assert np.array_equal(subset.windows.array[renumbered][:, 1], full.array[ids][:, 1])
    assert torch.equal(subset.batch(renumbered).positions, whole.batch(ids).positions)
