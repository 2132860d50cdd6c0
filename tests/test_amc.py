"""AMC motion with its ASF skeleton through `dynforecast ingest` (io/amc.py)."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.asf import parse_asf
from dynforecast.io.asf_kinematics import forward_kinematics
from dynforecast.io.h5md import read_h5md
from tests.test_asf import ASF

ROWS = [
    [1, 2, 3, 0, 0, 0, 0, 0, 90, 90, 0],
    [1.5, 2, 3, 10, -20, 5, 30, 15, -40, 25, 60],
    [0, 0, 0, 0, 180, 0, -70, 5, 10, -10, 120],
]


def _amc(rows=ROWS, header=":FULLY-SPECIFIED\n:DEGREES\n") -> str:
    lines = ["#!OML:ASF t.asf", header.rstrip("\n")]
    for n, row in enumerate(rows, start=1):
        lines += [str(n), "root " + " ".join(map(str, row[:6]))]
        lines += ["upper " + " ".join(map(str, row[6:9])), "lower " + " ".join(map(str, row[9:]))]
    return "\n".join(lines) + "\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "skel.asf").write_text(ASF)
    (tmp_path / "walk.amc").write_text(_amc())
    (tmp_path / "run.amc").write_text(_amc(ROWS[::-1]))
    return tmp_path


def _ingest(*args: str):
    return CliRunner().invoke(app, ["ingest", *args])


def test_ingest_asf_amc_gives_forward_kinematics_tips(files: Path):
    out = files / "walk.h5"
    result = _ingest(str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(out))
    assert result.exit_code == 0, result.output
    traj = read_h5md(out)[0]
    skeleton = parse_asf(ASF, Path("t.asf"))[0]
    expected = forward_kinematics(skeleton, np.array(ROWS, dtype=float))[0]
    np.testing.assert_allclose(traj.positions, expected, atol=1e-5)
    assert traj.names == ["root", "upper", "lower"]
    assert traj.bonds.tolist() == [[0, 1], [1, 2]]
    np.testing.assert_allclose(traj.time, [0, 1 / 120, 2 / 120])
    assert (traj.length_unit, traj.time_unit) == ("1", "s")
    with h5py.File(out) as h5:
        assert "asf_text" in h5["parameters/dynforecast/walk"]


def test_several_amc_with_one_asf_and_topology_option(files: Path):
    out = files / "both.h5"
    asf, walk, run = (str(files / n) for n in ("skel.asf", "walk.amc", "run.amc"))
    assert _ingest(asf, walk, run, "-o", str(out)).exit_code == 0
    again = files / "again.h5"
    assert _ingest(walk, run, "--topology", asf, "-o", str(again)).exit_code == 0
    a, b = read_h5md(out), read_h5md(again)
    assert [t.name for t in a] == ["walk", "run"]
    np.testing.assert_allclose(a[1].positions, a[0].positions[::-1], atol=1e-6)
    np.testing.assert_array_equal(a[1].positions, b[1].positions)


def test_radians_header_reads_radians(files: Path):
    rows = np.array(ROWS, dtype=float)
    rows[:, 3:] = np.deg2rad(rows[:, 3:])
    (files / "rad.amc").write_text(_amc(rows.tolist(), ":FULLY-SPECIFIED\n:RADIANS\n"))
    out = files / "rad.h5"
    assert _ingest(str(files / "skel.asf"), str(files / "rad.amc"), "-o", str(out)).exit_code == 0
    assert (
        _ingest(
            str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(files / "d.h5")
        ).exit_code
        == 0
    )
    np.testing.assert_allclose(
        read_h5md(out)[0].positions, read_h5md(files / "d.h5")[0].positions, atol=1e-5
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "upper 0 0 90",
            "upper 0 90",
            "walk.amc: line 6: bone 'upper' has 3 dof (rx ry rz) but 2 values",
        ),
        ("upper 0 0 90", "uper 0 0 90", "walk.amc: line 6: unknown bone 'uper' (not in the ASF)"),
        ("upper 0 0 90", "upper 0 x 90", "walk.amc: line 6: non-numeric value for bone 'upper'"),
        (":DEGREES", ":DEGREEZ", "walk.amc: line 3: unknown AMC keyword ':DEGREEZ'"),
    ],
)
def test_amc_errors_exit_3_with_line(files: Path, old: str, new: str, message: str):
    (files / "walk.amc").write_text(_amc().replace(old, new, 1))
    result = _ingest(str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(files / "x.h5"))
    assert result.exit_code == 3
    assert message in result.output
    assert not (files / "x.h5").exists()


def test_amc_without_asf_and_asf_without_amc(files: Path):
    result = _ingest(str(files / "walk.amc"), "-o", str(files / "x.h5"))
    assert result.exit_code == 3
    assert "an AMC motion needs its ASF skeleton" in result.output
    result = _ingest(str(files / "skel.asf"), "-o", str(files / "x.h5"))
    assert result.exit_code == 3
    assert "an ASF file is a skeleton (no frames)" in result.output


def test_round_trip_amc_ingest_export_ingest(files: Path):
    from dynforecast.io.export import export_trajectory

    out = files / "walk.h5"
    assert _ingest(str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(out)).exit_code == 0
    traj = read_h5md(out)[0]
    export_trajectory(traj, files / "back.amc")
    again = files / "again.h5"
    result = _ingest(str(files / "skel.asf"), str(files / "back.amc"), "-o", str(again))
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_h5md(again)[0].positions, traj.positions, atol=2e-5)


def test_amc_export_of_data_without_asf_is_refused_before_writing(tmp_path: Path):
    from dynforecast.errors import UsageError
    from dynforecast.io.export import check_export_target
    from dynforecast.io.trajectory import Trajectory

    traj = Trajectory(
        name="gas",
        positions=np.zeros((2, 3, 3), dtype=np.float32),
        species=np.zeros(3, dtype=np.int32),
        time=np.arange(2.0),
        step=np.arange(2),
        length_unit="1",
        time_unit="1",
    )
    with pytest.raises(UsageError, match="has no ASF skeleton"):
        check_export_target(tmp_path / "x.amc", overwrite=False, trajectory=traj)
    assert not (tmp_path / "x.amc").exists()


def test_predict_on_an_amc_system_exports_amc(files: Path):
    t = np.arange(120) / 20
    rows = np.zeros((120, 11))
    rows[:, 0] = 0.5 * t
    rows[:, 6:9] = 30 * np.sin(t[:, None] + np.arange(3))
    rows[:, 9:] = 20 * np.cos(1.3 * t[:, None] + np.arange(2))
    (files / "long.amc").write_text(_amc(rows.tolist()))
    data, run = files / "cmu.h5", files / "run"
    assert _ingest(str(files / "skel.asf"), str(files / "long.amc"), "-o", str(data)).exit_code == 0
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", str(data), "--model", "egnn", "--out", str(run), "--epochs", "1",
              "--seed", "1", "--set", "window.horizon=1"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    forecast, export = files / "f.h5", files / "f.amc"
    predicted = runner.invoke(
        app, ["predict", str(data), "--checkpoint", str(run / "best.pt"), "--steps", "3",
              "-o", str(forecast), "--export", str(export)],
    )  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    back = files / "back.h5"
    assert _ingest(str(files / "skel.asf"), str(export), "-o", str(back)).exit_code == 0
    written, reread = read_h5md(forecast)[0], read_h5md(back)[0]
    assert reread.n_frames == written.n_frames
    np.testing.assert_allclose(reread.positions[:10], written.positions[:10], atol=1e-4)


def test_bvh_export_of_an_asf_system_reproduces_the_tips(files: Path):
    from dynforecast.io.export import export_trajectory

    out = files / "walk.h5"
    assert _ingest(str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(out)).exit_code == 0
    traj = read_h5md(out)[0]
    export_trajectory(traj, files / "walk.bvh")
    bvh = files / "bvh.h5"
    assert _ingest(str(files / "walk.bvh"), "-o", str(bvh)).exit_code == 0
    back = read_h5md(bvh)[0]
    assert back.names == ["root", "upper", "lower", "lower_end"]
    # BVH joints sit at bone bases: root, upper's base (= root), lower's base (= upper's tip)
    np.testing.assert_allclose(back.positions[:, [0, 2, 3]], traj.positions, atol=2e-5)
    np.testing.assert_allclose(back.positions[:, 1], traj.positions[:, 0], atol=2e-5)


def test_the_assumed_cmu_frame_rate_is_a_note_on_stderr_and_in_the_file(files: Path):
    from dynforecast.io.notes import NOTES_PARAMETER, notes_from_json

    out = files / "walk.h5"
    result = _ingest(str(files / "skel.asf"), str(files / "walk.amc"), "-o", str(out))
    assert result.exit_code == 0, result.output
    detail = (
        "AMC files store no frame rate; times assume CMU's 120 frames/s "
        "unless --time-step was given"
    )
    assert f"{files / 'walk.amc'}: note: {detail}" in result.stderr.splitlines()
    notes = notes_from_json(str(read_h5md(out)[0].parameters[NOTES_PARAMETER]))
    assert [(n.kind, n.count, n.detail) for n in notes] == [("assumed_frame_rate", 3, detail)]


def test_time_step_given_to_amc_records_no_assumed_frame_rate(files: Path):
    from dynforecast.io.notes import NOTES_PARAMETER

    out = files / "walk.h5"
    args = [str(files / "skel.asf"), str(files / "walk.amc"), "--time-step", "0.01 s"]
    result = _ingest(*args, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "frame rate" not in result.stderr
    traj = read_h5md(out)[0]
    assert NOTES_PARAMETER not in traj.parameters
    np.testing.assert_allclose(traj.time, [0, 0.01, 0.02])


@pytest.mark.parametrize(("given", "seconds"), [("0.01 s", 0.01), ("25 ms", 0.025)])
def test_time_step_given_to_amc_is_the_recorded_frame_time_and_export_keeps_it(
    files: Path, given: str, seconds: float, capsys
):
    from dynforecast.io.export import export_trajectory

    out = files / "walk.h5"
    args = [str(files / "skel.asf"), str(files / "walk.amc"), "--time-step", given]
    assert _ingest(*args, "-o", str(out)).exit_code == 0
    traj = read_h5md(out)[0]
    np.testing.assert_allclose(traj.parameters["amc_frame_time"], [seconds])
    capsys.readouterr()
    export_trajectory(traj, files / "walk.bvh")
    assert "Frame Time" not in capsys.readouterr().err  # no frame-rate change is reported
    assert f"Frame Time: {seconds:g}" in (files / "walk.bvh").read_text()
