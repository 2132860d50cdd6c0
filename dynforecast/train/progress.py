"""Training progress on stderr: a Rich bar on a terminal, one plain line per epoch otherwise.

Batch logs (SLURM output files, CI) must stay readable, so the bar is only drawn when stderr is
a terminal; the per-epoch summary line is printed in both cases. Only rank 0 reports.
"""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dynforecast import console


class EpochProgress:
    """Context manager: ``start_epoch`` / ``advance`` / ``end_epoch(line)``."""

    def __init__(self, enabled: bool = True, interactive: bool | None = None) -> None:
        self.enabled = enabled
        self.interactive = console.is_interactive() if interactive is None else interactive
        self._progress: Progress | None = None
        self._task: int | None = None

    def __enter__(self) -> EpochProgress:
        if self.enabled and self.interactive:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console.stderr,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int = 0) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"epoch {epoch}/{epochs}", total=batches, completed=done
            )

    def advance(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)

    def log(self, line: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            console.log(line)
