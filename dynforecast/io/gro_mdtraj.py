"""A GRO file as mdtraj's reader can parse it: titles whose ``t=`` mdtraj's pattern cannot read.

mdtraj's GRO reader takes a frame's time from its title line only when ``t=`` is followed by
digits, a point and digits (``t= *(\\d+\\.\\d+)``); a title with ``t=`` in any other form
(``t= 1``, ``t=-5.0``, ``t= 1e3``, ``t=`` at the end of the line, ``at=3``) makes it raise a bare
IndexError ("list index out of range"), and since its topology loader reads the whole file as a
trajectory, such a GRO could not be read at all. The times never come from mdtraj anyway
(`gro_frames.scan_gro` reads every title), so `mdtraj_readable` hands mdtraj a temporary copy
whose titles carry no ``t=`` (written ``t =``): positions, box and topology are mdtraj's, the
times ours. Files whose titles mdtraj reads are passed on as they are, with no copy.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: mdtraj's own pattern for a GRO title's time (formats/gro.py): digits, a point, digits.
_MDTRAJ_TIME = re.compile(r"t= *(\d+\.\d+)")


def titles_mdtraj_cannot_read(path: str | Path) -> bool:
    """Whether some title line has ``t=`` that mdtraj's pattern does not match.

    Walks title and count lines only (atom lines are skipped in C); a count line that is not a
    number ends the walk, leaving the broken file to mdtraj's own error.
    """
    with open(path, encoding="latin-1") as handle:
        while title := handle.readline():
            if "t=" in title and not _MDTRAJ_TIME.search(title):
                return True
            try:
                n_atoms = int(handle.readline())
            except ValueError:
                return False
            next(itertools.islice(handle, n_atoms + 1, n_atoms + 1), None)
    return False


def _copy_without_title_times(source: Path, target: Path) -> None:
    """``source`` to ``target`` byte for byte but for ``t=`` in title lines, written ``t =``."""
    with (
        open(source, encoding="latin-1", newline="") as read,
        open(target, "w", encoding="latin-1", newline="") as write,
    ):
        while title := read.readline():
            write.write(title.replace("t=", "t ="))
            count = read.readline()
            write.write(count)
            try:
                n_atoms = int(count)
            except ValueError:  # mdtraj reports the broken file itself; copy the rest as is
                shutil.copyfileobj(read, write)
                return
            write.writelines(itertools.islice(read, n_atoms + 1))


@contextlib.contextmanager
def mdtraj_readable(path: str | Path) -> Iterator[Path]:
    """``path``, or while the context lasts a temporary copy (in the system's temporary
    directory, removed on exit) whose titles mdtraj's GRO reader can parse; see the module doc."""
    path = Path(path)
    if not titles_mdtraj_cannot_read(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dynforecast-gro-") as directory:
        copy = Path(directory) / path.name
        _copy_without_title_times(path, copy)
        yield copy
