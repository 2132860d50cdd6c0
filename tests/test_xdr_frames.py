"""XTC/TRR frame headers checked before mdtraj's C readers (io/xdr_frames.py), and XTC decoding in a
child process (io/isolated.py): each kind of crash the fuzzer found is an exit 3 naming the file.

The files are written here by mdtraj (12 atoms, so XTC frames are compressed) and damaged at the
header word that the fuzzer's crashing mutants had damaged.
"""

from __future__ import annotations

import os
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import dynforecast.io.molecular as molecular
from dynforecast.cli import app
from dynforecast.errors import InputError
from dynforecast.io.h5md import read_h5md
from dynforecast.io.isolated import isolated_iter
from dynforecast.io.xdr_frames import scan_trr, scan_xtc

N_ATOMS, N_FRAMES = 12, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import mdtraj

    folder = tmp_path_factory.mktemp("xdr")
    rng = np.random.default_rng(0)
    top = mdtraj.Topology()
    residue = top.add_residue("ALA", top.add_chain())
    for i in range(N_ATOMS):
        top.add_atom(f"C{i}", mdtraj.element.carbon, residue)
    xyz = rng.uniform(0, 2, size=(N_FRAMES, N_ATOMS, 3)).astype(np.float32)
    traj = mdtraj.Trajectory(xyz, top, time=np.arange(N_FRAMES) * 2.0)
    traj.unitcell_vectors = np.tile(np.eye(3, dtype=np.float32) * 3, (N_FRAMES, 1, 1))
    paths = {ext: folder / f"ok.{ext}" for ext in ("gro", "xtc", "trr")}
    for path in paths.values():
        traj[:1].save(str(path)) if path.suffix == ".gro" else traj.save(str(path))
    return paths


def _xtc_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        (count,) = struct.unpack_from(">i", data, offset + 88)
        offset += 92 + (count + 3) // 4 * 4
    return offsets


def _damaged(files, tmp_path: Path, ext: str, frame: int, word: int, value, fmt=">i") -> Path:
    data = bytearray(files[ext].read_bytes())
    if ext == "xtc":
        start = _xtc_offsets(bytes(data))[frame]
    else:
        start = frame * (len(data) // N_FRAMES)
    struct.pack_into(fmt, data, start + 4 * word, value)
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(bytes(data))
    return path


def _ingest(trajectory: Path, files, tmp_path: Path):
    out = tmp_path / "out.h5"
    result = CliRunner().invoke(
        app, ["ingest", str(trajectory), "--topology", str(files["gro"]), "-o", str(out)]
    )
    return result, out


def test_clean_files_scan_to_their_frames(files):
    assert scan_xtc(files["xtc"], N_ATOMS).n_frames == N_FRAMES
    assert scan_trr(files["trr"], N_ATOMS).n_frames == N_FRAMES
    assert scan_xtc(files["xtc"], N_ATOMS).partial_bytes == 0


@pytest.mark.parametrize(
    ("ext", "frame", "word", "value", "fmt", "problem"),
    [
        # the SIGSEGV mutants: smallidx far outside xdrfile's table of magic integers
        ("xtc", 0, 21, 524297, ">i", "frame 0 (byte 0): invalid compression index 524297"),
        ("xtc", 1, 21, 3, ">i", "invalid compression index 3"),
        # a later frame with more atoms than the buffer mdtraj sized from frame 0 (heap overrun)
        ("xtc", 2, 1, 40, ">i", f"40 particles, but topology {{gro}} has {N_ATOMS}"),
        ("xtc", 1, 13, 40, ">i", f"40 particles, but topology {{gro}} has {N_ATOMS}"),
        # the SIGABRT mutants: garbage where a frame's magic number should be
        (
            "xtc",
            1,
            0,
            -425939822,
            ">i",
            "not an XTC frame (magic number -425939822, expected 1995)",
        ),
        (
            "xtc",
            1,
            22,
            1 << 30,
            ">i",
            "compressed size 1073741824 bytes is impossible for 12 atoms",
        ),
        ("xtc", 0, 14, float("nan"), ">f", "invalid precision nan"),
        ("xtc", 0, 15, 1 << 20, ">i", "invalid coordinate range"),
        # the SIGFPE mutants: a TRR header that xdrfile divides by its zero atom count
        ("trr", 0, 16, 0, ">i", f"0 particles, but topology {{gro}} has {N_ATOMS}"),
        ("trr", 1, 2, 0, ">i", "damaged TRR header (version string)"),
        ("trr", 2, 8, 40, ">i", "damaged TRR header (section of 40 bytes)"),
        ("trr", 1, 6, 8, ">i", "damaged TRR header (sizes of unused sections)"),
        ("trr", 1, 16, 13, ">i", "13 particles, but topology {gro} has 12"),
    ],
)
def test_damaged_header_is_exit_3_naming_file_and_frame(
    files, tmp_path, ext, frame, word, value, fmt, problem
):
    bad = _damaged(files, tmp_path, ext, frame, word, value, fmt)
    result, out = _ingest(bad, files, tmp_path)
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ")
    assert problem.format(gro=files["gro"]) in lines[0]
    if frame:
        assert f"frame {frame} (byte " in lines[0]
    assert not out.exists()


def test_trr_frame_without_positions_is_refused(files, tmp_path):
    data = bytearray(files["trr"].read_bytes())
    frame = len(data) // N_FRAMES
    struct.pack_into(">i", data, frame + 4 * 13, 0)  # x_size 0, as a velocity-only frame says
    bad = tmp_path / "novel.trr"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"frame 1 .*frame without positions"):
        scan_trr(bad, N_ATOMS)


@pytest.mark.parametrize("ext", ["xtc", "trr"])
def test_truncated_last_frame_is_dropped_with_a_note(files, tmp_path, ext):
    data = files[ext].read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[:-30])
    result, out = _ingest(cut, files, tmp_path)
    assert result.exit_code == 0, result.output
    assert "that partial frame was dropped" in result.output
    (traj,) = read_h5md(out)
    assert traj.positions.shape == (N_FRAMES - 1, N_ATOMS, 3)
    assert "dropped_partial_frame" in traj.parameters["ingest_notes"]


def test_stride_and_chunks_read_the_same_frames_as_mdtraj(files, tmp_path):
    import mdtraj

    out = tmp_path / "s.h5"
    result = CliRunner().invoke(
        app,
        [
            *("ingest", str(files["xtc"]), "--topology", str(files["gro"]), "-o", str(out)),
            *("--stride", "2", "--chunk-frames", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    reference = mdtraj.load(str(files["xtc"]), top=str(files["gro"]), stride=2)
    (traj,) = read_h5md(out)
    np.testing.assert_array_equal(traj.positions, reference.xyz)
    np.testing.assert_array_equal(traj.time, reference.time)


def test_a_reader_crash_in_the_child_is_exit_3_not_a_dead_process(files, tmp_path, monkeypatch):
    real = molecular._xdr_pieces

    def crashing(*args, **kwargs):
        pieces = real(*args, **kwargs)
        yield next(pieces)
        os.kill(os.getpid(), signal.SIGSEGV)  # what xdrfile does on damaged compressed data

    monkeypatch.setattr(molecular, "_xdr_pieces", crashing)
    out = tmp_path / "out.h5"
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            str(files["xtc"]),
            "--topology",
            str(files["gro"]),
            "-o",
            str(out),
            "--chunk-frames",
            "1",
        ],
    )
    assert result.exit_code == 3, result.output
    assert result.output.strip() == (
        f"error: {files['xtc']}: the reader crashed (SIGSEGV) after 1 frame: "
        f"the file is corrupt (damaged compressed coordinates)"
    )
    assert not out.exists()


def test_isolated_iter_passes_items_errors_and_warnings_through():
    sink = ["before"]

    def make():
        sink.append("from the child")
        yield np.arange(3)
        yield {"a": 1}

    assert [str(x) for x in isolated_iter(make, "f", sink)] == ["[0 1 2]", "{'a': 1}"]
    assert sink == ["before", "from the child"]

    def failing():
        yield 1
        raise InputError("f: bad frame 2")

    with pytest.raises(InputError, match=r"^f: bad frame 2$"):
        list(isolated_iter(failing, "f"))

    def buggy():
        yield 1
        raise ZeroDivisionError("ours")

    with pytest.raises(RuntimeError, match="ZeroDivisionError: ours"):
        list(isolated_iter(buggy, "f"))


def test_an_abandoned_isolated_reader_leaves_no_child(files):
    def endless():
        while True:
            yield np.zeros(1000)

    stream = isolated_iter(endless, "f")
    next(stream)
    stream.close()  # kills and reaps the child
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
