"""The text of a PDB file: ATOM/HETATM, TER, MODEL, CRYST1, CONECT and REMARK records.

Written here rather than by mdtraj's writer because that one loses what the file had: it writes
every atom as ATOM, drops insertion codes and alternate locations, numbers MODELs from 0, cuts
residue names to 3 and atom names to 4 characters without a word. Layout (PDB format v3.3,
section 9): columns 1-6 record, 7-11 serial, 13-16 atom name (names shorter than 4 characters of
one-letter elements start in column 14), 17 altLoc, 18-21 resName (the fourth character in column
21 is what CHARMM/GROMACS write and mdtraj and MDAnalysis read), 22 chainID, 23-26 resSeq, 27
iCode, 31-54 x y z (8.3f, Angstrom), 55-60 occupancy, 61-66 tempFactor, 73-76 segID, 77-78
element. Serial numbers and resSeq wrap at 100000 and 10000 as mdtraj and VMD write them.

Speed: the per-atom part of each line is built once; every frame is then one C-level ``%``
format of one template over that frame's coordinates (no Python loop over atoms per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynforecast.errors import OutputError

#: mdtraj's and the PDB's CRYST1 layout (lengths in Angstrom, angles in degrees).
CRYST1_FORMAT = "CRYST1%9.3f%9.3f%9.3f%7.2f%7.2f%7.2f P 1           1 \n"
#: Range of %8.3f coordinate columns.
COORDINATE_RANGE = (-999.999, 9999.999)
#: Standard residues whose bonds readers rebuild from templates; other bonds go to CONECT
#: (mdtraj's and OpenMM's rule, which also lists CYS SG-SG disulfides).
STANDARD_RESIDUES = frozenset(
    "ALA ASN CYS GLU HIS LEU MET PRO THR TYR ARG ASP GLN GLY ILE LYS PHE SER TRP VAL "
    "A G C U I DA DG DC DT DI HOH".split()
)


@dataclass(frozen=True)
class AtomColumns:
    """Per-atom PDB columns [N], already clipped to their widths (see `pdb_atom_names`)."""

    hetero: np.ndarray  # bool
    names: np.ndarray  # str, at most 4 characters
    altlocs: np.ndarray  # str, "" or 1 character
    residue_names: np.ndarray  # str, at most 4 characters
    chain_ids: np.ndarray  # str, 1 character
    residue_ids: np.ndarray  # int
    insertion_codes: np.ndarray  # str, "" or 1 character
    segment_ids: np.ndarray  # str, at most 4 characters
    elements: np.ndarray  # str, at most 2 characters ("" unknown)
    residue_indices: np.ndarray  # int: atoms of one residue share it


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _name_field(name: str, element: str) -> str:
    """Columns 13-16: short names of one-letter elements start in column 14 (PDB convention)."""
    if len(name) < 4 and name[:1].isalpha() and len(element) < 2:
        return f" {name:<3}"
    return f"{name:<4}"


def atom_templates(
    columns: AtomColumns, *, with_bfactors: bool = False
) -> tuple[list[str], np.ndarray]:
    """(lines, serials): one ``%``-template per atom line and TER line, and each atom's serial.

    Built once per file (one pass over atoms); a TER record follows the last atom of each chain
    run, taking a serial number as readers expect. Each atom line takes x, y, z (Angstrom) and,
    ``with_bfactors``, its B-factor (``%6.2f``; else 0.00 is written).
    """
    n = columns.names.size
    chain_end = np.ones(n, dtype=bool)
    chain_end[:-1] = columns.chain_ids[1:] != columns.chain_ids[:-1]
    ters_before = np.concatenate([[0], np.cumsum(chain_end)[:-1]]) if n else np.zeros(0, int)
    serials = np.arange(1, n + 1) + ters_before
    lines: list[str] = []
    for i in range(n):
        record = "HETATM" if columns.hetero[i] else "ATOM  "
        element = str(columns.elements[i])
        prefix = (
            f"{record}{int(serials[i]) % 100000:5d} {_name_field(str(columns.names[i]), element)}"
            f"{columns.altlocs[i] or ' ':1}{columns.residue_names[i]:<4}{columns.chain_ids[i]:1}"
            f"{int(columns.residue_ids[i]) % 10000:4d}{columns.insertion_codes[i] or ' ':1}   "
        )
        suffix = f"      {columns.segment_ids[i]:<4}{element.upper():>2}  \n"
        bfactor = "%6.2f" if with_bfactors else "  0.00"
        lines.append(_escape(prefix) + "%8.3f%8.3f%8.3f  1.00" + bfactor + _escape(suffix))
        if chain_end[i]:
            ter = (
                f"TER   {(int(serials[i]) + 1) % 100000:5d}      {columns.residue_names[i]:<4}"
                f"{columns.chain_ids[i]:1}{int(columns.residue_ids[i]) % 10000:4d}"
                f"{columns.insertion_codes[i] or ' ':1}"
            )
            lines.append(_escape(f"{ter:<80}".rstrip()) + "\n")
    return lines, serials


def check_coordinates(positions_angstrom: np.ndarray, path) -> None:
    """OutputError when a coordinate does not fit PDB's %8.3f columns (naming the frame)."""
    low, high = COORDINATE_RANGE
    bad = ((positions_angstrom < low) | (positions_angstrom > high)).reshape(
        positions_angstrom.shape[0], -1
    )
    if bad.any():
        frame = int(np.flatnonzero(bad.any(axis=1))[0])
        value = float(positions_angstrom.reshape(bad.shape)[frame][bad[frame]][0])
        raise OutputError(
            f"{path}: coordinate {value:.6g} Angstrom in frame {frame} does not fit PDB's "
            f"columns ({low} .. {high}); export to .xyz or .extxyz instead"
        )


def conect_records(columns: AtomColumns, bonds: np.ndarray, serials: np.ndarray) -> str:
    """CONECT records for bonds that readers do not rebuild from residue templates.

    Bonds touching a non-standard residue, a HETATM atom, or a CYS SG-SG pair, each listed from
    both atoms, at most four partners per record (PDB format v3.3, CONECT).
    """
    if bonds.size == 0:
        return ""
    first, second = bonds[:, 0], bonds[:, 1]
    standard = np.isin(columns.residue_names, list(STANDARD_RESIDUES)) & ~columns.hetero
    disulfide = (
        (columns.names[first] == "SG")
        & (columns.names[second] == "SG")
        & (columns.residue_names[first] == "CYS")
        & (columns.residue_names[second] == "CYS")
    )
    listed = ~(standard[first] & standard[second]) | disulfide
    pairs = np.concatenate([bonds[listed], bonds[listed][:, ::-1]])
    if pairs.size == 0:
        return ""
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    atoms, starts = np.unique(pairs[:, 0], return_index=True)
    out = []
    for atom, partners in zip(
        atoms.tolist(), np.split(serials[pairs[:, 1]] % 100000, starts[1:]), strict=True
    ):
        for k in range(0, partners.size, 4):
            chunk = partners[k : k + 4]
            out.append(
                f"CONECT{int(serials[atom]) % 100000:5d}" + "".join(f"{p:5d}" for p in chunk)
            )
    return "\n".join(out) + "\n"


def forecast_remark(is_forecast: np.ndarray | None) -> str:
    """REMARK records saying which MODELs (numbered from 1) are forecasts, or "" without any."""
    if is_forecast is None or not np.asarray(is_forecast).any():
        return ""
    flags = np.asarray(is_forecast).astype(bool)
    given = _ranges(np.flatnonzero(~flags) + 1)
    predicted = _ranges(np.flatnonzero(flags) + 1)
    lines = [
        f"MODELs {predicted} are forecasts (predicted by dynforecast)",
        f"MODELs {given} are given frames" if given else "no MODEL is a given frame",
    ]
    return "".join(f"REMARK   1 {line}\n" for line in lines)


def _ranges(numbers: np.ndarray) -> str:
    """'1-10, 12' for sorted integers."""
    if numbers.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(numbers) != 1)
    starts = np.concatenate([[numbers[0]], numbers[breaks + 1]])
    ends = np.concatenate([numbers[breaks], [numbers[-1]]])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True))


def pdb_atom_names(names: np.ndarray, residue_indices: np.ndarray) -> tuple[np.ndarray, int]:
    """Names [N] of at most 4 characters, unique within each residue; and how many changed.

    A name longer than 4 characters (skeleton joints: ``LeftUpLeg``) becomes its first four
    characters if that is free in its residue, else its first three plus one of 0-9A-Z, else
    its first two plus two such characters. Names of 4 characters or fewer are kept.
    """
    names = np.asarray(names, dtype=str)
    long = np.char.str_len(names) > 4
    if not long.any():
        return names.astype("<U4"), 0
    out = names.astype(object)
    taken: dict[int, set[str]] = {}
    for i in np.flatnonzero(~long).tolist():
        taken.setdefault(int(residue_indices[i]), set()).add(str(names[i]))
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i in np.flatnonzero(long).tolist():
        used = taken.setdefault(int(residue_indices[i]), set())
        name = str(names[i])
        candidates = [name[:4]]
        candidates += [name[:3] + c for c in alphabet]
        candidates += [name[:2] + a + b for a in alphabet for b in alphabet]
        chosen = next((c for c in candidates if c not in used), None)
        if chosen is None:
            raise OutputError(f"more than {len(candidates)} atoms share the name prefix {name!r}")
        used.add(chosen)
        out[i] = chosen
    return out.astype("<U4"), int(long.sum())
