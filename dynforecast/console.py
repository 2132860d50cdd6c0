"""Where output goes: results on stdout, logs and progress on stderr.

Keeping the two apart is what lets ``dynforecast info x.h5 --json | jq`` work in a pipeline while
progress is still visible on the terminal.
"""

from __future__ import annotations

import sys

from rich.console import Console

#: Logs, warnings, progress bars. Never parse this stream.
stderr = Console(stderr=True, highlight=False)


def is_interactive() -> bool:
    """True when stderr is a terminal: show Rich progress bars; else one plain line per step."""
    return sys.stderr.isatty()


_IRREGULAR_PLURALS = {"batch": "batches", "process": "processes"}


def counted(count: int, noun: str) -> str:
    """``"1 frame"``, ``"3 frames"``, ``"1 batch"``, ``"2 batches"``: a count with its noun.

    Messages name counts that are often 1 (one system, one frame, one step per epoch), and
    "1 systems" reads as a bug in the tool.
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {_IRREGULAR_PLURALS.get(noun, noun + 's')}"


def log(message: str) -> None:
    """One log line on stderr."""
    stderr.print(message, markup=False, soft_wrap=True)


def set_quiet(quiet: bool) -> None:
    """``--quiet``: silence logs, warnings and progress on stderr (errors are printed apart, by
    the CLI's error handler, and results go to stdout, so both remain)."""
    stderr.quiet = quiet
