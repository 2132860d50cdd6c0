"""Split an XYZ / extended XYZ file into frames, with line numbers, before ase parses them.

ase's extxyz reader finds frames itself, and ends the file at the first empty or whitespace-only
line where an atom count is expected: frames after a blank line between frames were silently
lost. This scanner walks the count lines itself and hands ase only whole frames:

- blank lines before a count line (between frames, or before the first) carry no data and are
  skipped; their number and first line are reported (`FrameScanner.blank_lines`) so that ingest
  can note them. Blank lines at the end of the file are ordinary and not reported.
- a count line must hold one non-negative integer; anything else is an `InputError` naming the
  line (ADF-style ``VEC`` cell lines after the atoms end up here too).
- a frame the file ends inside (a trajectory cut off by a killed job) is not returned; its frame
  index, line and how many of its atom lines exist are kept in `FrameScanner.truncated`.

Reading is line-based and streaming: one frame's lines are in memory at a time. ``.gz`` and
``.bz2`` files are decompressed on the fly; bytes that are not UTF-8 become U+FFFD (a bad
symbol then fails to parse, naming its line).
"""

from __future__ import annotations

import bz2
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TextIO

from dynforecast.errors import InputError

_COUNT = re.compile(r"\s*([0-9]+)\s*")


@dataclass(frozen=True)
class RawFrame:
    """One frame's text: ``index`` (0-based, in the file), ``line`` (1-based line number of its
    count line), ``comment`` (the comment line, newline stripped) and ``atoms`` (its atom lines,
    with their newlines)."""

    index: int
    line: int
    comment: str
    atoms: list[str]

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def first_atom_line(self) -> int:
        return self.line + 2

    def text(self) -> str:
        """The frame as XYZ text, ready for ase's parser."""
        return f"{self.n_atoms}\n{self.comment}\n" + "".join(self.atoms)


@dataclass(frozen=True)
class Truncated:
    """The frame a file ends inside: its index, count line, atom lines present and declared."""

    index: int
    line: int
    present: int
    declared: int


def open_text(path: Path) -> TextIO:
    """``path`` as text, decompressing ``.gz`` / ``.bz2``; undecodable bytes become U+FFFD."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


class FrameScanner:
    """Iterate over the frames of an open XYZ stream (see module docstring).

    After (or during) iteration, ``blank_lines`` is (count, first line number) of the skipped
    blank lines that were followed by a frame, and ``truncated`` the frame the file ended
    inside, if any.
    """

    def __init__(self, stream: TextIO, path: Path) -> None:
        self.stream = stream
        self.path = path
        self.blank_lines: tuple[int, int] = (0, 0)
        self.truncated: Truncated | None = None

    def __iter__(self) -> Iterator[RawFrame]:
        stream, path = self.stream, self.path
        line_number = 0  # lines consumed so far
        index = 0
        blank_count, first_blank = 0, 0
        while True:
            line = stream.readline()
            if not line:
                return
            line_number += 1
            if not line.strip():
                if blank_count == 0:
                    first_blank = line_number
                blank_count += 1
                continue
            match = _COUNT.fullmatch(line)
            if match is None:
                got = line.strip()
                got = got if len(got) <= 60 else got[:57] + "..."
                raise InputError(
                    f"{path}: line {line_number}: expected the atom count of frame {index}, "
                    f"got {got!r}"
                )
            if blank_count:  # blank lines followed by a frame: reported
                total, first = self.blank_lines
                self.blank_lines = (total + blank_count, first or first_blank)
                blank_count = 0
            declared = int(match.group(1))
            count_line = line_number
            rest = list(islice(stream, declared + 1))
            line_number += len(rest)
            if len(rest) < declared + 1:
                self.truncated = Truncated(index, count_line, max(0, len(rest) - 1), declared)
                return
            comment = rest[0].rstrip("\r\n")
            yield RawFrame(index=index, line=count_line, comment=comment, atoms=rest[1:])
            index += 1
