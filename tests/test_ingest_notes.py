"""Ingest notes: what a reader reports it changed is printed once and recorded in the file."""

from __future__ import annotations

import h5py

import dynforecast.io.ingest as ingest_module
from dynforecast.io.notes import NOTES_PARAMETER, IngestNote, notes_from_json


def _write_xyz(path):
    path.write_text("2\n\nH 0 0 0\nH 0 0 0.74\n2\n\nH 0 0 0.01\nH 0 0 0.75\n")


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
