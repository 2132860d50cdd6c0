"""Ingest notes: what a reader reports it changed is printed once and recorded in the file."""

from __future__ import annotations

import h5py

import dynforecast.io.ingest as ingest_module
from dynforecast.io.notes import NOTES_PARAMETER, IngestNote, notes_from_json


def _write_xyz(path):
    """Two timed frames (time=): no untimed_frames note joins the ones a test adds."""
    path.write_text("2\ntime=0.0\nH 0 0 0\nH 0 0 0.74\n2\ntime=0.5\nH 0 0 0.01\nH 0 0 0.75\n")


def test_notes_are_logged_and_recorded(tmp_path, monkeypatch, capsys):
    source = tmp_path / "h2.xyz"
    _write_xyz(source)
    real_open = ingest_module.open_input
    note = IngestNote("guessed_elements", 2, "elements of 2 atoms guessed from their names")

    def open_with_note(*args, **kwargs):
        system = real_open(*args, **kwargs)
        system.notes.append(note)
        return system

    monkeypatch.setattr(ingest_module, "open_input", open_with_note)
    summaries = ingest_module.ingest([source], tmp_path / "out.h5")

    assert summaries[0].notes == (note,)
    err = capsys.readouterr().err
    assert err.count("elements of 2 atoms guessed from their names") == 1
    with h5py.File(tmp_path / "out.h5") as h5:
        recorded = h5[f"parameters/dynforecast/{summaries[0].name}"].attrs[NOTES_PARAMETER]
    assert notes_from_json(recorded) == [note]


def test_no_notes_no_parameter(tmp_path):
    source = tmp_path / "h2.xyz"
    _write_xyz(source)
    summaries = ingest_module.ingest([source], tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as h5:
        assert NOTES_PARAMETER not in h5[f"parameters/dynforecast/{summaries[0].name}"].attrs


def _dcd_without_time_step(tmp_path):
    """The AdK DCD with its header's DELTA zeroed: mdtraj reads it, no frame times are known."""
    from MDAnalysisTests import datafiles

    data = bytearray(open(datafiles.DCD, "rb").read())
    data[44:48] = bytes(4)  # DELTA (CHARMM float32, AKMA units) = 0
    path = tmp_path / "no_delta.dcd"
    path.write_bytes(bytes(data))
    return path, datafiles.PSF


def _recorded_notes(path):
    with h5py.File(path) as h5:
        (group,) = h5["parameters/dynforecast"].values()
        return notes_from_json(group.attrs.get(NOTES_PARAMETER))


def test_untimed_frames_are_a_note_on_stderr_and_in_the_file(tmp_path, capsys):
    dcd, psf = _dcd_without_time_step(tmp_path)
    summaries = ingest_module.ingest([dcd], tmp_path / "out.h5", topology=psf)
    assert summaries[0].time_unit == "1"
    expected = f"{dcd}: note: {ingest_module.UNTIMED_DETAIL}"
    assert expected == (
        f"{dcd}: note: the file stores no times; time is the frame index "
        "(give --time-step, e.g. --time-step '2 ps')"
    )
    assert capsys.readouterr().err.splitlines().count(expected) == 1
    untimed = [n for n in _recorded_notes(tmp_path / "out.h5") if n.kind == "untimed_frames"]
    assert untimed == [IngestNote("untimed_frames", 98, ingest_module.UNTIMED_DETAIL)]


def test_time_step_given_records_no_assumed_time_note(tmp_path, capsys):
    dcd, psf = _dcd_without_time_step(tmp_path)
    step = ingest_module.TimeStep.parse("2 ps")
    summaries = ingest_module.ingest([dcd], tmp_path / "out.h5", topology=psf, time_step=step)
    assert summaries[0].time_unit == "ps"
    err = capsys.readouterr().err
    assert "stores no times" not in err
    kinds = [n.kind for n in _recorded_notes(tmp_path / "out.h5")]
    assert kinds == ["elements_from_masses"]  # the topology's note stays


def test_final_notes_drops_every_time_assumption_when_a_time_step_is_given():
    kinds = ("assumed_frame_rate", "guessed_time", "untimed_frames", "other")
    notes = [IngestNote(kind, 3, kind) for kind in kinds]
    step = ingest_module.TimeStep.parse("1 fs")
    assert ingest_module.final_notes(notes, step, "fs", 3) == [notes[-1]]
    assert ingest_module.final_notes(notes[-1:], None, "1", 3)[-1].kind == "untimed_frames"
    assert ingest_module.final_notes(notes[-1:], None, "1", 1) == notes[-1:]  # one frame: no time


def test_an_untimed_xyz_gets_the_same_untimed_frames_note(tmp_path, capsys):
    source = tmp_path / "plain.xyz"
    source.write_text("1\n\nH 0 0 0\n1\n\nH 0 0 0.1\n1\n\nH 0 0 0.2\n")
    ingest_module.ingest([source], tmp_path / "out.h5")
    expected = f"{source}: note: {ingest_module.UNTIMED_DETAIL}"
    assert capsys.readouterr().err.splitlines().count(expected) == 1
    assert _recorded_notes(tmp_path / "out.h5") == [
        IngestNote("untimed_frames", 3, ingest_module.UNTIMED_DETAIL)
    ]
