"""Issue 9 item 5: a BVH export keeps the input's frame rate, or says why not (io/export.py).

Through `predict --export x.bvh` on the 30 fps arm clip of `data_kinds`: with the default window
(spacing 1) every frame is 1/30 s apart; a model spaced 5 frames apart writes its real spacing
(1/6 s) and says so; frames that are not evenly spaced are refused, never resampled.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from data_kinds import make_kind
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.errors import UsageError
from dynforecast.io.bvh import read_bvh
from dynforecast.io.export import export_trajectory
from dynforecast.io.h5md import read_h5md

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = make_kind("clip", tmp_path_factory.mktemp("arm"))
    assert path is not None
    return path


def _frame_time(path: Path) -> float:
    match = re.search(r"Frame Time:\s*(\S+)", path.read_text())
    assert match is not None
    return float(match.group(1))


def _train(clip: Path, run: Path, *settings: str) -> None:
    extra = [a for key in settings for a in ("--set", key)]
    result = invoke("train", clip, "--epochs", 1, "--out", run, *extra)
    assert result.exit_code == 0, result.stderr


def test_a_forecast_every_input_frame_plays_at_the_input_rate(clip, tmp_path):
    _train(clip, tmp_path / "run")
    out, bvh = tmp_path / "f.h5", tmp_path / "f.bvh"
    result = invoke(
        "predict", clip, "--checkpoint", tmp_path / "run", "--steps", 12, "-o", out, "--export", bvh
    )
    assert result.exit_code == 0, result.stderr
    assert _frame_time(bvh) == pytest.approx(1 / 30, rel=1e-7)
    assert "Frame Time" not in result.stderr  # nothing to explain
    (forecast,) = read_h5md(out)
    assert read_bvh(bvh).n_frames == forecast.n_frames  # every given and predicted frame


def test_a_forecast_spaced_wider_writes_its_real_frame_time_and_says_why(clip, tmp_path):
    _train(clip, tmp_path / "run", "data.window.past_frames=3", "data.window.spacing=5")
    out, bvh = tmp_path / "f.h5", tmp_path / "f.bvh"
    result = invoke(
        "predict", clip, "--checkpoint", tmp_path / "run", "--steps", 12, "-o", out, "--export", bvh
    )
    assert result.exit_code == 0, result.stderr
    assert "one every 5 stored frames" in result.stdout
    assert _frame_time(bvh) == pytest.approx(5 / 30, rel=1e-7)
    note = next(line for line in result.stderr.splitlines() if "Frame Time" in line)
    assert note.startswith(
        f"note: {bvh}: Frame Time 0.166667 s, 5 x the source's 0.0333333 s "
        "(6 instead of 30 frames per second)"
    )
    assert note.endswith("no frame is interpolated")
    (forecast,) = read_h5md(out)
    played = read_bvh(bvh)
    np.testing.assert_allclose(played.time, forecast.time - forecast.time[0], atol=1e-9)


def test_unevenly_spaced_frames_are_refused_not_resampled(clip, tmp_path):
    (system,) = read_h5md(clip)
    time = system.time.copy()
    time[5:] += 0.5 / 30  # one gap of 1.5 frames
    uneven = dataclasses.replace(system, time=time)
    bvh = tmp_path / "x.bvh"
    with pytest.raises(UsageError) as caught:
        export_trajectory(uneven, bvh)
    assert str(caught.value) == (
        f"{bvh}: frames are spaced 0.0333333 to 0.05 s apart, and a BVH file holds one Frame "
        "Time; writing them would need resampling, which would invent frames (not done); the "
        "H5MD output keeps every frame's time"
    )
    assert not bvh.exists()


def test_time_step_given_to_a_bvh_is_the_recorded_frame_time_and_the_export_writes_it(tmp_path):
    from data_kinds import write_arm_clip

    bvh = write_arm_clip(tmp_path / "arm.bvh")  # Frame Time 1/30 s
    data = tmp_path / "arm.h5"
    result = invoke("ingest", bvh, "--time-step", "20 ms", "-o", data)
    assert result.exit_code == 0, result.stderr
    (traj,) = read_h5md(data)
    np.testing.assert_allclose(traj.parameters["bvh_frame_time"], [0.02])
    np.testing.assert_allclose(traj.time[:3], [0.0, 0.02, 0.04])
    _train(data, tmp_path / "run")
    out, exported = tmp_path / "f.h5", tmp_path / "f.bvh"
    result = invoke(
        "predict",
        data,
        "--checkpoint",
        tmp_path / "run",
        "--steps",
        6,
        "-o",
        out,
        "--export",
        exported,
    )
    assert result.exit_code == 0, result.stderr
    assert _frame_time(exported) == pytest.approx(0.02, rel=1e-7)
    assert "Frame Time" not in result.stderr  # the rate the user gave is no change
