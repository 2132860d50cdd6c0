"""Text that HDF5 cannot store: an embedded NUL byte in a name or a text parameter.

h5py writes strings as variable-length C strings, which end at the first NUL, so it refuses them
("VLEN strings do not support embedded NULLs"). A NUL never belongs in the text formats we read
(PDB, PSF, GRO, XYZ, BVH, ASF, AMC): a file that has one is damaged or binary. `ingest` checks each
system's header before writing it, so that such a file is an InputError naming it and where the
NUL is, not an internal error from the writer (found by fuzz/ in ASF files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.errors import InputError
from dynforecast.io.trajectory import Trajectory


def _has_nul(value: object) -> bool:
    """Whether ``value`` (a str, a list of str or a NumPy string array) holds a NUL character.

    NumPy pads its fixed-width strings with NULs, so in a "U" array a NUL counts only where a
    non-NUL character follows it in the same string (vectorised over the array's code points).
    """
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return all(isinstance(v, str) for v in value) and "\x00" in "".join(value)
    array = np.asarray(value)
    if array.dtype.kind == "U" and array.size and array.dtype.itemsize:
        codes = array.reshape(-1).view(np.uint32).reshape(array.size, -1) != 0
        return bool((~codes[:, :-1] & codes[:, 1:]).any())
    if array.dtype.kind == "O":
        return "\x00" in "".join(str(item) for item in array.reshape(-1))
    return False


def check_storable_text(
    header: Trajectory, path: str | Path, topology: str | Path | None = None
) -> None:
    """Raise InputError if a name or text parameter of ``header`` holds a NUL byte.

    ``topology`` (the file names and residues may come from) is named with ``path``.
    """
    fields = {"names": header.names, **header.parameters}
    for key, value in fields.items():
        if _has_nul(value):
            where = f"{path} (with {topology})" if topology is not None else f"{path}"
            raise InputError(f"{where}: NUL byte in the text ({key}); a damaged or binary file?")
