"""Ingest notes: the trace of everything a reader drops, guesses, renames or reinterprets.

A reader never changes data silently. When the underlying library or our own parser has to
guess (elements from atom names), drop (atoms of a second alternate location, motion rows past
the header's frame count), reinterpret (a placeholder unit cell) or rename something, the reader
adds one `IngestNote` to its `StreamedSystem.notes`. `ingest` prints each note as one line on
stderr (``<source>: <detail>``) once the system is written, and records all of them in the H5MD
parameters as ``ingest_notes`` (a JSON list of ``{"kind", "count", "detail"}``), so the trace
travels with the data and `info` can show it later.

Notes may be added while chunks are read (a short last record is only seen at the end), which is
why they are collected in a list the reader keeps appending to rather than in the header.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from dynforecast.console import counted  # noqa: F401  (the readers' notes import it here)

#: Parameter key under /parameters/dynforecast/<system> holding the notes (a JSON string).
NOTES_PARAMETER = "ingest_notes"


@dataclass(frozen=True)
class IngestNote:
    """One kind of change a reader made to what the file said.

    ``kind`` is a stable machine-readable tag (e.g. ``guessed_elements``, ``dropped_altloc``,
    ``ignored_rows``); ``count`` how many atoms, frames or records it concerns; ``detail`` the
    one-line human explanation, without the file name (ingest prefixes the source).
    """

    kind: str
    count: int
    detail: str

    def line(self, source: str) -> str:
        """The stderr line for this note."""
        return f"{source}: note: {self.detail}"


def notes_to_json(notes: Iterable[IngestNote]) -> str:
    """The ``ingest_notes`` parameter value for ``notes``."""
    return json.dumps([asdict(note) for note in notes])


def notes_from_json(text: str | None) -> list[IngestNote]:
    """Notes recorded by `notes_to_json`; an absent parameter (None or "") gives none."""
    if not text:
        return []
    return [IngestNote(str(n["kind"]), int(n["count"]), str(n["detail"])) for n in json.loads(text)]
