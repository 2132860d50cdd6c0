"""Frame times and atom names of a GRO file, read from its text because mdtraj's are not reliable.

mdtraj's GRO reader takes a frame's time from ``t=`` in the title line with the pattern
``t= *(\\d+\\.\\d+)``: if any frame lacks ``t=`` it returns no times and ``mdtraj.Trajectory``
numbers the frames 0, 1, 2 ... (of the frames it kept, so a stride renumbers them), which ingest
would store as picoseconds; ``t= 1.5e3`` reads as 1.5. `scan_gro` reads every title line
instead: frames that all carry ``t=`` get those times (ps), otherwise every frame is stored by
its frame index with the time unit "1", as for the other untimed formats, and a note says why.

mdtraj's GRO topology also renames residues and atoms to PDB standards (SOL -> HOH, OW -> O,
HW1 -> H1: its pdbNames.xml); `written_names` gives the names as written, which ingest stores,
as it does for PDB files.

GRO layout (GROMACS manual, "gro" file format): per frame a title line, a line with the atom
count N, N fixed-width atom lines, then the box line. Only the title and count lines are parsed;
the atom and box lines are skipped in C (`itertools.islice`), so the scan costs far less than
mdtraj's own pure-Python parse of the same file.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.console import counted

_TIME = re.compile(r"t=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
#: ``step= 5000`` as GROMACS writes it after ``t=`` (not ``timestep=`` or ``nstep=``).
_STEP = re.compile(r"(?<![A-Za-z_])step=\s*([-+]?\d+)(?![\d.eE])")


@dataclass(frozen=True)
class GroScan:
    """Per-frame times (ps, NaN where a title has no ``t=``) of the frames the scan could read,
    and their MD steps (``step=``; -1 where a title has none, see ``stepped_frames``)."""

    times: np.ndarray  # float64 [F]
    step_values: np.ndarray  # int64 [F], -1 where the title has no step=
    stepped_frames: int  # titles that carry step=

    @property
    def steps(self) -> np.ndarray | None:
        """The file's MD steps when every title line carries ``step=``, else None."""
        if self.n_frames and self.stepped_frames == self.n_frames:
            return self.step_values
        return None

    @property
    def n_frames(self) -> int:
        return int(self.times.size)

    @property
    def untimed_frames(self) -> int:
        """Frames whose title line carries no ``t=``."""
        return int(np.isnan(self.times).sum())


@dataclass(frozen=True)
class GroClock:
    """Times of a GRO's frames in ps, by file frame index (duck-types `dcd_header.DCDClock`)."""

    file_times: np.ndarray  # float64 [F]

    def times(self, frame_indices: np.ndarray) -> np.ndarray:
        return self.file_times[frame_indices]


class FrameIndexClock:
    """Times that are the file frame index (time unit "1"), whatever the stride."""

    def times(self, frame_indices: np.ndarray) -> np.ndarray:
        return frame_indices.astype(np.float64)


def scan_gro(path: str | Path) -> GroScan:
    """The ``t=`` of every frame's title line, up to the first frame the scan cannot follow.

    A frame whose atom-count line is not a number ends the scan there; mdtraj, which reads the
    same lines next, reports the broken file itself.
    """
    times: list[float] = []
    steps: list[int] = []
    stepped = 0
    with open(path, encoding="latin-1") as handle:
        while title := handle.readline():
            try:
                n_atoms = int(handle.readline())
            except ValueError:
                break
            found = _TIME.findall(title)
            times.append(float(found[-1]) if found else float("nan"))
            step = _STEP.findall(title)
            steps.append(int(step[-1]) if step else -1)
            stepped += bool(step)
            skip = n_atoms + 1  # the atom lines and the box line
            next(itertools.islice(handle, skip, skip), None)
    return GroScan(np.asarray(times, dtype=np.float64), np.asarray(steps, dtype=np.int64), stepped)


def stepless_detail(scan: GroScan) -> str | None:
    """The note of a GRO whose titles carry ``step=`` in some frames only (None otherwise)."""
    if scan.stepped_frames in (0, scan.n_frames):
        return None
    missing = scan.n_frames - scan.stepped_frames
    return (
        f"{missing} of {scan.n_frames} frames have no step= in their title line, so the "
        "stored steps are frame indices, not the file's MD steps"
    )


def untimed_detail(scan: GroScan) -> str:
    """The ``untimed_frames`` note of a GRO trajectory that is stored by frame index."""
    missing = scan.untimed_frames
    which = (
        "the title lines have no t="
        if missing == scan.n_frames
        else f"{missing} of {counted(scan.n_frames, 'frame')} have no t= in their title line"
    )
    return (
        f"{which}, so the file stores no usable times; time is the frame index "
        "(give --time-step, e.g. --time-step '2 ps')"
    )


def written_names(path: str | Path, n_atoms: int) -> tuple[list[str], list[str]] | None:
    """Atom and residue names of the first frame's atom lines as written (columns 11-15 and
    6-10), or None when the first frame does not have ``n_atoms`` atom lines."""
    with open(path, encoding="latin-1") as handle:
        lines = list(itertools.islice(handle, 2, 2 + n_atoms))
    if len(lines) != n_atoms:
        return None
    return [line[10:15].strip() for line in lines], [line[5:10].strip() for line in lines]
