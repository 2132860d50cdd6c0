"""Build, cache and load the package's C kernels (``dynforecast/ops/csrc/*.c``) through ctypes.

Each kernel is compiled on first use with the system's C compiler (``$CC``, else ``cc``/``gcc``),
once per dtype (``-DREAL=float`` or ``double``), trying ``-O3 -march=native -fopenmp`` first,
then without OpenMP (single-threaded), then without ``-march=native``. Builds land in
``$DYNFORECAST_KERNELS``, else ``kernels/`` in the project's cache (``$DYNFORECAST_CACHE``,
``$XDG_CACHE_HOME/dynforecast`` or ``~/.cache/dynforecast``), under a name keyed by
the source, the compiler and flags and the CPU's feature flags, so that nodes of a heterogeneous
cluster sharing a home directory never load each other's ``-march=native`` builds; each build is
written to a temporary file and renamed, so DDP ranks racing to build it are safe. No compiler,
or a failed build, is not an error: `load_kernel` says why, and the callers use torch's path.
``DYNFORECAST_FUSED=0`` turns every kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dynforecast.console import log  # build notices: stderr, silenced by --quiet

SOURCES = Path(__file__).with_name("csrc")
ENV_SWITCH = "DYNFORECAST_FUSED"
# Reassociation lets the compiler vectorise the kernels' dot products (results stay
# deterministic for a build); neither flag links crtfastmath, so the process's denormal and
# rounding modes are untouched.
BASE_FLAGS = [
    "-O3", "-shared", "-fPIC", "-std=gnu99", "-ffp-contract=fast",
    "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math",
]  # fmt: skip
DTYPE_FLAGS = {
    torch.float32: ["-DREAL=float"],
    torch.float64: ["-DREAL=double", "-DREAL_IS_DOUBLE"],
}
# GCC's own vectorisation of the scalar loops keeps its default width: -mprefer-vector-width=512
# measured slower on an AVX-512 Xeon. The tiled products pick their width in kernel_math.h.
FLAG_CHOICES = (["-march=native", "-fopenmp"], ["-march=native"], [])


@dataclass
class Build:
    """A loaded kernel library (None where it could not be built) and how it came to be."""

    library: ctypes.CDLL | None
    reason: str


_builds: dict[tuple[str, torch.dtype], Build] = {}
_lock = threading.Lock()


KERNELS_ENV = "DYNFORECAST_KERNELS"


def cache_dir() -> Path:
    """``$DYNFORECAST_KERNELS`` (e.g. node-local disk on a cluster), else ``kernels/`` in the
    project's cache (`dynforecast.data.builtin.cache_dir`: ``$DYNFORECAST_CACHE``, else
    ``$XDG_CACHE_HOME/dynforecast``, else ``~/.cache/dynforecast``)."""
    kernels = os.environ.get(KERNELS_ENV)
    if kernels:
        return Path(kernels)
    from dynforecast.data.builtin import cache_dir as project_cache

    return project_cache() / "kernels"


def _cpu_signature() -> str:
    """The CPU's feature flags (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC`` split as a shell would (``CC="ccache gcc"`` works), else
    ``cc`` or ``gcc`` on PATH; None where there is none."""
    words = shlex.split(os.environ.get("CC", ""))
    if words:
        return words
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path) -> bool:
    """Whether ``target`` is a complete build: its SHA-256 matches the sidecar written with it.

    A truncated or foreign file of that name is rebuilt instead of loaded: loading a truncated
    shared library can kill the process with SIGBUS, beyond any Python error handling.
    """
    sidecar = target.with_name(target.name + ".sha256")
    try:
        return sidecar.read_text().strip() == _digest(target)
    except OSError:
        return False


def _compile(compiler: list[str], source: Path, flags: list[str], target: Path) -> str | None:
    """Compile ``source`` to ``target`` atomically; None on success, else the reason."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return _compile_into(compiler, source, flags, target)
    except OSError as error:  # an unwritable or mistyped cache: the torch path runs instead
        return f"cannot write the kernel cache {target.parent}: {error.strerror or error}"


def _compile_into(compiler: list[str], source: Path, flags: list[str], target: Path) -> str | None:
    shown = " ".join(compiler)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        command = [*compiler, *flags, str(source), "-o", str(partial), "-lm"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{shown}: {error}"
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["failed"])[-1]
            return f"{shown} exited with {result.returncode}: {last}"
        if not partial.is_file():
            return f"{shown} exited with 0 but wrote no {target.name}"
        sidecar = Path(scratch) / (target.name + ".sha256")
        sidecar.write_text(_digest(partial) + "\n")
        # racing ranks: each rename is atomic, and a .so and sidecar from two different (but
        # equally valid) builds only fail verification, which rebuilds
        os.replace(partial, target)
        os.replace(sidecar, target.with_name(target.name + ".sha256"))
    return None


_SWITCH_OFF = ("0", "false", "no", "off")
_SWITCH_ON = ("", "1", "true", "yes", "on")


def kernels_switched_off() -> bool:
    """Whether ``DYNFORECAST_FUSED`` turns the kernels off (0, false, no, off; case-insensitive).

    Raises UsageError for a value that is neither that nor 1, true, yes, on or empty, so that a
    typo such as ``DYNFORECAST_FUSED=flase`` does not silently keep them on.
    """
    text = os.environ.get(ENV_SWITCH, "").strip().lower()
    if text in _SWITCH_OFF:
        return True
    if text in _SWITCH_ON:
        return False
    from dynforecast.errors import UsageError

    raise UsageError(
        f"environment variable {ENV_SWITCH}: expected 0/false/no/off or 1/true/yes/on "
        f"(got {os.environ[ENV_SWITCH]!r})"
    )


def _load(target: Path, declare: Callable[[ctypes.CDLL], None]) -> tuple[ctypes.CDLL | None, str]:
    """The library at ``target`` with its signatures declared, else None and why."""
    try:
        library = ctypes.CDLL(str(target))
        declare(library)
    except (OSError, AttributeError) as error:  # unloadable, or lacking the kernel's symbols
        return None, str(error)
    return library, ""


def _build(name: str, dtype: torch.dtype, declare: Callable[[ctypes.CDLL], None]) -> Build:
    compiler = _compiler()
    if compiler is None:
        return Build(None, "no C compiler found ($CC, cc, gcc)")
    shown = " ".join(compiler)
    source = SOURCES / f"{name}.c"
    # The headers are part of every build's key: a changed header must not load a stale build.
    text = source.read_bytes() + b"".join(p.read_bytes() for p in sorted(SOURCES.glob("*.h")))
    reasons: list[str] = []
    announced = False

    def compile_to(target: Path, flags: list[str]) -> str | None:
        nonlocal announced
        if not announced:
            announced = True
            log(
                f"building the fused CPU kernel {name} ({dtype}) with {shown}, once per "
                f"machine (cache {target.parent}) ..."
            )
        return _compile(compiler, source, flags, target)

    for extra in FLAG_CHOICES:
        flags = BASE_FLAGS + extra + DTYPE_FLAGS[dtype]
        key = hashlib.sha256(
            text + " ".join([*compiler, *flags]).encode() + _cpu_signature().encode()
        ).hexdigest()[:16]
        target = cache_dir() / f"{name}-{key}.so"
        compiled = not _verified(target)
        reason = compile_to(target, flags) if compiled else None
        if reason is None:
            library, reason = _load(target, declare)
            if library is None and not compiled:
                # A complete-looking cache file that does not load (overwritten, foreign):
                # rebuild it with the same flags rather than fall back to weaker ones.
                log(f"the cached kernel {target} does not load ({reason}); rebuilding it")
                reason = compile_to(target, flags)
                if reason is None:
                    library, reason = _load(target, declare)
            if library is not None:
                return Build(library, f"built with {shown} {' '.join(extra)}".strip())
        if reason not in reasons:
            reasons.append(reason)
    why = "; ".join(reasons)
    if announced:
        log(f"the fused CPU kernel {name} ({dtype}) could not be built ({why}); torch ops run")
    return Build(None, why)


def load_kernel(name: str, dtype: torch.dtype, declare: Callable[[ctypes.CDLL], None]) -> Build:
    """The kernel ``csrc/<name>.c`` for ``dtype``, built on first use; ``declare`` sets the
    ctypes signatures of its functions. Cached for the process (also when the build failed).
    Raises UsageError for an unreadable ``DYNFORECAST_FUSED`` (`kernels_switched_off`)."""
    if kernels_switched_off():
        return Build(None, f"{ENV_SWITCH}={os.environ[ENV_SWITCH]}")
    if dtype not in DTYPE_FLAGS:
        return Build(None, f"dtype {dtype} (float32 and float64 only)")
    with _lock:
        key = (name, dtype)
        if key not in _builds:
            _builds[key] = _build(name, dtype, declare)
        return _builds[key]


def pointer(tensor: torch.Tensor | None) -> int | None:
    """The data pointer ctypes passes for a contiguous CPU tensor (None for NULL)."""
    return None if tensor is None else tensor.data_ptr()
