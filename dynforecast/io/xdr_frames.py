"""Frame headers of GROMACS XTC and TRR files, checked before mdtraj's C readers see them.

mdtraj reads XTC/TRR with the xdrfile library, which trusts every header it reads: a frame whose
atom count is larger than the first frame's is decoded past the end of mdtraj's buffer, a
`smallidx` outside the table of "magic integers" indexes out of it, a compressed byte count larger
than the decoder's buffer overruns it, and a TRR header with zero atoms divides by zero (SIGFPE).
Each of these kills the whole process (SIGSEGV, SIGABRT, SIGFPE; found by fuzz/). This module
reads the headers itself, with plain file reads and NumPy, and raises an InputError naming the file,
the frame and its byte offset for the first header that is not what a GROMACS writer produces.

Layouts (XDR: big-endian 4-byte words; GROMACS's xdrfile and `gmx dump`):

- XTC frame: magic 1995, natoms, step, time (float), box (9 floats), natoms again; then for
  natoms <= 9, 3 * natoms raw floats; otherwise precision (float), minint (3 ints), maxint
  (3 ints), smallidx, byte count, and that many bytes of compressed coordinates padded to 4.
- TRR frame: magic 1993, 13, the string "GMX_trn_file" (length 12 + 12 bytes), then ir, e, box,
  vir, pres, top, sym, x, v, f sizes (bytes), natoms, step, nre, and time and lambda as floats or
  doubles (the precision is box_size / 9 or x_size / (3 natoms)); then box, vir, pres, x, v, f.

What the headers cannot show (garbage inside an XTC frame's compressed coordinates, which
xdrfile's decoder can still overrun by a few values) is handled by reading XTC in a child
process (`io/isolated.py`).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError

XTC_MAGIC = 1995
TRR_MAGIC = 1993
#: xdrfile's table of "magic integers" has 73 entries; the first 9 are unused (FIRSTIDX).
XTC_FIRST_SMALLIDX, XTC_LAST_SMALLIDX = 9, 72
_XTC_SHORT_HEAD = 56  # magic .. second natoms, before raw floats (natoms <= 9)
_XTC_HEAD = 92  # .. byte count, before the compressed bytes
_TRR_VERSION = b"GMX_trn_file"
_TRR_WORDS = 19  # magic, 13, 12, version (3 words), 10 sizes, natoms, step, nre
_TRR_VERSION_WORDS = struct.unpack(">3i", _TRR_VERSION)
_TRR_STEP_WORD = 17
#: Frames whose headers are compared at once (bounds the gather to ~10 MB).
_TRR_BLOCK = 65536


@dataclass(frozen=True)
class XdrScan:
    """What the headers say: the whole frames' MD steps, and bytes of a partial last frame.

    ``steps`` (int64 [F]) is the step number each frame header carries (GROMACS writes the
    integration step there; mdtraj does not report it), so ingest stores the file's steps.
    """

    steps: np.ndarray  # int64 [F], one per whole frame
    partial_bytes: int  # bytes after the last whole frame (a truncated write), 0 if none

    @property
    def n_frames(self) -> int:
        return int(self.steps.size)


def _fail(path: Path, frame: int, offset: int, problem: str) -> InputError:
    return InputError(f"{path}: frame {frame} (byte {offset}): {problem}")


def _count_error(
    path: Path, frame: int, offset: int, natoms: int, n_atoms: int, topology: str | Path
) -> InputError:
    """The atom-count mismatch, worded as for every trajectory format when it is frame 0's."""
    where = "" if frame == 0 else f"frame {frame} (byte {offset}): "
    return InputError(f"{path}: {where}{natoms} particles, but topology {topology} has {n_atoms}")


def _map(path: Path) -> mmap.mmap | bytes:
    with open(path, "rb") as handle:
        try:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return b""


def _xtc_compressed_limit(n_atoms: int) -> int:
    """Largest byte count xdrfile's decoder buffer holds: (int)(3 n * 1.2) ints less 3 words.

    A GROMACS writer never needs more than 12 bytes and 6 bits per atom, well below 14.4.
    """
    return 4 * (int(3 * n_atoms * 1.2) - 3) - 4


def scan_xtc(path: str | Path, n_atoms: int, *, topology: str | Path = "the topology") -> XdrScan:
    """Check every XTC frame header against the topology's ``n_atoms``; see the module doc.

    Raises InputError for a frame that is not an XTC frame (magic number), a frame of another
    atom count, a non-finite or non-positive precision, minint > maxint, a smallidx outside
    xdrfile's table, a byte count larger than the decoder's buffer. A frame that the file ends
    inside is not an error: it is reported as ``partial_bytes`` (a truncated write).
    The walk is one header read per frame (92 bytes), in Python: about 1 us per frame.
    """
    path = Path(path)
    data = _map(path)
    size = len(data)
    if size == 0:
        raise InputError(f"{path}: empty file (no XTC frames)")
    frames = offset = 0
    steps: list[int] = []
    unpack = struct.unpack_from
    limit = _xtc_compressed_limit(n_atoms)
    try:
        while offset < size:
            frame = frames
            if size - offset < _XTC_SHORT_HEAD:
                break
            magic, natoms, step = unpack(">iii", data, offset)
            if magic != XTC_MAGIC:
                raise _fail(
                    path,
                    frame,
                    offset,
                    f"not an XTC frame (magic number {magic}, expected {XTC_MAGIC})",
                )
            (natoms2,) = unpack(">i", data, offset + 52)
            if natoms != n_atoms or natoms2 != n_atoms:
                shown = natoms if natoms != n_atoms else natoms2
                raise _count_error(path, frame, offset, shown, n_atoms, topology)
            if natoms <= 9:
                length = _XTC_SHORT_HEAD + 12 * natoms
            else:
                if size - offset < _XTC_HEAD:
                    break
                precision, *bounds = unpack(">f6i", data, offset + 56)
                smallidx, count = unpack(">ii", data, offset + 84)
                if not (np.isfinite(precision) and precision > 0):
                    raise _fail(path, frame, offset, f"invalid precision {precision!r}")
                if any(lo > hi for lo, hi in zip(bounds[:3], bounds[3:], strict=True)):
                    raise _fail(path, frame, offset, f"invalid coordinate range {bounds}")
                if not XTC_FIRST_SMALLIDX <= smallidx <= XTC_LAST_SMALLIDX:
                    raise _fail(path, frame, offset, f"invalid compression index {smallidx}")
                if not 0 <= count <= limit:
                    raise _fail(
                        path,
                        frame,
                        offset,
                        f"compressed size {count} bytes is impossible for {natoms} atoms",
                    )
                length = _XTC_HEAD + (count + 3) // 4 * 4
            if offset + length > size:
                break
            frames += 1
            steps.append(step)
            offset += length
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    return XdrScan(np.asarray(steps, dtype=np.int64), size - offset)


def _trr_layout(
    path: Path, frame: int, offset: int, words: tuple, n_atoms: int, topology: str | Path
) -> int:
    """Bytes of a TRR frame from its first 19 header words, which are checked."""
    magic, slen, strlen = words[:3]
    if magic != TRR_MAGIC:
        raise _fail(
            path, frame, offset, f"not a TRR frame (magic number {magic}, expected {TRR_MAGIC})"
        )
    if slen != 13 or strlen != 12 or words[3:6] != _TRR_VERSION_WORDS:
        raise _fail(path, frame, offset, "damaged TRR header (version string)")
    ir, e, box, vir, pres, top, sym, x, v, f, natoms = words[6:17]
    if natoms != n_atoms:
        raise _count_error(path, frame, offset, natoms, n_atoms, topology)
    if ir or e or top or sym:
        raise _fail(path, frame, offset, "damaged TRR header (sizes of unused sections)")
    real = box // 9 if box else x // (3 * natoms) if x else v // (3 * natoms) if v else 0
    if real not in (4, 8):
        raise _fail(path, frame, offset, "damaged TRR header (no box, positions or velocities)")
    for value, expected in (
        (box, 9),
        (vir, 9),
        (pres, 9),
        (x, 3 * natoms),
        (v, 3 * natoms),
        (f, 3 * natoms),
    ):
        if value not in (0, expected * real):
            raise _fail(path, frame, offset, f"damaged TRR header (section of {value} bytes)")
    if x == 0:
        raise _fail(
            path,
            frame,
            offset,
            "frame without positions (velocities or forces only); write positions in every "
            "frame (gmx trjconv) before ingest",
        )
    return 4 * _TRR_WORDS + 2 * real + box + vir + pres + x + v + f


def _same_layout(
    data, offset: int, length: int, words: tuple, size: int, steps: list[np.ndarray]
) -> int:
    """How many whole frames from ``offset`` on repeat the header ``words`` (>= 1), by NumPy.

    Frame k's words are at ``offset + k * length``; all but the MD step must equal ``words``.
    The MD steps of those frames are appended to ``steps`` (one int64 array per block).
    """
    expected = np.asarray(words, dtype=np.int64)
    total = (size - offset) // length
    done = 0
    while done < total:
        count = min(_TRR_BLOCK, total - done)
        start = offset + done * length
        view = np.frombuffer(
            data, dtype=">i4", count=((count - 1) * length) // 4 + _TRR_WORDS, offset=start
        )
        rows = view[(np.arange(count) * (length // 4))[:, None] + np.arange(_TRR_WORDS)]
        del view
        block_steps = rows[:, _TRR_STEP_WORD].astype(np.int64)
        rows[:, _TRR_STEP_WORD] = expected[_TRR_STEP_WORD]
        bad = np.flatnonzero((rows != expected).any(axis=1))
        if bad.size:
            steps.append(block_steps[: int(bad[0])])
            return done + int(bad[0])
        steps.append(block_steps)
        done += count
    return total


def scan_trr(path: str | Path, n_atoms: int, *, topology: str | Path = "the topology") -> XdrScan:
    """Check every TRR frame header against the topology's ``n_atoms``; see the module doc.

    Frames of one layout (the usual case) are checked at once with NumPy: the header words of
    every frame are gathered at multiples of the first frame's size and compared with its words.
    Where a frame differs (GROMACS writes velocities every nstvout steps, so sizes may vary) the
    rest is walked frame by frame. Raises InputError as `scan_xtc` does, and for a frame without
    positions (mdtraj would return uninitialised memory as its coordinates).
    """
    path = Path(path)
    data = _map(path)
    size = len(data)
    if size == 0:
        raise InputError(f"{path}: empty file (no TRR frames)")
    frames = offset = 0
    steps: list[np.ndarray] = []
    try:
        while size - offset >= 4 * _TRR_WORDS:
            frame = frames
            words = struct.unpack_from(f">{_TRR_WORDS}i", data, offset)
            length = _trr_layout(path, frame, offset, words, n_atoms, topology)
            if offset + length > size:
                break
            same = _same_layout(data, offset, length, words, size, steps)
            frames += same
            offset += same * length
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    return XdrScan(np.concatenate([np.zeros(0, np.int64), *steps]), size - offset)
