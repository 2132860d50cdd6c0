"""A data file whose frames hold NaN or infinity: train, evaluate and predict refuse it alike.

Before the shared check each command failed in its own way (train: "diverged", exit 6; evaluate:
an internal least-squares error, exit 1; predict: a NaN forecast with exit 0). The file here is
one written by `generate`, edited afterwards, as a file from another writer would arrive.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.finite import first_nonfinite
from dynforecast.io.h5md_frames import FileFrames, close_all

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("nonfinite")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 10, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    run = root / "run"
    result = invoke("train", data, "--model", "estag", "--out", run, "--epochs", 1)
    assert result.exit_code == 0, result.stderr
    broken = root / "broken.h5"
    shutil.copy(data, broken)
    with h5py.File(broken, "r+") as h5:
        names = sorted(h5["particles"].keys())
        h5[f"particles/{names[3]}/position/value"][17, 2, 1] = np.nan
    return root, run, broken, names[3]


def expected(broken, name: str) -> str:
    return (
        f"error: {broken}: system {name!r} has a non-finite value (NaN or inf) in positions at "
        "frame 17, particle 2 (0-based); fix or drop those frames before training or forecasting"
    )


def test_train_refuses_nan_frames_before_training(files):
    root, _, broken, name = files
    result = invoke("train", broken, "--model", "estag", "--out", root / "run2", "--epochs", 1)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == expected(broken, name)
    assert "epoch 1/1" not in result.stderr


def test_evaluate_refuses_nan_frames(files):
    _, run, broken, name = files
    result = invoke("evaluate", run / "best.pt", broken)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == expected(broken, name)


def test_predict_refuses_nan_frames_and_writes_nothing(files):
    root, run, broken, name = files
    out = root / "forecast.h5"
    args = ("--checkpoint", run / "best.pt", "--steps", 3, "-o", out)
    result = invoke("predict", broken, "--system", name, *args)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == expected(broken, name)
    assert not out.exists()


def test_predict_reads_only_the_system_it_forecasts(files):
    """The NaN is in another system than the first, which predict forecasts by default."""
    root, run, broken, name = files
    out = root / "first.h5"
    result = invoke("predict", broken, "--checkpoint", run / "best.pt", "--steps", 3, "-o", out)
    assert result.exit_code == 0, result.stderr
    with h5py.File(out) as h5:
        assert list(h5["particles"]) != [name]
        assert np.isfinite(h5[f"particles/{next(iter(h5['particles']))}/position/value"][()]).all()


def test_infinity_in_velocities_is_named(tmp_path):
    from dynforecast.data.loading import load_systems
    from dynforecast.errors import InputError
    from dynforecast.io.h5md import write_h5md
    from tests.datafactory import make_system

    system = make_system("water", 30, 4, velocities=True)
    system.velocities[29, 3, 0] = np.inf
    path = tmp_path / "v.h5"
    write_h5md(path, [system])
    for lazy in (False, True):
        with pytest.raises(InputError) as caught:
            load_systems(path, lazy=lazy)
        assert str(caught.value) == (
            f"{path}: system 'water' has a non-finite value (NaN or inf) in velocities at frame "
            "29, particle 3 (0-based); fix or drop those frames before training or forecasting"
        )
        close_all()


@pytest.mark.parametrize("frame", [0, 255, 256, 511, 599])
def test_first_nonfinite_finds_the_first_bad_frame_across_blocks(frame, tmp_path):
    frames = np.zeros((600, 5, 3), np.float32)
    frames[frame, 4, 2] = np.nan
    frames[599, 0, 0] = np.inf  # a later bad value must not win
    assert first_nonfinite(frames) == (frame, 4 if frame != 599 else 0)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", data=frames, chunks=(7, 5, 3))
    assert first_nonfinite(FileFrames(path, "x")) == first_nonfinite(frames)
    close_all()
    assert first_nonfinite(np.zeros((600, 5, 3), np.float32)) is None
