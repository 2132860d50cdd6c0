"""The data-driven defaults behind "auto": data kind, window, split fractions, batch size.

Why a rule per data kind and not per model: estag, sake and egnn trained with defaults on the same
file must see the same windows and be scored against the same baselines, so the window depends
on the data only.

Rule (documented in the README, printed by `train`):

1. Data kind: "skeleton" (a BVH hierarchy is recorded), "protein" (residue data), "molecule"
   (atoms: species > 0), else "particles" (N-body and other point systems).
2. The kind's protocol window: protein = ESTAG's AdK window (T=10, D=5), molecule = ESTAG's
   MD17 window (T=10, D=10), skeleton = ESTAG's motion window (T=10, D=5), particles = T=10, D=1;
   the target is D frames after the last past frame.
3. Split: a file that records its split (`generate --recipe`) keeps it; 10 or more systems are
   split by whole systems (80/10/10); fewer are split chronologically within each system,
   80/10/10, or 60/20/20 where 80/10/10 leaves fewer than `MIN_WINDOWS` windows in the
   validation or the test split.
4. When neither fraction set leaves `MIN_WINDOWS` validation and test windows (short
   trajectories), the spacing D is halved (down to 1), then T is lowered (down to 2), until one
   does; unset fields only: a window field or fractions the user gives are kept.
5. Batch size: the training windows / `TARGET_STEPS`, between 1 and `MAX_BATCH`, so an epoch is
   about ten optimiser steps or more; an explicit batch giving fewer than `MIN_STEPS` steps is
   warned about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dynforecast.data.splits import split_windows
from dynforecast.data.windows import WindowIndex, WindowSpec
from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory

#: Fewest validation and test windows the automatic window and split leave.
MIN_WINDOWS = 8
TARGET_STEPS, MAX_BATCH, MIN_STEPS = 10, 100, 5
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SHORT_FRACTIONS = (0.6, 0.2, 0.2)
#: Window (T, D) of each data kind before shortening (the papers' protocol of that kind).
KIND_WINDOWS = {
    "protein": (10, 5, "ESTAG's AdK window"),
    "molecule": (10, 10, "ESTAG's MD17 window"),
    "skeleton": (10, 5, "ESTAG's motion window"),
    "particles": (10, 1, "the multi-frame N-body window"),
}
#: Parameters that identify a data kind.
BVH_KEY, RESIDUE_KEY = "bvh_parents", "residue_names"


def data_kind(systems: Sequence[Trajectory]) -> str:
    """ "skeleton", "protein", "molecule" or "particles" (of the first system; files hold one kind)."""
    first = systems[0]
    if BVH_KEY in first.parameters:
        return "skeleton"
    if RESIDUE_KEY in first.parameters and np.any(first.species > 0):
        return "protein"
    if np.all(first.species > 0):
        return "molecule"
    return "particles"


@dataclass(frozen=True)
class AutoWindow:
    """The chosen window fields, split fractions and why."""

    past_frames: int
    spacing: int
    fractions: tuple[float, float, float] | None
    reason: str


def _fits(
    counts: Sequence[int],
    spec: WindowSpec,
    mode: str,
    fractions: tuple[float, float, float],
    least: int,
) -> bool:
    index = WindowIndex(counts, spec)
    if len(index) == 0:
        return False
    try:
        parts = split_windows(index, mode, fractions, 0, spec=spec)
    except UsageError:
        return False
    return min(parts["val"].size, parts["test"].size) >= least and parts["train"].size > 0


def choose_window(
    systems: Sequence[Trajectory],
    mode: str,
    *,
    past_frames: int | None,
    spacing: int | None,
    horizon: int | None,
    fractions: tuple[float, float, float] | None,
) -> AutoWindow:
    """Rule 2-4 of the module docstring for a split ``mode`` ("chronological", "systems", ...).

    Given fields are kept. When no candidate leaves `MIN_WINDOWS` validation and test windows,
    the longest one leaving at least one is taken; when none does, the shortest, and the split
    itself then reports what is missing.
    """
    kind = data_kind(systems)
    kind_t, kind_d, source = KIND_WINDOWS[kind]
    counts = [s.n_frames for s in systems]
    t_options = [past_frames] if past_frames else list(range(kind_t, 1, -1))
    d_options = [spacing] if spacing else _halvings(kind_d)
    f_options = [fractions] if fractions else [DEFAULT_FRACTIONS, SHORT_FRACTIONS]
    if mode not in ("chronological", "systems", "random", "random_systems"):
        f_options = [fractions]  # reference splits ignore fractions
    why = f"{kind} data: {source} (T={kind_t}, D={kind_d})"
    for least in (MIN_WINDOWS, 1):
        for t in t_options:
            for d in d_options:
                spec = WindowSpec(t, d, horizon)
                for option in f_options:
                    if _fits(counts, spec, mode, option or DEFAULT_FRACTIONS, least):
                        if (t, d) != (kind_t, kind_d) and not (past_frames and spacing):
                            why += (
                                f", shortened to T={t}, D={d} so that validation and test hold "
                                f"at least {least} window{'s' if least > 1 else ''} each "
                                f"({min(counts)} frames)"
                            )
                        return AutoWindow(t, d, option, why)
    return AutoWindow(t_options[-1], d_options[-1], f_options[-1], why)


def _halvings(spacing: int) -> list[int]:
    out = [spacing]
    while out[-1] > 1:
        out.append(max(1, out[-1] // 2))
    return out


def auto_batch_size(n_train: int) -> int:
    """Rule 5: training windows / TARGET_STEPS, clamped to [1, MAX_BATCH]."""
    return int(min(MAX_BATCH, max(1, n_train // TARGET_STEPS)))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size) if n_train else 0
