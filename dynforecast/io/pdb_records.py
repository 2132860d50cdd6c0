"""The per-atom columns of a PDB that mdtraj's topology does not keep, read from the file itself.

mdtraj (molecular.py reads PDBs with it) drops, per atom: the record type (ATOM or HETATM), the
alternate-location indicator (column 17; atoms of a second location are merged into the first
and their coordinates dropped), the insertion code (column 27), and whether the element column
(77-78) was filled or the element guessed from the name. It also replaces residue and atom names
by PDB standard names (its pdbNames.xml) and discards a CRYST1 it considers a placeholder. This
module reads those columns from the first model (the topology's, cut where mdtraj cuts it:
`pdb_models.model_spans`) with one regex scan and
fixed-width numpy slicing (no Python loop over atoms), and reproduces which records mdtraj
merged, so that its atoms and these columns line up one to one.

`dropped_values` counts, over every MODEL, the records whose occupancy, B-factor or formal
charge differ from what the H5MD file implies (1, 0, 0): Trajectory has no place for them.

PDB format v3.3, section 9 (coordinate section): columns 1-6 record name, 13-16 atom name, 17
altLoc, 18-20 resName (21: a fourth character some MD codes write), 22 chainID, 23-26 resSeq, 27
iCode, 55-60 occupancy, 61-66 tempFactor, 77-78 element, 79-80 charge (e.g. "2+").
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.io.pdb_models import ATOM_RECORD, model_spans, record_block

_ATOM_RECORD = ATOM_RECORD
_CRYST1 = re.compile(rb"^CRYST1[^\r\n]*", re.MULTILINE)
_WIDTH = 80


@dataclass(frozen=True)
class PdbAtomColumns:
    """Columns of the ATOM/HETATM records that became mdtraj's atoms (first MODEL), each [N].

    ``hetero`` bool (HETATM); ``altlocs``, ``insertion_codes``, ``element_columns`` str (""
    where blank); ``names``, ``residue_names`` str as written in the file. ``merged_altlocs``:
    how many records mdtraj merged into an earlier atom as another alternate location, and
    ``dropped_locations`` the indicators of those records. ``cryst1``: the file's first CRYST1
    line (text) or None.
    """

    hetero: np.ndarray
    altlocs: np.ndarray
    insertion_codes: np.ndarray
    element_columns: np.ndarray
    names: np.ndarray
    residue_names: np.ndarray
    merged_altlocs: int
    dropped_locations: tuple[str, ...]
    cryst1: str | None


def read_pdb_bytes(path: str | Path) -> bytes:
    """The whole file (``.gz`` decompressed)."""
    return _read(Path(path))


def _read(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        return stream.read()


def _column(block: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Stripped str [n] of columns start..stop-1 (0-based) of fixed-width lines [n, 80]."""
    raw = np.ascontiguousarray(block[:, start:stop]).view(f"S{stop - start}").reshape(-1)
    return np.char.strip(np.char.decode(raw, "latin-1"))


def read_atom_columns(path: str | Path) -> PdbAtomColumns:
    """The columns of ``path``'s first-MODEL atoms that mdtraj keeps as atoms (see module)."""
    data = _read(Path(path))
    spans = model_spans(data)
    lines = _ATOM_RECORD.findall(data, *spans[0]) if spans else []
    cryst1 = _CRYST1.search(data)
    block = record_block(lines)
    record = _column(block, 0, 6)
    name = _column(block, 12, 16)
    altloc = _column(block, 16, 17)
    residue_name = _column(block, 17, 21)
    chain = _column(block, 21, 22)
    residue_id = _column(block, 22, 26)
    icode = _column(block, 26, 27)
    element = _column(block, 76, 78)
    merged = _merged_alternates(name, altloc, chain, residue_id, icode)
    keep = ~merged
    return PdbAtomColumns(
        hetero=record[keep] == "HETATM",
        altlocs=altloc[keep],
        insertion_codes=icode[keep],
        element_columns=element[keep],
        names=name[keep],
        residue_names=residue_name[keep],
        merged_altlocs=int(merged.sum()),
        dropped_locations=tuple(sorted(set(altloc[merged].tolist()))),
        cryst1=cryst1.group(0).decode("latin-1") if cryst1 else None,
    )


@dataclass(frozen=True)
class DroppedValues:
    """Records (all MODELs) whose columns hold what ingest does not store, and how many there are.

    ``occupancy`` counts records with an occupancy other than 1, ``bfactor`` a B-factor other
    than 0, ``charge`` a non-zero formal charge, ``any`` records with at least one of them; a
    value that is not a number counts as non-default (it is dropped all the same). Blank
    columns are the defaults.
    """

    records: int
    occupancy: int
    bfactor: int
    charge: int
    any: int


def _differs(text: np.ndarray, default: float) -> np.ndarray:
    """bool [n]: non-blank numeric columns ``text`` [n] str that are not ``default``."""
    filled = text != ""
    out = np.zeros(text.size, dtype=bool)
    try:
        out[filled] = text[filled].astype(np.float64) != default
    except ValueError:  # garbage in a column: counted one by one, unreadable is non-default
        out[filled] = [_float_or_nan(value) != default for value in text[filled]]
    return out


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def dropped_values(path: str | Path) -> DroppedValues:
    """Occupancy, B-factor and charge columns of every ATOM/HETATM record that differ from the
    defaults (see `DroppedValues`); a vectorised scan of fixed-width columns."""
    lines = _ATOM_RECORD.findall(_read(Path(path)))
    if not lines:
        return DroppedValues(0, 0, 0, 0, 0)
    block = record_block(lines)
    occupancy = _differs(_column(block, 54, 60), 1.0)
    bfactor = _differs(_column(block, 60, 66), 0.0)
    charge_text = _column(block, 78, 80)
    charge = np.char.strip(charge_text, "+-0") != ""  # "0", "0+", "+0" are no charge
    return DroppedValues(
        records=len(lines),
        occupancy=int(occupancy.sum()),
        bfactor=int(bfactor.sum()),
        charge=int(charge.sum()),
        any=int((occupancy | bfactor | charge).sum()),
    )


def _merged_alternates(
    name: np.ndarray,
    altloc: np.ndarray,
    chain: np.ndarray,
    residue_id: np.ndarray,
    icode: np.ndarray,
) -> np.ndarray:
    """bool [n]: records that mdtraj's pdbstructure merges into an earlier atom of the residue.

    pdbstructure starts a residue whenever chain, resSeq or iCode changes from the previous
    record; inside a residue a record whose atom name was seen already, with a different altLoc,
    adds a location to that atom instead of a new atom (one with the same altLoc is a new atom).
    """
    n = name.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    changed = np.ones(n, dtype=bool)
    changed[1:] = (
        (chain[1:] != chain[:-1]) | (residue_id[1:] != residue_id[:-1]) | (icode[1:] != icode[:-1])
    )
    residue_run = np.cumsum(changed)
    has_alt = altloc != ""
    if not has_alt.any():
        return np.zeros(n, dtype=bool)
    # Within a residue run, the first record of each atom name is the atom; a later one with the
    # same name and a different altLoc is merged into it.
    keys = np.char.add(np.char.add(residue_run.astype(str), "\x1f"), name)
    _, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first = first_index[inverse.reshape(-1)]
    return (first != np.arange(n)) & (altloc != altloc[first])
