"""CHARMM/X-PLOR PSF topologies whose residue ids carry insertion codes (``185A``).

mdtraj's PSF reader converts the residue id with ``int()`` and fails on ``185A`` (PSFError),
although CHARMM writes such ids for PDB-derived structures and MDAnalysis reads them as residue
185, insertion code A. `load_psf` lets mdtraj read the file as it is; only when it refuses the
residue ids does it write a copy whose ids lose the trailing letters, read that, and return the
insertion codes (one per atom) so that they travel as the ``insertion_codes`` parameter.

The NATOM section layout (CHARMM's psfres.src): atom id, segment id, residue id, residue name,
atom name, type, charge, mass, ...; the residue id is the third whitespace-separated field.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

_NATOM = re.compile(r"^\s*(\d+)\s+!NATOM", re.MULTILINE)
_RESID_WITH_CODE = re.compile(r"^(\s*\S+\s+\S+\s+)(-?\d+)([A-Za-z]+)(\s)")


def _is_residue_id_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "PSFError" and "residue number" in str(exc)


def load_psf(path: Path):  # -> tuple[mdtraj.Topology, np.ndarray | None]
    """mdtraj Topology of the PSF ``path`` and its insertion codes [N] str (None if none).

    Raises what mdtraj raises for any other problem (the caller names the file).
    """
    import mdtraj

    try:
        return mdtraj.load_psf(str(path)), None
    except Exception as exc:
        if not _is_residue_id_error(exc):
            raise
        original = exc
    text = path.read_text(encoding="latin-1")
    header = _NATOM.search(text)
    if header is None:
        raise original
    n_atoms = int(header.group(1))
    start = header.end() + 1
    lines = text[start:].split("\n", n_atoms)
    if len(lines) <= n_atoms:
        raise original
    atoms, rest = lines[:n_atoms], lines[n_atoms]
    codes = np.full(n_atoms, "", dtype="<U4")
    cleaned = []
    for index, line in enumerate(atoms):  # once per topology, as mdtraj's own reader loops
        match = _RESID_WITH_CODE.match(line)
        if match is not None:
            codes[index] = match.group(3)
            line = (
                match.group(1) + match.group(2) + " " * len(match.group(3)) + line[match.end(3) :]
            )
        cleaned.append(line)
    body = text[:start] + "\n".join([*cleaned, rest])
    with tempfile.TemporaryDirectory(prefix="dynforecast-psf-") as scratch:
        copy = Path(scratch) / path.name
        copy.write_text(body, encoding="latin-1")
        topology = mdtraj.load_psf(str(copy))
    return topology, codes
