"""What mdtraj drops, guesses or reinterprets in a molecular topology, found and reported.

molecular.py reads topologies with mdtraj; this module compares mdtraj's result with what the
file says and repairs or reports every difference as an `IngestNote` (io/notes.py):

- PDB (`audit_pdb`): element columns. Where columns 77-78 are blank or not an element, mdtraj
  guessed from the first letters of the name (CHARMM's POT -> Po); those atoms get
  `elements.guess_elements` instead and one ``guessed_elements`` note. Atom and residue names as
  written in the file replace mdtraj's PDB-standard renames (its pdbNames.xml). Insertion codes,
  alternate-location indicators and HETATM flags, which mdtraj's topology has no place for,
  become parameters (``insertion_codes``, ``altlocs``, ``hetero``) that the PDB writer writes
  back; records of second alternate locations (merged by mdtraj into the first) are counted in a
  ``dropped_altloc`` note. Models are cut where mdtraj cuts them (`pdb_models`: ENDMDL, END,
  MODEL), and later models whose names or columns differ from the first's (mdtraj keeps the
  first's) are one ``differing_models`` note.
- PDB occupancy, B-factor and formal charge (`dropped_columns_notes`, every PDB ingest reads,
  topology or trajectory): not stored; records where they are not 1, 0, 0 are counted in one
  ``dropped_columns`` note naming the columns.
- GRO (`audit_gro`): atom and residue names as written replace mdtraj's renames (OW -> O), as
  for PDB. The format has no element column and mdtraj's guess reads a sodium ion NA as
  nitrogen: every element is guessed by `guess_elements`, with a note.
- PSF: mdtraj takes elements from masses (and CHARMM ion names): a ``elements_from_masses`` note.
- PRMTOP without ATOMIC_NUMBER: guessed from names like GRO, with a note.

Placeholder cells and library warnings are turned into notes by `warning_notes`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dynforecast.console import counted
from dynforecast.io.elements import atomic_numbers, guess_elements, guess_summary
from dynforecast.io.notes import IngestNote


def _apply_guess(fields: dict, where: np.ndarray, how: str) -> IngestNote | None:
    """Replace species/elements of atoms ``where`` [N] bool by name guesses; the note saying so."""
    count = int(where.sum())
    if count == 0:
        return None
    parameters = fields["parameters"]
    names = np.asarray(fields["names"], dtype=str)
    guessed = guess_elements(
        names[where], parameters["residue_names"][where], parameters["residue_indices"][where]
    )
    elements = parameters["elements"].astype("<U3")
    elements[where] = guessed
    parameters["elements"] = elements
    species = np.asarray(fields["species"], dtype=np.int32).copy()
    species[where] = atomic_numbers(guessed)
    fields["species"] = species
    unknown = int((guessed == "").sum())
    tail = f"; {unknown} fit no element (stored as 0)" if unknown else ""
    return IngestNote(
        "guessed_elements",
        count,
        f"{how}: guessed the elements of {counted(count, 'atom')} from their names "
        f"({guess_summary(names[where], guessed)}){tail}",
    )


def audit_pdb(path: Path, topology, fields: dict) -> list[IngestNote]:
    """Repair ``fields`` (from `molecular.topology_fields`) of the PDB ``path``; return notes."""
    from dynforecast.io.pdb_models import model_differences
    from dynforecast.io.pdb_records import read_atom_columns, read_pdb_bytes

    columns = read_atom_columns(path)
    notes = dropped_columns_notes(path)
    differences = model_differences(read_pdb_bytes(path))
    if differences is not None:
        notes.append(IngestNote("differing_models", differences.models, differences.detail()))
    if columns.names.size != topology.n_atoms:  # a layout mdtraj read differently: say so
        return [
            *notes,
            IngestNote(
                "unaligned_records",
                abs(columns.names.size - topology.n_atoms),
                f"{columns.names.size} ATOM/HETATM records in the first MODEL but mdtraj made "
                f"{topology.n_atoms} atoms; insertion codes, alternate locations, HETATM flags and "
                f"element columns were not kept",
            ),
        ]
    parameters = fields["parameters"]
    fields["names"] = columns.names.tolist()
    parameters["residue_names"] = columns.residue_names
    element_column = np.char.upper(columns.element_columns)
    element_column = np.where(element_column == "D", "H", element_column)
    named = atomic_numbers(element_column) > 0
    note = _apply_guess(fields, ~named, "no element column (PDB columns 77-78)")
    if note is not None:
        notes.append(note)
    if (columns.insertion_codes != "").any():
        parameters["insertion_codes"] = columns.insertion_codes
    if (columns.altlocs != "").any():
        parameters["altlocs"] = columns.altlocs
    if columns.hetero.any():
        parameters["hetero"] = columns.hetero.astype(np.int8)
    if columns.merged_altlocs:
        kept = sorted(set(columns.altlocs.tolist()) - {""})
        notes.append(
            IngestNote(
                "dropped_altloc",
                columns.merged_altlocs,
                f"dropped {columns.merged_altlocs} atom records of alternate location(s) "
                f"{', '.join(columns.dropped_locations)}; kept the first location of each atom "
                f"({', '.join(kept) or 'blank'}), recorded in the altlocs parameter",
            )
        )
    return notes


def dropped_columns_notes(path: Path) -> list[IngestNote]:
    """The ``dropped_columns`` note of a PDB whose occupancy/B-factor/charge columns are not the
    defaults (1, 0, 0) anywhere; none when they are, as in files dynforecast writes."""
    from dynforecast.io.pdb_records import dropped_values

    found = dropped_values(path)
    parts = [
        f"{label} not {default} in {count}"
        for label, count, default in (
            ("occupancy", found.occupancy, "1"),
            ("B-factor", found.bfactor, "0"),
            ("formal charge", found.charge, "0"),
        )
        if count
    ]
    if not parts:
        return []
    return [
        IngestNote(
            "dropped_columns",
            found.any,
            f"PDB columns not stored: {', '.join(parts)} of the {found.records} ATOM/HETATM "
            "records (all MODELs)",
        )
    ]


def audit_gro(path: Path, fields: dict) -> list[IngestNote]:
    """Names of a GRO topology as written (not mdtraj's PDB-standard renames), and its elements
    (none in the format) guessed from them by `guess_elements`."""
    from dynforecast.io.gro_frames import written_names

    written = written_names(path, len(fields["names"]))
    if written is not None:
        fields["names"] = written[0]
        fields["parameters"]["residue_names"] = np.asarray(written[1], dtype=str)
    where = np.ones(len(fields["names"]), dtype=bool)
    note = _apply_guess(fields, where, "GRO files have no elements")
    return [note] if note is not None else []


def audit_psf(fields: dict) -> list[IngestNote]:
    """The note that a PSF's elements come from masses (mdtraj's reading; the format has none)."""
    count = len(fields["names"])
    virtual = int((np.asarray(fields["species"]) == 0).sum())
    tail = f"; {virtual} massless atoms are virtual sites (element 0)" if virtual else ""
    return [
        IngestNote(
            "elements_from_masses",
            count,
            f"PSF files have no elements: the elements of {counted(count, 'atom')} were taken from their "
            f"masses and CHARMM ion names{tail}",
        )
    ]


_PRMTOP_ATOMIC_NUMBER = re.compile(rb"^%FLAG ATOMIC_NUMBER", re.MULTILINE)


def audit_prmtop(path: Path, fields: dict) -> list[IngestNote]:
    """An AMBER topology without ATOMIC_NUMBER: elements guessed from names, with a note."""
    if _PRMTOP_ATOMIC_NUMBER.search(Path(path).read_bytes()):
        return []
    where = np.ones(len(fields["names"]), dtype=bool)
    note = _apply_guess(fields, where, "no ATOMIC_NUMBER section")
    return [note] if note is not None else []


#: mdtraj's warning when it discards a CRYST1 it takes for a placeholder.
_PLACEHOLDER_CELL = "Unlikely unit cell vectors detected"


def warning_notes(messages: list[str], cryst1: str | None = None) -> list[IngestNote]:
    """Notes for warnings mdtraj raised while reading (each distinct message once)."""
    notes = []
    for message in dict.fromkeys(messages):
        if _PLACEHOLDER_CELL in message:
            record = f" ({cryst1.strip()})" if cryst1 else ""
            notes.append(
                IngestNote(
                    "placeholder_cell",
                    1,
                    f"unit cell{record} too small for the atoms, treated as a placeholder: "
                    f"stored without a box",
                )
            )
        else:
            notes.append(IngestNote("library_warning", 1, f"mdtraj: {message}"))
    return notes
