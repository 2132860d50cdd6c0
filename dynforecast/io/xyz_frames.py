"""What one parsed XYZ frame says beyond its atoms: times, the unit cell, and what is not kept.

ase's extxyz parser turns a frame's comment line into ``Atoms.info`` (``key=value`` pairs; bare
words become keys with the value True), its ``Properties`` columns into ``Atoms.arrays`` and
calculator results (energy, forces, stress), and ``Lattice``/``pbc`` into the cell. This module
decides, for a whole file, how frame times are read and which of those values the H5MD file does
not keep, so that the reader can note them (`io.notes`) instead of dropping them silently.

Time keys (looked up case-insensitively, numbers only: the bare word ``time`` in a plain
comment is not a time):

    time=<t>                      the frame's time in fs (ASE's extxyz writer, CP2K, ours)
    timestep=<dt> or dt=<dt>      the MD step in fs; with step=<n> per frame, time = n * dt,
                                  else time = frame index * dt (one MD step per frame, a guess
                                  that is noted, since frames are often saved less often)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from dynforecast.io.notes import counted

#: Comment-line keys that give times, lower-cased.
TIME_KEYS = ("time",)
STEP_SIZE_KEYS = ("timestep", "dt", "time_step")
STEP_KEYS = ("step", "md_step", "nstep")
#: Per-atom properties (extxyz names) that become H5MD data; the rest is noted as not kept.
KEPT_PROPERTIES = frozenset({"species", "Z", "pos", "momenta"})
_PROPERTIES = re.compile(r"""Properties\s*=\s*["']?([^"'\s]+)""")


def is_number(value: object) -> bool:
    """True for ints and floats (NumPy's too), not for bools, strings or arrays."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def lookup(info: dict, keys: tuple[str, ...]) -> tuple[str, object] | None:
    """The first (key as written, value) of ``info`` whose lower-cased key is in ``keys`` and
    whose value is a number."""
    for key, value in info.items():
        if key.lower() in keys and is_number(value):
            return key, value
    return None


@dataclass(frozen=True)
class Layout:
    """The atom-line columns a frame's ``Properties`` declares (plain XYZ: ``symbol x y z``).

    ``values``: numbers of values per atom line; ``species``: column of the element symbol or
    None; ``names``: the property names as written (``species``, ``pos``, ``forces``, ...).
    """

    values: int
    species: int | None
    names: tuple[str, ...]

    @property
    def has_positions(self) -> bool:
        return "pos" in self.names

    @property
    def not_kept(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in KEPT_PROPERTIES)


def columns(comment: str) -> Layout:
    """The `Layout` of a frame from its comment line (cached per ``Properties`` string)."""
    match = _PROPERTIES.search(comment)
    return _layout(match.group(1) if match else "species:S:1:pos:R:3")


@lru_cache(maxsize=64)
def _layout(properties: str) -> Layout:
    fields = properties.split(":")
    total, species = 0, None
    for name, width in zip(fields[::3], fields[2::3], strict=False):
        if name == "species":
            species = total
        total += int(width) if width.isdigit() else 1
    return Layout(total, species, tuple(fields[::3]))


@dataclass(frozen=True)
class Clock:
    """How a file's frame times are read (frame 0 decides; every frame must agree).

    ``mode``: "time" (``time=`` in fs), "step" (step key x step size, fs), "index" (frame index
    x step size, fs) or "none" (frame index, unit "1"). ``key``/``step_key`` are the keys as
    written in the file; ``step_size`` the MD step in fs.
    """

    mode: str
    key: str = ""
    step_key: str = ""
    step_size: float = 0.0

    @property
    def time_unit(self) -> str:
        return "1" if self.mode == "none" else "fs"

    @classmethod
    def of(cls, info: dict) -> Clock:
        if (time := lookup(info, TIME_KEYS)) is not None:
            return cls("time", key=time[0])
        size = lookup(info, STEP_SIZE_KEYS)
        if size is not None and float(size[1]) > 0 and np.isfinite(float(size[1])):
            step = lookup(info, STEP_KEYS)
            if step is not None:
                return cls("step", key=size[0], step_key=step[0], step_size=float(size[1]))
            return cls("index", key=size[0], step_size=float(size[1]))
        return cls("none")

    def used_keys(self) -> set[str]:
        return {k for k in (self.key, self.step_key) if k}

    def note_detail(self) -> str | None:
        """What the clock assumed, for the ``guessed_time`` note (None when nothing)."""
        if self.mode == "step":
            return (
                f"frame times are {self.step_key} x {self.key}={self.step_size:g}, "
                f"{self.key} taken as fs"
            )
        if self.mode == "index":
            return (
                f"frame times are frame index x {self.key}={self.step_size:g}, taken as fs, "
                f"one MD step per frame (no {'/'.join(STEP_KEYS)} key); give --time-step if "
                "frames were saved less often"
            )
        return None


@dataclass
class NotKept:
    """Tally of what the parsed frames carried that the H5MD file does not keep."""

    per_atom: set[str] = field(default_factory=set)
    per_frame: set[str] = field(default_factory=set)
    comment_frames: int = 0
    first_comment: str = ""
    value_frames: int = 0

    def add(self, atoms, comment: str, used: set[str]) -> None:
        """Count one frame (ase ``Atoms``; ``comment`` its raw comment line)."""
        self.per_atom.update(columns(comment).not_kept)
        results = atoms.calc.results if atoms.calc is not None else {}
        per_atom = {k for k, v in results.items() if np.ndim(v) >= 1 and k != "stress"}
        values = {k for k, v in atoms.info.items() if k not in used and v is not True}
        values |= set(results) - per_atom
        words = [k for k, v in atoms.info.items() if k not in used and v is True]
        if values:
            self.per_frame.update(values)
            self.value_frames += 1
        if words and not values:
            if not self.comment_frames:
                self.first_comment = comment.strip()
            self.comment_frames += 1

    def notes(self) -> list[tuple[str, int, str]]:
        """(kind, count, detail) of each note."""
        out = []
        if self.per_atom:
            names = ", ".join(sorted(self.per_atom))
            out.append(("dropped_properties", len(self.per_atom), f"per-atom {names} not kept"))
        if self.per_frame:
            names = ", ".join(sorted(self.per_frame))
            out.append(
                (
                    "dropped_values",
                    self.value_frames,
                    f"comment-line values {names} of {counted(self.value_frames, 'frame')} "
                    "not kept",
                )
            )
        if self.comment_frames:
            text = self.first_comment
            text = text if len(text) <= 40 else text[:37] + "..."
            out.append(
                (
                    "dropped_comments",
                    self.comment_frames,
                    f"comment lines of {counted(self.comment_frames, 'frame')} not kept "
                    f"(the first: {text!r})",
                )
            )
        return out
