"""Per-frame arrays a trajectory file holds that mdtraj's ``iterload`` does not read.

mdtraj returns positions, times and unit cells only; a GROMACS TRR may also hold velocities and
forces, an AMBER NetCDF trajectory ``velocities`` and ``forces`` variables, a GRO file velocities
(three more fixed-width fields on each atom line). Ingest keeps what
mdtraj returns, so `unread_arrays` names what was left in the file, for a note.

TRR frame header (GROMACS trrio, XDR big-endian): int magic 1993, an int and an XDR string
(``GMX_trn_file``), then int32 sizes ir, e, box, vir, pres, top, sym, x, v, f, natoms, ...; a
non-zero v or f size means the frame stores that array. AMBER NetCDF convention 1.0: optional
variables ``velocities`` and ``forces`` [frame, atom, spatial]. GRO: after the title and count
lines, an atom line is ``%5d%-5s%5s%5d`` (20 characters) then three position fields and, if the
file has velocities, three velocity fields; each field has one decimal point, so six or more
points after column 20 of the first atom line mean velocities.
"""

from __future__ import annotations

import struct
from pathlib import Path

from dynforecast.io.inputs import extension_of

NETCDF_EXTENSIONS = (".nc", ".netcdf", ".ncdf")
_TRR_MAGIC = 1993


def unread_arrays(path: str | Path) -> list[str]:
    """Names of per-frame arrays ("velocities", "forces") in ``path`` that ingest does not read.

    Looks at the first frame's header (TRR) or the variable list (NetCDF); an unreadable header
    gives [] (the reader itself reports broken files).
    """
    extension = extension_of(path)
    if extension == ".trr":
        return _trr_arrays(Path(path))
    if extension in NETCDF_EXTENSIONS:
        return _netcdf_arrays(Path(path))
    if extension == ".gro":
        return _gro_arrays(Path(path))
    return []


def _gro_arrays(path: Path) -> list[str]:
    with open(path, encoding="latin-1") as handle:
        handle.readline()  # title
        handle.readline()  # atom count
        first_atom = handle.readline()
    return ["velocities"] if first_atom[20:].count(".") >= 6 else []


def _trr_arrays(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(128)
    if len(head) < 12 or struct.unpack(">i", head[:4])[0] != _TRR_MAGIC:
        return []
    length = struct.unpack(">i", head[8:12])[0]
    offset = 12 + (length + 3) // 4 * 4
    if length < 0 or len(head) < offset + 40:
        return []
    sizes = struct.unpack(">10i", head[offset : offset + 40])
    return [name for name, size in (("velocities", sizes[8]), ("forces", sizes[9])) if size > 0]


def _netcdf_arrays(path: Path) -> list[str]:
    try:
        from scipy.io import netcdf_file

        handle = netcdf_file(str(path), "r", mmap=True)  # reads the header only
        names = set(handle.variables)
        handle.variables.clear()  # drop the views into the mapping so that it closes cleanly
        handle.close()
    except Exception:  # netCDF-4/HDF5 files or a broken header: mdtraj's reader will say
        return []
    return [name for name in ("velocities", "forces") if name in names]
