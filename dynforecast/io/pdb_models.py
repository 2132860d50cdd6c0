"""Where a PDB's models begin and end, as mdtraj splits them, and what differs between them.

mdtraj's pdbstructure ends a model at any line starting with ``END`` (``ENDMDL`` or ``END``) and
starts one at ``MODEL``; the next ATOM/HETATM record after an end starts a new model. So a PDB
with ``MODEL`` records but no ``ENDMDL``, and several single-model PDBs concatenated, each
closed by ``END`` (no ``MODEL`` at all), are trajectories of one frame per model. `model_spans`
reproduces that split, so that the columns mdtraj's topology does not keep (`pdb_records`) are
read from the same first model mdtraj made its atoms from, and `pdb.model_cells` finds each
model's CRYST1.

mdtraj takes the topology from the first model only and reads later models as coordinates:
records of a later model whose atom names, residues, chains, alternate locations, insertion
codes, HETATM flags or element columns differ from the first model's are silently given the
first model's. `model_differences` finds them, so that ingest can say so in one note.

PDB format v3.3 columns (1-based): 1-6 record, 13-16 name, 17 altLoc, 18-21 resName, 22
chainID, 23-26 resSeq, 27 iCode, 77-78 element; the serial number (7-11) may differ freely.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

ATOM_RECORD = re.compile(rb"^(?:ATOM  |HETATM)[^\r\n]*", re.MULTILINE)
_BOUNDARY = re.compile(rb"^(?:END|MODEL)", re.MULTILINE)
_WIDTH = 80
#: (label, first column, stop column) 0-based, of what must match between models.
_FIELDS = (
    ("record type", 0, 6),
    ("atom names", 12, 16),
    ("alternate locations", 16, 17),
    ("residue names", 17, 21),
    ("chains", 21, 22),
    ("residue numbers", 22, 26),
    ("insertion codes", 26, 27),
    ("element columns", 76, 78),
)


def model_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, stop) byte ranges of ``data``'s models in mdtraj's split (module doc).

    A model's range starts where the previous model's ends, so header records before its atoms
    (a concatenated PDB's CRYST1) belong to it. Ranges without ATOM/HETATM records are merged into
    the next; a file without any gives [].
    """
    cuts = [0, *(m.start() for m in _BOUNDARY.finditer(data)), len(data)]
    spans: list[tuple[int, int]] = []
    start = 0
    for a, b in itertools.pairwise(cuts):
        if ATOM_RECORD.search(data, a, b):
            spans.append((start, b))
            start = b
    return spans


def record_block(lines: list[bytes]) -> np.ndarray:
    """uint8 [n, 80] of records ``lines``, cut or blank-padded to 80 columns (in C)."""
    block = np.array(lines, dtype=f"S{_WIDTH}").view(np.uint8).reshape(len(lines), _WIDTH).copy()
    block[block == 0] = ord(" ")
    return block


@dataclass(frozen=True)
class ModelDifferences:
    """Later models whose records differ from the first model's (see module doc).

    ``models``: how many models differ; ``n_models``: how many the file has; ``first``: the
    1-based number (in file order) of the first that differs, and ``line`` the line of its first
    differing record; ``fields``: labels of the columns that differ in any model.
    """

    models: int
    n_models: int
    first: int
    line: int
    fields: tuple[str, ...]

    def detail(self) -> str:
        return (
            f"{self.models} of {self.n_models} models differ from the first in "
            f"{', '.join(self.fields)} (the first: model {self.first}, line {self.line}); mdtraj "
            "reads them as coordinates of the first model's atoms, whose names and columns are "
            "stored"
        )


def model_differences(data: bytes) -> ModelDifferences | None:
    """Where later models' records differ from the first's, or None (one model, or all alike).

    Models with another record count are left to mdtraj, which refuses them. One regex scan and
    one comparison of fixed-width columns per model.
    """
    spans = model_spans(data)
    if len(spans) < 2:
        return None
    first = record_block(ATOM_RECORD.findall(data, *spans[0]))
    columns = np.concatenate([np.arange(a, b) for _, a, b in _FIELDS])
    reference = first[:, columns]
    labels = np.concatenate([np.full(b - a, k) for k, (_, a, b) in enumerate(_FIELDS)])
    differing: list[int] = []
    fields: set[int] = set()
    first_record = -1
    for number, span in enumerate(spans[1:], start=2):
        lines = ATOM_RECORD.findall(data, *span)
        if len(lines) != len(reference):
            continue
        unequal = record_block(lines)[:, columns] != reference  # [n, columns]
        if not unequal.any():
            continue
        differing.append(number)
        fields.update(np.unique(labels[unequal.any(axis=0)]).tolist())
        if first_record < 0:
            first_record = int(np.flatnonzero(unequal.any(axis=1))[0])
    if not differing:
        return None
    match = next(
        m
        for k, m in enumerate(ATOM_RECORD.finditer(data, *spans[differing[0] - 1]))
        if k == first_record
    )
    line = data.count(b"\n", 0, match.start()) + 1
    return ModelDifferences(
        models=len(differing),
        n_models=len(spans),
        first=differing[0],
        line=line,
        fields=tuple(_FIELDS[k][0] for k in sorted(fields)),
    )


def unequal_model(data: bytes) -> str | None:
    """Which model has another ATOM/HETATM record count than the first, worded for an error
    (mdtraj refuses such a file with "All MODELs must contain the same number of ATOMs",
    naming none), or None when every model has the first's count."""
    spans = model_spans(data)
    counts = [len(ATOM_RECORD.findall(data, *span)) for span in spans]
    for number, (count, span) in enumerate(zip(counts, spans, strict=True), start=1):
        if count != counts[0]:
            first_record = ATOM_RECORD.search(data, *span)
            line = data.count(b"\n", 0, first_record.start()) + 1 if first_record else 0
            return (
                f"model {number} of {len(spans)} (from line {line}) has {count} ATOM/HETATM "
                f"records, the first model {counts[0]}; every model must hold the same atoms "
                "(split the file into trajectories of equal models)"
            )
    return None
