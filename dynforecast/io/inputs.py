"""Checks every reader runs on an input path before handing it to a parsing library.

Libraries fail on a missing, empty or unreadable file with messages that do not name it (mdtraj:
"index 0 is out of bounds"); checking first gives one line that names the file and the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

from dynforecast.errors import InputError

#: Compression suffixes that belong to the format's extension (``x.pdb.gz`` is a ``.pdb.gz``).
_COMPRESSED = (".gz", ".bz2")


def extension_of(path: str | Path) -> str:
    """Lower-case extension including a compression suffix: ``.pdb``, ``.pdb.gz``, ``.xyz``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSED:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def check_input_file(path: str | Path) -> Path:
    """Return ``path`` if it is a readable, non-empty regular file; else raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return path
