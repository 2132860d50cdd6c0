"""BVH as real writers produce it (keyword case, End Site variants, spacing), the notes of what
the parser drops, and joint selection, through `dynforecast ingest`."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.bvh import read_bvh, write_bvh
from dynforecast.io.h5md import read_h5md
from dynforecast.io.notes import NOTES_PARAMETER

FIELD_CASES = Path(__file__).parent / "data" / "field_cases"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def ingested(run, source: Path, out: Path, *options) -> tuple:
    result = run("ingest", source, "-o", out, *options)
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    return system, result


# Frame 1 of the field cases: root moved to x=1, Spine rotated 90 degrees about z.
FIELD_POSITIONS = np.array(
    [[[0, 0, 0], [0, 10, 0], [0, 15, 0]], [[1, 0, 0], [1, 10, 0], [-4, 10, 0]]], dtype=np.float32
)


@pytest.mark.parametrize(
    ("case", "tip"),
    [
        ("end_site_lower", "Spine_end"),
        ("end_site_upper", "Spine_end"),
        ("end_site_named", "Head_Top"),
    ],
)
def test_end_site_spellings_are_end_sites(run, tmp_path, case, tip):
    system, _ = ingested(run, FIELD_CASES / f"{case}.bvh", tmp_path / "out.h5")
    assert system.names == ["Hips", "Spine", tip]
    assert system.parameters["bvh_end_site"].tolist() == [0, 0, 1]
    assert system.bonds.tolist() == [[0, 1], [1, 2]]
    np.testing.assert_allclose(system.positions, FIELD_POSITIONS, atol=1e-5)


CANONICAL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
  JOINT Leg
  {
    OFFSET 0 -1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.1
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 10 20 30 40 50 60 70 80 90
"""

# The same file as writers of gesture data sets, game engines and old exporters spell it.
VARIANT = """hierarchy
root Hips
{
\toffset 0 0 0
\tchannels 6 XPOSITION yposition Zposition ZROTATION Xrotation yrotation
\tjoint Chest {
\t\tOFFSET\t0 1 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tEND SITE {
\t\t\tOFFSET 0 1 0
\t\t}
\t}
\tJOINT Leg
\t{
\t\tOffset 0 -1 0
\t\tChannels 3 Zrotation Xrotation Yrotation
\t\tEnd site Foot {
\t\t\tOFFSET 0 -1 0
\t\t}
\t}
}
Motion
FRAMES : 2
frame time:\t0.1
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 10 20 30 40 50 60 70 80 90
"""


def test_keyword_case_spacing_and_inline_braces_read_like_the_canonical_file(run, tmp_path):
    (tmp_path / "canonical.bvh").write_text(CANONICAL)
    (tmp_path / "variant.bvh").write_text(VARIANT)
    canonical, _ = ingested(run, tmp_path / "canonical.bvh", tmp_path / "a.h5")
    variant, result = ingested(run, tmp_path / "variant.bvh", tmp_path / "b.h5")
    assert "note:" not in result.stderr
    np.testing.assert_array_equal(variant.positions, canonical.positions)
    np.testing.assert_array_equal(variant.time, canonical.time)
    assert variant.names == ["Hips", "Chest", "Chest_end", "Leg", "Foot"]
    for key in ("bvh_parents", "bvh_offsets", "bvh_channels", "bvh_end_site", "bvh_frame_time"):
        np.testing.assert_array_equal(variant.parameters[key], canonical.parameters[key])


def test_an_end_site_name_already_taken_falls_back_to_the_parent_name(run, tmp_path):
    path = tmp_path / "dup.bvh"
    path.write_text(CANONICAL.replace("    End Site\n", "    End Site Chest\n", 1))
    assert read_bvh(path).names == ["Hips", "Chest", "Chest_end", "Leg", "Leg_end"]
    system, result = ingested(run, path, tmp_path / "out.h5")
    detail = (
        "1 End Site name already taken by a joint, renamed after the parent: Chest -> Chest_end"
    )
    assert f"{path}: note: {detail}" in result.stderr.splitlines()
    with h5py.File(tmp_path / "out.h5") as h5:
        notes = json.loads(h5[f"parameters/dynforecast/{system.name}"].attrs[NOTES_PARAMETER])
    assert notes == [{"kind": "renamed_end_sites", "count": 1, "detail": detail}]


def test_motion_rows_past_the_frame_count_are_a_recorded_note(run, tmp_path):
    source = tmp_path / "long.bvh"
    source.write_text(CANONICAL + "5 5 5 0 0 0 0 0 0 0 0 0\n\n6 6 6 0 0 0 0 0 0 0 0 0\n")
    system, result = ingested(run, source, tmp_path / "out.h5")
    assert system.n_frames == 2
    line = f"{source}: note: 2 motion rows after the 2 frames of 'Frames:' ignored (from line 30)"
    assert line in result.stderr.splitlines()
    with h5py.File(tmp_path / "out.h5") as h5:
        notes = json.loads(h5[f"parameters/dynforecast/{system.name}"].attrs[NOTES_PARAMETER])
    assert notes == [{"kind": "ignored_rows", "count": 2, "detail": line.split(": note: ")[1]}]


def test_latin1_file_is_read_with_a_note(run, tmp_path):
    source = tmp_path / "old.bvh"
    source.write_bytes(CANONICAL.replace("Leg", "Bein\xe9").encode("latin-1"))
    system, result = ingested(run, source, tmp_path / "out.h5")
    assert system.names[3] == "Bein\xe9"
    line = f"{source}: note: not UTF-8 (byte 250); read as Latin-1, which names joints as old exporters wrote them"
    assert line in result.stderr.splitlines()


# Selection -------------------------------------------------------------------------------------


def test_select_keeps_whole_subtrees_and_the_kept_skeleton_writes_back(run, tmp_path):
    source = tmp_path / "walk.bvh"
    source.write_text(CANONICAL)
    full, _ = ingested(run, source, tmp_path / "full.h5")
    kept, _ = ingested(run, source, tmp_path / "kept.h5", "--select", "not name Leg Leg_end")
    assert kept.names == ["Hips", "Chest", "Chest_end"]
    np.testing.assert_array_equal(kept.positions, full.positions[:, :3])
    assert kept.parameters["bvh_parents"].tolist() == [-1, 0, 1]
    assert kept.parameters["selection"] == "not name Leg Leg_end"
    # The kept joints are a hierarchy of their own: written and read back, they move as before.
    write_bvh(kept, tmp_path / "kept.bvh")
    again = read_bvh(tmp_path / "kept.bvh")
    np.testing.assert_allclose(again.positions, kept.positions, atol=1e-4)

    by_index, _ = ingested(run, source, tmp_path / "idx.h5", "--select", "index 0 to 2")
    np.testing.assert_array_equal(by_index.positions, kept.positions)


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            "name Leg",
            "--select 'name Leg': keeps joint 'Leg' but not its parent 'Hips'; a BVH selection "
            "keeps whole subtrees from the root (e.g. 'not name LeftHand' drops the hand and "
            "every joint below it)",
        ),
        (
            "not name Leg",
            "--select 'not name Leg': keeps joint 'Leg_end' but not its parent 'Leg'; a BVH "
            "selection keeps whole subtrees from the root (e.g. 'not name LeftHand' drops the "
            "hand and every joint below it)",
        ),
        (
            "element H",
            "--select 'element H': 'element': BVH joints have no elements (select by name or index)",
        ),
        ("name Arm", "--select 'name Arm': matches no joints"),
        (
            "resname Hips",
            "--select 'resname Hips': unknown keyword 'resname' (BVH selections know all, none, "
            "element, name, index; with and, or, not and parentheses)",
        ),
    ],
)
def test_bad_joint_selections_are_one_line_usage_errors(run, tmp_path, selection, message):
    source = tmp_path / "walk.bvh"
    source.write_text(CANONICAL)
    result = run("ingest", source, "-o", tmp_path / "out.h5", "--select", selection)
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"
    assert not (tmp_path / "out.h5").exists()
