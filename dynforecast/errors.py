"""Errors a user can cause, each with the process exit code the CLI ends with.

The CLI catches `DynforecastError` and prints ``error: <message>`` as one line on stderr, then
exits with ``exit_code``; anything else is a bug and keeps its traceback. Library code raises the
most specific subclass with a message that names the file (or option) and the problem, so that the
one line is enough to act on. The codes are documented in README.md ("Exit codes").
"""

from __future__ import annotations

from pathlib import Path


class DynforecastError(Exception):
    """Base class of every error a user can cause; carries the exit code."""

    exit_code = 1


class UsageError(DynforecastError, ValueError):
    """A bad option value or a combination of options that cannot work (exit 2)."""

    exit_code = 2


class InputError(DynforecastError):
    """An input file is missing, unreadable, of an unknown format, malformed or inconsistent (exit 3)."""

    exit_code = 3


class OutputError(DynforecastError):
    """An output cannot be written: it exists (without --overwrite) or its place is unwritable (exit 4)."""

    exit_code = 4


class CompatibilityError(DynforecastError):
    """A checkpoint and a data file do not fit together: species, particle counts, units, spacing (exit 5)."""

    exit_code = 5


class DivergenceError(DynforecastError):
    """A rollout produced NaN or runaway coordinates; the frames made so far were kept (exit 6)."""

    exit_code = 6


class DistributedError(DynforecastError):
    """A distributed run cannot form its process group, or another rank ended or stopped
    answering; every rank stops and the run resumes from last.pt (exit 7)."""

    exit_code = 7


class Interrupted(DynforecastError):
    """Training stopped on SIGTERM/SIGUSR1 after writing a checkpoint; rerun to resume (exit 75).

    75 is EX_TEMPFAIL from sysexits.h: "try again later", which is what a requeued SLURM job does.
    """

    exit_code = 75

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code  # 130 (128 + SIGINT) after Ctrl-C


def describe_path(path: str | Path) -> str:
    """The form in which messages name a file: as the user typed it."""
    return str(path)
