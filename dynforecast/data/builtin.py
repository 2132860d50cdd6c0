"""The built-in data set: charged N-body trajectories, generated once and cached.

`dynforecast train` with no data file trains on it, so it must be small enough for a quick run
on a 2-core CPU: 300 trajectories of seed 43 (stream indices 0-299, fast mode, which is
bit-identical to exact mode on the machines tested; about 3 s to generate, 0.5 MB of arrays).
Its default task is "nbody-multiframe": T = 10 past frames at spacing 1 and the target 10 frames
(1000 steps) after the last one, over every start (30 windows per trajectory, 9000 in all),
fully connected graphs (20 directed edges), split by whole trajectories (240/30/30). This is
dynforecast's own multi-frame variant, NOT EGNN's standard frame 30 -> 40 task
(`PROTOCOLS["nbody-standard"]`), and its numbers must never be reported as that task's.

Cache directory: $DYNFORECAST_CACHE, else $XDG_CACHE_HOME/dynforecast, else
~/.cache/dynforecast. The file is written atomically (temporary file + rename), so concurrent
first runs and interrupted runs never leave a half file under the final name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.data.graphs import GraphSpec
from dynforecast.data.nbody import (
    EGNN_RECIPES,
    MODES,
    nbody_trajectories,
    simulate_nbody,
    simulate_recipe,
)
from dynforecast.data.windows import PROTOCOLS
from dynforecast.errors import OutputError, UsageError
from dynforecast.io.trajectory import Trajectory

BUILTIN_TRAJECTORIES = 300
BUILTIN_SEED = 43
BUILTIN_MODE = "fast"
#: Bump when the generator or the file layout changes, so stale caches are not reused.
BUILTIN_VERSION = 1
BUILTIN_TASK = "nbody-multiframe"
BUILTIN_WINDOWS = PROTOCOLS[BUILTIN_TASK]
BUILTIN_GRAPH = GraphSpec(kind="all_pairs")
BUILTIN_SPLIT = "systems"
BUILTIN_FRACTIONS = (0.8, 0.1, 0.1)


def _ranges(indices: np.ndarray) -> str:
    """Consecutive runs of stream indices as text: "0-2999, 10000-11999"."""
    if indices.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(indices) != 1)
    firsts = np.append(indices[0], indices[breaks + 1])
    lasts = np.append(indices[breaks], indices[-1])
    return ", ".join(f"{a}-{b}" for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True))


@dataclass(frozen=True)
class NBodyFileSummary:
    """What `generate_nbody_file` wrote (printed by ``dynforecast generate nbody``)."""

    path: Path
    n_trajectories: int
    seed: int
    mode: str
    streams: str
    seconds: float
    recipe: str | None = None

    def line(self) -> str:
        recipe = f"recipe {self.recipe}, " if self.recipe else ""
        return (
            f"wrote {self.path}: {self.n_trajectories} charged N-body trajectories "
            f"(49 frames x 5 particles, seed {self.seed}, {recipe}stream {self.streams}, "
            f"{self.mode} mode) in {self.seconds:.1f} s"
        )


def generate_nbody_file(
    path: Path,
    n_trajectories: int | None = None,
    seed: int = 43,
    *,
    mode: str = "exact",
    first_index: int = 0,
    recipe: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> NBodyFileSummary:
    """Simulate trajectories of the seed's stream and write them to H5MD, one system each.

    Either ``n_trajectories`` (default 1000, the set of nbody.md section 6) from
    ``first_index`` on, or an EGNN ``recipe`` (its train, validation and test trajectories in
    that order; split them with mode "systems" and fractions (3/7, 2/7, 2/7)).
    ``progress(done, total)`` is called as trajectories are integrated.
    """
    from dynforecast.console import log
    from dynforecast.io.atomic import check_output_path
    from dynforecast.io.h5md import write_h5md

    path = Path(path)
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")
    if recipe is not None and (n_trajectories is not None or first_index):
        raise UsageError("--recipe fixes the trajectories; drop --trajectories and --first-index")
    if recipe is not None and recipe not in EGNN_RECIPES:
        raise UsageError(f"--recipe must be one of {', '.join(EGNN_RECIPES)} (got {recipe!r})")
    check_output_path(path, overwrite=overwrite)  # fail before minutes of simulation, not after
    count = (
        sum(n for _, n in EGNN_RECIPES[recipe])
        if recipe
        else (1000 if n_trajectories is None else n_trajectories)
    )
    log(f"simulating {count} trajectories ({mode} mode)")
    started = time.perf_counter()
    report = None if progress is None else (lambda done: progress(done, count))
    if recipe is not None:
        arrays = simulate_recipe(recipe, seed, mode=mode, progress=report)
    else:
        arrays = simulate_nbody(count, seed, mode=mode, first_index=first_index, progress=report)
    systems = nbody_trajectories(arrays)
    if recipe is not None:
        record_recipe(systems, recipe)
    write_h5md(path, systems, overwrite=overwrite)
    return NBodyFileSummary(
        path,
        arrays.n_trajectories,
        seed,
        mode,
        _ranges(arrays.stream_indices),
        time.perf_counter() - started,
        recipe,
    )


def record_recipe(systems: list[Trajectory], recipe: str) -> None:
    """Record in each trajectory's parameters the recipe, its protocol and the trajectory's part.

    `train` with no options then uses the "nbody" preset (EGNN's frame 30 -> 40 task, all pairs,
    3000/2000/2000 by system; `dynforecast.train.presets`) and refuses a split that trains on the
    recipe's validation or test trajectories (`dynforecast.train.setup.check_recorded_split`).
    """
    from dynforecast.data.nbody import RECOMMENDED_PROTOCOL_KEY
    from dynforecast.train.setup import RECORDED_PROTOCOL_KEY, RECORDED_SPLIT_KEY

    parts = np.repeat(["train", "val", "test"], [count for _, count in EGNN_RECIPES[recipe]])
    for system, part in zip(systems, parts, strict=True):  # a loop over records, not math
        system.parameters.update(
            {
                RECORDED_PROTOCOL_KEY: "nbody",
                RECORDED_SPLIT_KEY: str(part),
                "recipe": recipe,
                RECOMMENDED_PROTOCOL_KEY: "nbody-standard",
            }
        )


def cache_dir() -> Path:
    """Where generated data is cached (see module docstring)."""
    if os.environ.get("DYNFORECAST_CACHE"):
        return Path(os.environ["DYNFORECAST_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dynforecast"
    return Path.home() / ".cache" / "dynforecast"


def builtin_dataset_path() -> Path:
    """The built-in data set's H5MD file, generated on first use (a few seconds) and cached."""
    from dynforecast.console import log

    name = f"nbody-seed{BUILTIN_SEED}-n{BUILTIN_TRAJECTORIES}-{BUILTIN_MODE}-v{BUILTIN_VERSION}.h5"
    path = cache_dir() / name
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{path.parent}: cannot create the cache directory ({exc.strerror or exc}); "
            "set DYNFORECAST_CACHE to a writable directory"
        ) from None
    log(f"generating the built-in N-body data set once: {path}")
    generate_nbody_file(path, BUILTIN_TRAJECTORIES, BUILTIN_SEED, mode=BUILTIN_MODE, overwrite=True)
    return path
