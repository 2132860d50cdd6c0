"""XYZ / extended XYZ through `dynforecast ingest`: every frame read, and whatever the reader drops,
guesses or reinterprets either noted (one stderr line, recorded as ingest_notes) or refused with
one line naming the line or frame (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.h5md import read_h5md
from dynforecast.io.notes import NOTES_PARAMETER

FIELD_CASES = Path(__file__).parent / "data" / "field_cases"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def ingest_ok(run, source: Path, *options):
    out = source.with_suffix(".h5")
    result = run("ingest", source, "-o", out, "--overwrite", *options)
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    with h5py.File(out) as h5:
        recorded = h5[f"parameters/dynforecast/{system.name}"].attrs.get(NOTES_PARAMETER)
    notes = [line for line in result.stderr.splitlines() if ": note: " in line]
    recorded = json.loads(recorded) if recorded else []
    # every printed reader note is recorded with the data
    assert [f"{source}: note: {n['detail']}" for n in recorded] == notes
    # frames without times get ingest's untimed_frames note (tests/test_ingest_notes.py);
    # the tests here are about the XYZ reader's own notes
    untimed = {f"{source}: note: {n['detail']}" for n in recorded if n["kind"] == "untimed_frames"}
    return system, [line for line in notes if line not in untimed]


def ingest_fails(run, source: Path, *options) -> str:
    out = source.with_suffix(".h5")
    result = run("ingest", source, "-o", out, *options)
    assert result.exit_code == 3, result.stdout
    assert not out.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# Blank lines and frame structure --------------------------------------------------------------


def test_blank_line_between_frames_field_case_reads_every_frame(run, tmp_path):
    source = tmp_path / "blank_between_min.xyz"
    source.write_bytes((FIELD_CASES / source.name).read_bytes())
    system, notes = ingest_ok(run, source)
    np.testing.assert_array_equal(
        system.positions, [[[1, 0, 0], [0, 0, 0]], [[2, 0, 0], [1, 0, 0]]]
    )
    assert notes == [
        f"{source}: note: 1 blank line between frames skipped (the first: line 5)",
        f"{source}: note: comment lines of 2 frames not kept (the first: 'Frame 1')",
    ]


def test_whitespace_line_between_frames_field_case_reads_every_frame(run, tmp_path):
    source = tmp_path / "ws_line.xyz"
    source.write_bytes((FIELD_CASES / source.name).read_bytes())
    system, notes = ingest_ok(run, source)
    assert system.n_frames == 3
    np.testing.assert_allclose(system.positions[:, 1, 2], [0.74, 0.84, 0.94], rtol=1e-6)
    assert notes[0] == f"{source}: note: 1 blank line between frames skipped (the first: line 9)"


def test_blank_lines_at_the_end_and_empty_comment_lines_are_not_notes(run, tmp_path):
    source = write(tmp_path, "h2.xyz", "2\n\nH 0 0 0\nH 0 0 0.74\n2\n\nH 0 0 0\nH 0 0 0.75\n\n \n")
    system, notes = ingest_ok(run, source)
    assert (system.n_frames, notes) == (2, [])


def test_many_blank_lines_are_counted_with_the_first_line(run, tmp_path):
    frame = "1\n\nH 0 0 0\n"
    source = write(tmp_path, "gaps.xyz", "\n" + frame + "\n\n" + frame + "\t\n" + frame)
    system, notes = ingest_ok(run, source, "--stride", 2)
    assert system.n_frames == 2
    assert notes == [f"{source}: note: 4 blank lines between frames skipped (the first: line 1)"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2\n\nH 0 0 0\n\nH 0 0 1\n",
            "line 4: blank line inside frame 0 (its count line 1 declares 2 atoms)",
        ),
        (
            "2\n\nH 0 0 0\nH 0 0\n",
            "line 4: 3 values, expected 4, inside frame 0 (its count line 1 declares 2 atoms)",
        ),
        (
            "1\n\nH 0 0 0\n2 atoms\n\nH 0 0 0\nH 0 0 1\n",
            "line 4: expected the atom count of frame 1, got '2 atoms'",
        ),
        ("H 0 0 0\n", "line 1: expected the atom count of frame 0, got 'H 0 0 0'"),
        (
            "2\n\nH 0 0 0\nH 0 0 1\n1\n\nH 0 0 0\n",
            "line 5: frame 1 has 1 atoms, expected 2",
        ),
        ("1\n\nZz 0 0 0\n", "line 3: malformed XYZ (unknown element symbol 'Zz')"),
        (
            "1\n\nH 0 0 zero\n",
            "frame 0 (line 1): malformed XYZ (could not convert string to float: 'zero')",
        ),
        (
            "1\nProperties=species:S:1:position:R:3\nH 0 0 1\n",
            "line 2: the Properties of frame 0 declare no 'pos' column",
        ),
        (
            "3\n\nH 0 0 0\n",
            "frame 0 (line 1) is truncated: the file ends after 1 of its 3 atom lines",
        ),
        ("0\n\n", "no atoms in frame 0"),
    ],
    ids=[
        "blank-in-frame",
        "short-line",
        "count-text",
        "no-count",
        "count-changes",
        "unknown-symbol",
        "bad-number",
        "no-pos",
        "truncated-only-frame",
        "no-atoms",
    ],
)
def test_malformed_frames_are_one_line_errors_naming_the_line(run, tmp_path, text, message):
    source = write(tmp_path, "bad.xyz", text)
    assert ingest_fails(run, source) == f"error: {source}: {message}"


def test_a_frame_the_file_ends_inside_is_noted_not_read(run, tmp_path):
    source = write(tmp_path, "cut.xyz", "2\n\nH 0 0 0\nH 0 0 1\n2\n\nH 0 0 0\nH 0 0 1\n2\n\nH 0 0")
    system, notes = ingest_ok(run, source)
    assert system.n_frames == 2
    assert notes == [
        f"{source}: note: the file ends inside frame 2 (line 9: 1 of 2 atom lines); that frame "
        "is not read"
    ]


def test_extra_values_beyond_the_declared_columns_are_noted(run, tmp_path):
    source = write(tmp_path, "wide.xyz", "2\n\nH 0 0 0 0.1 0.2 0.3\nH 0 0 1 0.1 0.2 0.3\n" * 2)
    system, notes = ingest_ok(run, source)
    np.testing.assert_array_equal(system.positions[0], [[0, 0, 0], [0, 0, 1]])
    assert notes == [
        f"{source}: note: values beyond the declared columns on 4 atom lines ignored (the "
        "first: line 3)"
    ]


def test_symbols_in_another_case_and_extra_properties_are_noted(run, tmp_path):
    comment = 'Properties=species:S:1:pos:R:3:charge:R:1 energy=-1.5 pbc="F F F"'
    source = write(tmp_path, "case.extxyz", f"2\n{comment}\nCL 0 0 0 -1\nna 0 0 3 1\n")
    system, notes = ingest_ok(run, source)
    assert system.names == ["Cl", "Na"] and system.species.tolist() == [17, 11]
    assert notes == [
        f"{source}: note: element symbols of 2 atoms read case-insensitively: 'CL' as Cl, "
        "'na' as Na",
        f"{source}: note: per-atom charge not kept",
        f"{source}: note: comment-line values energy of 1 frame not kept",
    ]


# Unit cells -----------------------------------------------------------------------------------


def frames(comment: str, count: int = 2) -> str:
    return "".join(f"1\n{comment}\nH {k} 0 0\n" for k in range(count))


@pytest.mark.parametrize(
    ("comment", "note"),
    [
        (
            'Lattice="0 0 0 0 0 0 0 0 0" pbc="T T T"',
            "2 frames (the first: frame 0) periodic (pbc) but without a Lattice or with one of "
            "zeros: stored without a unit cell",
        ),
        (
            'pbc="T T T"',
            "2 frames (the first: frame 0) periodic (pbc) but without a Lattice or with one of "
            "zeros: stored without a unit cell",
        ),
        (
            'Lattice="10 0 0 0 10 0 0 0 10" pbc="F F F"',
            'the Lattice of 2 frames (the first: frame 0) not stored: pbc is "F F F"',
        ),
    ],
    ids=["zero-lattice", "pbc-without-lattice", "lattice-not-periodic"],
)
def test_cells_that_are_no_box_are_noted(run, tmp_path, comment, note):
    source = write(tmp_path, "cell.extxyz", frames(comment))
    system, notes = ingest_ok(run, source)
    assert system.box is None
    assert notes == [f"{source}: note: {note}"]


def test_a_real_cell_is_kept_without_a_note(run, tmp_path):
    source = write(tmp_path, "box.extxyz", frames('Lattice="10 0 0 0 11 0 0 0 12"'))
    system, notes = ingest_ok(run, source)
    np.testing.assert_array_equal(system.box[1], np.diag([10, 11, 12]))
    assert notes == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            frames('Lattice="10 0 0 0 10 0 0 0 0" pbc="T T T"'),
            'frame 0: Lattice vector c is zero but pbc="T T T" makes that axis periodic',
        ),
        (
            frames('Lattice="10 0 0 0 10 0 0 0 10" pbc="T T F"', 1)
            + frames('Lattice="10 0 0 0 10 0 0 0 10" pbc="T T T"', 1),
            'frame 1 has pbc="T T T" (frame 0 has "T T F")',
        ),
    ],
    ids=["zero-periodic-vector", "pbc-changes"],
)
def test_inconsistent_cells_are_refused(run, tmp_path, text, message):
    source = write(tmp_path, "cell.extxyz", text)
    assert ingest_fails(run, source) == f"error: {source}: {message}"


# Times -----------------------------------------------------------------------------------------


def test_the_bare_word_time_in_a_plain_comment_is_no_time(run, tmp_path):
    source = write(tmp_path, "words.xyz", "1\ntime 0.5\nH 0 0 0\n1\ntime 1.0\nH 0 0 1\n")
    system, notes = ingest_ok(run, source)
    assert system.time_unit == "1" and system.time.tolist() == [0.0, 1.0]
    assert notes == [f"{source}: note: comment lines of 2 frames not kept (the first: 'time 0.5')"]


def test_time_key_in_any_case_and_cp2k_comment_lines_give_fs(run, tmp_path):
    cp2k = "".join(f"1\n i = {k}, time = {0.5 * k:.3f}, E = -17.1\nH 0 0 {k}\n" for k in range(3))
    source = write(tmp_path, "cp2k.xyz", cp2k)
    system, notes = ingest_ok(run, source)
    assert system.time_unit == "fs" and system.time.tolist() == [0.0, 0.5, 1.0]
    assert notes == [f"{source}: note: comment-line values E, i of 3 frames not kept"]
    upper = write(tmp_path, "upper.extxyz", "1\nTime=2.5\nH 0 0 0\n1\nTime=3.5\nH 0 0 1\n")
    system, notes = ingest_ok(run, upper)
    assert system.time.tolist() == [2.5, 3.5] and notes == []


def test_a_frame_without_its_time_is_refused(run, tmp_path):
    source = write(tmp_path, "t.extxyz", "1\ntime=0\nH 0 0 0\n1\ntime=x\nH 0 0 1\n")
    message = ingest_fails(run, source)
    assert message == f"error: {source}: frame 1 has a non-numeric time='x' (frame 0 has one)"
