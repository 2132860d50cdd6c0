"""Run one mutant through the CLI's ingest command in a forked child, with a timeout.

The child calls the `ingest` command function of `dynforecast.cli` (its `handle_errors` wrapper
included) with ``--debug`` semantics, so an exception that is not a `DynforecastError` reaches us
with its traceback, and a `DynforecastError` gives the exit code the CLI would. A fork per input
isolates state, survives segfaults in C readers (mdtraj's xdrfile, dcdplugin) and lets the parent
kill a hang; heavy modules are imported before forking, so a fork costs milliseconds.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Outcome:
    """What one input did: the CLI's exit code, and a finding kind with details, or None."""

    exit_code: int | None
    finding: str | None = None  # internal-error, hang, crash, leftover-file, bad-output, ...
    detail: str = ""
    signature: str = ""  # groups findings of one cause: exception type and where it was raised


def preload() -> None:
    """Import what ingest imports, once, in the parent, so that forked children start warm."""
    import ase.io  # noqa: F401
    import h5py  # noqa: F401
    import mdtraj  # noqa: F401

    import dynforecast.cli
    import dynforecast.io.info
    import dynforecast.io.ingest  # noqa: F401
    from dynforecast.io.quiet import show_library_output

    show_library_output(False)


def _child(inputs: list[Path], topology: Path | None, output: Path) -> dict:
    """Body of the child: ingest, then `info` on what was written (in-process, as the CLI does)."""
    from dynforecast import cli
    from dynforecast.errors import DynforecastError

    cli._state["debug"] = True  # re-raise everything; we classify as handle_errors would
    try:
        cli.ingest(
            inputs,
            output,
            topology=topology,
            name=None,
            select=None,
            stride=1,
            chunk_frames=None,
            time_step=None,
            overwrite=False,
        )
    except DynforecastError as exc:
        return {"exit_code": exc.exit_code, "message": str(exc)}
    except BaseException as exc:
        code = getattr(exc, "exit_code", None)
        if type(exc).__name__ == "Exit" and isinstance(code, int):
            return {"exit_code": code, "message": "typer.Exit"}
        return {
            "exit_code": 1,
            "finding": "internal-error",
            "detail": traceback.format_exc(),
            "signature": _signature(exc),
        }
    try:
        from dynforecast.io.info import describe_h5md, format_info

        format_info(describe_h5md(output))
    except BaseException as exc:
        return {
            "exit_code": 0,
            "finding": "bad-output",
            "detail": "dynforecast info failed on the written file:\n" + traceback.format_exc(),
            "signature": "info:" + _signature(exc),
        }
    return {"exit_code": 0}


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "dynforecast" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}@{where}"


def run_input(inputs: list[Path], topology: Path | None, output: Path, timeout: float) -> Outcome:
    """Ingest ``inputs`` into ``output`` in a child; then check the output directory."""
    read_end, write_end = os.pipe()
    scratch = _scratch_dir(output)
    before = _listing(inputs, topology)
    pid = os.fork()
    if pid == 0:  # the child: never return into the parent's code
        os.close(read_end)
        faulthandler.disable()  # a crash is reported by the parent, not dumped on its terminal
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.environ["TMPDIR"] = str(scratch)  # temporary files of ingest and its libraries
        tempfile.tempdir = str(scratch)
        try:
            result = _child(inputs, topology, output)
        except BaseException:
            result = {"exit_code": 1, "finding": "internal-error", "detail": traceback.format_exc()}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(result, pipe)
        os._exit(0)
    os.close(write_end)
    chunks, hang = [], ""
    start = time.monotonic()
    with os.fdopen(read_end, "r") as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], _POLL_S)
            if ready:
                chunks.append(pipe.read())
                break
            hang = _hang(pid, time.monotonic() - start, timeout)
            if hang:
                break
    if hang:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hang:
        return Outcome(None, "hang", hang, "hang")
    text = "".join(chunks)
    try:
        result = json.loads(text) if text else None
    except ValueError:  # the child died while writing its result
        result = None
    if os.WIFSIGNALED(status) or result is None or os.WEXITSTATUS(status) != 0:
        return _crash(status, result)
    outcome = Outcome(
        result["exit_code"],
        result.get("finding"),
        result.get("detail", ""),
        result.get("signature", ""),
    )
    if outcome.finding:
        return outcome
    return _check_directory(output, outcome, scratch, before, _listing(inputs, topology))


#: How often the parent looks at a running child (seconds).
_POLL_S = 0.05
#: A child blocked (sleeping, waiting on I/O) is a hang after this many times the timeout in wall
#: time, whatever CPU it used; one that computes is a hang once its CPU time passes the timeout.
WALL_FACTOR = 4.0


def _hang(pid: int, wall: float, timeout: float) -> str:
    """Why the child ``pid`` counts as hung after ``wall`` seconds, or "" if it does not (yet).

    The criterion is the CPU time of the child and its descendants (the forked XTC decode of
    io/isolated.py), not wall time, so a machine at load 6 does not turn slow inputs into
    findings; a child that uses no CPU but never answers is caught by the wall cap.
    """
    if wall <= timeout:
        return ""  # CPU time cannot exceed wall time: no need to look yet
    cpu = _cpu_seconds(pid)
    if cpu > timeout:
        return f"{cpu:.1f} s of CPU time without a result (limit {timeout:g} s)"
    if wall > WALL_FACTOR * timeout:
        return f"no result within {wall:.1f} s of wall time ({cpu:.1f} s CPU; limit {WALL_FACTOR * timeout:g} s)"
    return ""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (psutil)."""
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in tree:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue  # gone meanwhile
        total += times.user + times.system
    return total


def _crash(status: int, result: dict | None) -> Outcome:
    """A child killed by a signal, or gone without a whole result: a crash, whatever it said.

    A signal after a result still counts (heap corruption found when memory is freed, as glibc's
    "corrupted size vs. prev_size" abort does after mdtraj's XTC reader raised).
    """
    said = f"; it had reported exit {result['exit_code']}" if result else ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return Outcome(
            None, "crash", f"child killed by signal {sig} ({name}){said}", f"crash:{name}"
        )
    code = os.WEXITSTATUS(status)
    return Outcome(
        None,
        "crash",
        f"child exited with status {code} without a whole result{said}",
        f"crash:status{code}",
    )


def _scratch_dir(output: Path) -> Path:
    """The child's TMPDIR: beside the output, so a temporary file left anywhere is seen."""
    scratch = output.parent.parent / "tmp"
    scratch.mkdir(exist_ok=True)
    return scratch


def _listing(inputs: list[Path], topology: Path | None) -> set[Path]:
    """Files of the input directories (ingest must never write beside its inputs)."""
    folders = {p.parent for p in [*inputs, *([topology] if topology else [])]}
    return {f for folder in folders for f in folder.iterdir()}


def _check_directory(
    output: Path, outcome: Outcome, scratch: Path, before: set[Path], after: set[Path]
) -> Outcome:
    """A temporary file left behind (beside the output, in TMPDIR or beside the inputs), or an
    output written by a failed ingest, is a finding."""
    others = sorted(p.name for p in output.parent.iterdir() if p != output)
    others += sorted(f"$TMPDIR/{p.name}" for p in scratch.iterdir())
    others += sorted(f"(inputs)/{p.name}" for p in after - before)
    if others:
        return Outcome(
            outcome.exit_code,
            "leftover-file",
            f"left behind: {', '.join(others)}",
            "leftover-file",
        )
    if outcome.exit_code != 0 and output.exists():
        return Outcome(
            outcome.exit_code,
            "output-after-error",
            f"exit {outcome.exit_code} but {output.name} was written",
            "output-after-error",
        )
    return outcome
