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


def log(message: str) -> None:
    """One log line on stderr."""
    stderr.print(message, markup=False, soft_wrap=True)


def set_quiet(quiet: bool) -> None:
    """``--quiet``: silence logs, warnings and progress on stderr (errors are printed apart, by
    the CLI's error handler, and results go to stdout, so both remain)."""
    stderr.quiet = quiet
