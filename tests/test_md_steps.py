"""MD step numbers the files store (XTC/TRR frame headers, DCD ISTART/NSAVC, GRO title and XYZ
comment ``step=``) become the H5MD ``step``, with ``--stride`` and chunked reading (issue 8)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from MDAnalysisTests import datafiles
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.h5md import read_h5md
from dynforecast.io.notes import NOTES_PARAMETER, notes_from_json

ADK_PSF, ADK_DCD = datafiles.PSF, datafiles.DCD
OPLS_GRO = datafiles.GRO


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ingested(path: Path):
    (traj,) = read_h5md(path)
    return traj


def notes_of(traj) -> dict[str, object]:
    return {n.kind: n for n in notes_from_json(traj.parameters.get(NOTES_PARAMETER))}


def mdanalysis_steps(topology: str, trajectory: str) -> np.ndarray:
    import MDAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = MDAnalysis.Universe(topology, trajectory)
        return np.array([ts.data["step"] for ts in universe.trajectory], dtype=np.int64)


@pytest.mark.parametrize("trajectory", [datafiles.XTC, datafiles.TRR])
@pytest.mark.parametrize(("stride", "chunk"), [(1, None), (3, 2)])
def test_xtc_and_trr_steps_are_the_frame_headers_steps_like_mdanalysis(
    tmp_path, trajectory, stride, chunk
):
    want = mdanalysis_steps(OPLS_GRO, trajectory)
    assert want.tolist() == list(range(0, 500000, 50000))  # not the frame index
    out = tmp_path / "s.h5"
    options = ["--stride", stride] + (["--chunk-frames", chunk] if chunk else [])
    result = run("ingest", trajectory, "--topology", OPLS_GRO, *options, "-o", out)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(ingested(out).step, want[::stride])


def test_dcd_steps_are_istart_plus_index_times_nsavc_from_its_header(tmp_path):
    from MDAnalysis.lib.formats.libdcd import DCDFile

    with DCDFile(ADK_DCD) as dcd:
        header, n_frames = dcd.header, dcd.n_frames
    assert (header["istart"], header["nsavc"]) == (1000, 1000)
    want = header["istart"] + header["nsavc"] * np.arange(n_frames)
    out = tmp_path / "d.h5"
    result = run(
        "ingest", ADK_DCD, "--topology", ADK_PSF, "--stride", 3, "--chunk-frames", 5, "-o", out
    )
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    np.testing.assert_array_equal(traj.step, want[::3])
    # --time-step replaces the times (frame index x step), never the file's steps
    given = tmp_path / "g.h5"
    result = run("ingest", ADK_DCD, "--topology", ADK_PSF, "--time-step", "2 ps", "-o", given)
    assert result.exit_code == 0, result.stderr
    traj = ingested(given)
    np.testing.assert_array_equal(traj.step, want)
    np.testing.assert_allclose(traj.time, 2.0 * np.arange(n_frames))


def _gro(titles: list[str]) -> str:
    lines = []
    for frame, title in enumerate(titles):
        lines += [title, "    1", f"    1SOL     OW    1{0.1 + 0.01 * frame:8.3f}   0.200   0.300"]
        lines.append("   3.00000   3.00000   3.00000")
    return "\n".join(lines) + "\n"


def test_gro_title_steps_are_stored_when_every_frame_has_one(tmp_path):
    gro = tmp_path / "w.gro"
    gro.write_text(_gro([f"Water t= {t:.5f} step= {s}" for t, s in ((0, 0), (2, 1000), (4, 2000))]))
    out = tmp_path / "w.h5"
    result = run("ingest", gro, "--stride", 2, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.step.tolist() == [0, 2000] and traj.time.tolist() == [0.0, 4.0]
    assert "unnumbered_steps" not in notes_of(traj)


def test_gro_title_steps_in_some_frames_only_are_a_note(tmp_path):
    gro = tmp_path / "w.gro"
    gro.write_text(_gro(["Water t= 0.00000 step= 0", "Water t= 2.00000", "Water t= 4.00000"]))
    out = tmp_path / "w.h5"
    result = run("ingest", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "2 of 3 frames have no step= in their title line, so the stored steps are frame "
        "indices, not the file's MD steps"
    )
    assert f"{gro}: note: {detail}" in result.stderr.splitlines()
    traj = ingested(out)
    assert traj.step.tolist() == [0, 1, 2]
    note = notes_of(traj)["unnumbered_steps"]
    assert (note.count, note.detail) == (2, detail)


def _xyz(comments: list[str]) -> str:
    return "".join(f"1\n{c}\nH {0.1 * k:.3f} 0 0\n" for k, c in enumerate(comments))


def test_xyz_step_key_is_the_stored_step_and_not_a_dropped_value(tmp_path):
    xyz = tmp_path / "s.extxyz"
    xyz.write_text(_xyz([f"time={0.5 * k} step={100 * k} energy=1.0" for k in range(4)]))
    out = tmp_path / "s.h5"
    result = run("ingest", xyz, "--stride", 2, "--chunk-frames", 1, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.step.tolist() == [0, 200] and traj.time.tolist() == [0.0, 1.0]
    assert (
        notes_of(traj)["dropped_values"].detail == "comment-line values energy of 2 frames not kept"
    )


def test_xyz_step_key_missing_in_a_later_frame_is_one_error_line(tmp_path):
    xyz = tmp_path / "s.extxyz"
    xyz.write_text(_xyz(["time=0 step=0", "time=1 step=10", "time=2"]))
    out = tmp_path / "s.h5"
    result = run("ingest", xyz, "-o", out)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: {xyz}: frame 2 lacks step= (frame 0 has a whole-number step=, stored as the "
        "MD step of every frame)\n"
    )
    assert not out.exists()
