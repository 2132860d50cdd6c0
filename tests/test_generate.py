"""`dynforecast generate nbody` and the cached built-in data set."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data import builtin, nbody
from dynforecast.data.loading import load_systems
from dynforecast.data.nbody import simulate_nbody
from dynforecast.data.splits import split_windows
from dynforecast.data.windows import WindowDataset

runner = CliRunner()


def test_generate_nbody_writes_h5md(tmp_path):
    output = tmp_path / "nbody.h5"
    result = runner.invoke(
        app, ["generate", "nbody", "-o", str(output), "--trajectories", "3", "--first-index", "2"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        f"wrote {output}: 3 charged N-body trajectories "
        "(49 frames x 5 particles, seed 43, stream 2-4, exact mode) in "
    )
    systems = load_systems(output)
    assert [s.name for s in systems] == ["traj00002", "traj00003", "traj00004"]
    expected = simulate_nbody(3, seed=43, mode="fast", first_index=2)
    np.testing.assert_allclose(systems[1].positions, expected.loc[1].swapaxes(1, 2), rtol=1e-6)
    np.testing.assert_array_equal(systems[0].charges, expected.charges[0, :, 0])
    np.testing.assert_allclose(systems[0].time, 0.1 * np.arange(1, 50))


def test_generate_nbody_errors(tmp_path):
    output = tmp_path / "nbody.h5"
    output.write_text("keep me")
    result = runner.invoke(app, ["generate", "nbody", "-o", str(output), "-n", "1"])
    assert result.exit_code == 4
    assert result.stderr == f"error: {output}: exists (use --overwrite to replace it)\n"
    assert output.read_text() == "keep me"
    result = runner.invoke(app, ["generate", "nbody", "-o", str(output), "--mode", "turbo"])
    assert result.exit_code == 2
    assert result.stderr == "error: --mode must be one of exact, fast (got 'turbo')\n"
    result = runner.invoke(
        app, ["generate", "nbody", "-o", str(output), "-n", "1", "--mode", "fast", "--overwrite"]
    )
    assert result.exit_code == 0 and len(load_systems(output)) == 1


def test_builtin_dataset_is_generated_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(builtin, "BUILTIN_TRAJECTORIES", 10)
    path = builtin.builtin_dataset_path()
    assert path.parent == tmp_path / "cache" and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert builtin.builtin_dataset_path() == path and path.stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    data = WindowDataset(load_systems(path), builtin.BUILTIN_WINDOWS, builtin.BUILTIN_GRAPH)
    assert len(data) == 10 * 30  # 49 frames, span 20 -> 30 windows per trajectory
    splits = split_windows(data.windows, builtin.BUILTIN_SPLIT, builtin.BUILTIN_FRACTIONS)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [240, 30, 30]
    batch = data.batch(splits["val"][:4])
    assert batch.positions.shape == (20, 10, 3) and batch.num_edges == 80
    assert batch.velocities is not None and batch.node_attrs.shape == (20, 1)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("DYNFORECAST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert builtin.cache_dir() == tmp_path / "dynforecast"
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "mine"))
    assert builtin.cache_dir() == tmp_path / "mine"


def test_generate_nbody_recipe(tmp_path, monkeypatch):
    monkeypatch.setitem(nbody.EGNN_RECIPES, "tiny", ((0, 2), (10, 1), (12, 1)))
    output = tmp_path / "recipe.h5"
    result = runner.invoke(
        app, ["generate", "nbody", "-o", str(output), "--recipe", "tiny", "--mode", "fast"]
    )
    assert result.exit_code == 0, result.stderr
    assert "seed 43, recipe tiny, stream 0-1, 10-10, 12-12, fast mode" in result.stdout
    assert [s.name for s in load_systems(output)] == [
        "traj00000",
        "traj00001",
        "traj00010",
        "traj00012",
    ]
    result = runner.invoke(
        app, ["generate", "nbody", "-o", str(output), "--recipe", "tiny", "-n", "3"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --recipe fixes the trajectories; drop --trajectories and --first-index\n"
    )
