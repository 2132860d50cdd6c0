"""Train / validation / test splits of windows.

Windows of one trajectory overlap in time, so how they are split decides whether the test error
measures forecasting or recall:

* "chronological" (default): each system's frames are cut into three contiguous blocks in time
  (fractions of its frames); a window belongs to a split only if ALL its frames (past and
  target) lie in that split's block. Windows straddling a cut are dropped (the gap, span - 1
  starts per cut), so no window of one split shares any frame with a window of another.
* "random": windows shuffled with ``seed`` and cut by ``fractions``. This is the papers'
  protocol (ESTAG/EGNN lineage on MD17) and it is LEAKY: a test window typically shares frames
  with training windows. Use it only to compare with published numbers.
* "systems": whole systems to each split, in stored order (the first 80% of the systems train,
  ...). For the N-body set of independent trajectories this is the natural choice and, with
  fractions (3/7, 2/7, 2/7) of 7000 stream trajectories, EGNN's 3000/2000/2000 shortcut recipe.
  ``seed`` is unused.
* "random_systems": whole systems, assigned after a seeded shuffle of the systems.
* "md17_reference": ESTAG's MD17 protocol exactly (estag.md section 6.1; leaky like "random"):
  per system, candidate starts are frames 10000 .. F-10002 (the middle, after the file's last
  frame is dropped); with legacy ``RandomState(100)`` draw 10% of them without replacement for
  train, then 5% of the candidates' count from the rest for validation, then as many from what
  remains for test, and keep the first 500 / 2000 / 2000 in draw order. ``fractions`` and
  ``seed`` are ignored (the protocol pins them). For 211,762-frame aspirin the first train
  starts are 78845, 12943, 13421, 97777, 31657.
* "adk_reference": ESTAG's AdK protocol (estag.md section 6.2): the file's last frame is
  dropped, M = F - T*D, cuts at floor(0.6 M) and floor(0.8 M) on the START frame; windows near
  a cut share up to T*D frames with the next split (leaky at the two cuts). For 4187 frames
  and T=10, D=5: train starts 0-2481, validation 2482-3308, test 3309-4135. ``fractions`` and
  ``seed`` are ignored.

Counts are ``round(cumsum(fractions) * n)`` boundaries, so they always add up to n.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dynforecast.console import counted
from dynforecast.data.windows import WindowIndex, WindowSpec
from dynforecast.errors import UsageError

SPLIT_MODES = (
    "chronological",
    "random",
    "systems",
    "random_systems",
    "md17_reference",
    "adk_reference",
)
#: Modes whose windows per split depend on ``seed`` (the others ignore it).
SEEDED_MODES = frozenset({"random", "random_systems"})
ADK_CUTS = (0.6, 0.8)
#: ESTAG's MD17 split (md17/dataset.py, main_md.py): margin, draw fractions, seed, kept counts.
MD17_MARGIN = 10_000
MD17_SEED = 100
MD17_DRAW_FRACTIONS = (0.1, 0.05, 0.05)
MD17_KEEP = (500, 2000, 2000)
SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if values.size != 3 or values.min() < 0 or abs(values.sum() - 1.0) > 1e-6:
        raise UsageError(
            "split fractions must be three non-negative numbers (train, val, test) summing to 1 "
            f"(got {list(np.asarray(fractions).tolist())})"
        )
    return values


def _cut_points(fractions: np.ndarray, total: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two boundaries between train|val and val|test for ``total`` items (vectorised)."""
    first = np.rint(fractions[0] * np.asarray(total, dtype=np.float64)).astype(np.int64)
    second = np.rint((fractions[0] + fractions[1]) * np.asarray(total, dtype=np.float64))
    return first, second.astype(np.int64)


def _by_position(order: np.ndarray, fractions: np.ndarray) -> list[np.ndarray]:
    """Cut a sequence of items into three consecutive blocks by ``fractions``."""
    first, second = _cut_points(fractions, order.size)
    return [order[:first], order[first:second], order[second:]]


def _chronological(index: WindowIndex, spec: WindowSpec, fractions: np.ndarray) -> list[np.ndarray]:
    first_cut, second_cut = _cut_points(fractions, index.frame_counts)
    start = index.start
    end = start + spec.span - 1  # last frame a window touches (its target)
    first_cut, second_cut = first_cut[index.system], second_cut[index.system]
    train = end < first_cut
    val = (start >= first_cut) & (end < second_cut)
    test = start >= second_cut
    return [np.flatnonzero(mask) for mask in (train, val, test)]


def _by_systems(
    index: WindowIndex, fractions: np.ndarray, shuffle_seed: int | None
) -> list[np.ndarray]:
    used = np.unique(index.system)
    if shuffle_seed is not None:
        used = np.random.default_rng(shuffle_seed).permutation(used)
    blocks = _by_position(used, fractions)
    return [np.flatnonzero(np.isin(index.system, block)) for block in blocks]


def md17_reference_starts(n_frames: int) -> list[np.ndarray]:
    """ESTAG's MD17 start frames (train, val, test) for a file of ``n_frames`` frames, in draw order."""
    usable = n_frames - 1  # the reference drops the file's last frame first
    n_candidates = max(usable - 2 * MD17_MARGIN, 0)
    rng = np.random.RandomState(MD17_SEED)
    remaining = np.arange(n_candidates)
    drawn = []
    for fraction, keep in zip(MD17_DRAW_FRACTIONS, MD17_KEEP, strict=True):  # three draws
        size = min(int(fraction * n_candidates), remaining.size)
        picked = remaining[rng.choice(remaining.size, size=size, replace=False)]
        remaining = np.setdiff1d(remaining, picked)
        drawn.append(picked[:keep] + MD17_MARGIN)
    return drawn


def _md17_reference(index: WindowIndex) -> list[np.ndarray]:
    if index.spec.anchor_frame is not None:
        raise UsageError(
            "split mode 'md17_reference' needs windows at every start (no anchor_frame)"
        )
    windows_per_system = np.bincount(index.system, minlength=index.frame_counts.size)
    first_window = np.cumsum(windows_per_system) - windows_per_system
    parts: list[list[np.ndarray]] = [[], [], []]
    for system in np.unique(index.system):  # a loop over systems (MD17: one), not windows
        for part, starts in zip(
            parts, md17_reference_starts(int(index.frame_counts[system])), strict=True
        ):
            starts = starts[starts < windows_per_system[system]]
            part.append(first_window[system] + starts)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def _adk_reference(index: WindowIndex, spec: WindowSpec) -> list[np.ndarray]:
    if spec.anchor_frame is not None:
        raise UsageError(
            "split mode 'adk_reference' needs windows at every start (no anchor_frame)"
        )
    usable = index.frame_counts[index.system] - 1  # the reference drops the last frame
    span_frames = spec.past_frames * spec.spacing  # the reference's T*D (its target is s + TD)
    fits = index.start + spec.span <= usable
    m = index.frame_counts[index.system] - span_frames
    first_cut = np.floor(ADK_CUTS[0] * m).astype(np.int64)
    second_cut = np.floor(ADK_CUTS[1] * m).astype(np.int64)
    start = index.start
    masks = (start < first_cut, (start >= first_cut) & (start < second_cut), start >= second_cut)
    return [np.flatnonzero(mask & fits) for mask in masks]


def split_windows(
    index: WindowIndex,
    mode: str = "chronological",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    *,
    spec: WindowSpec | None = None,
) -> dict[str, np.ndarray]:
    """Window ids (sorted int64 arrays) of each split: {"train": ..., "val": ..., "test": ...}.

    ``spec`` defaults to the index's own; a split asked for (fraction > 0) that ends up with no
    window raises UsageError, since training or evaluating on nothing is never what was meant.
    """
    if mode not in SPLIT_MODES:
        raise UsageError(f"split mode must be one of {', '.join(SPLIT_MODES)} (got {mode!r})")
    values = _check_fractions(fractions)
    spec = index.spec if spec is None else spec
    if mode == "chronological":
        parts = _chronological(index, spec, values)
    elif mode == "md17_reference":
        parts = _md17_reference(index)
    elif mode == "adk_reference":
        parts = _adk_reference(index, spec)
    elif mode == "random":
        order = np.random.default_rng(seed).permutation(len(index))
        parts = [np.sort(part) for part in _by_position(order, values)]
    else:
        parts = _by_systems(index, values, seed if mode == "random_systems" else None)
    splits = {name: part.astype(np.int64) for name, part in zip(SPLIT_NAMES, parts, strict=True)}
    for name, fraction in zip(SPLIT_NAMES, values, strict=True):
        if fraction > 0 and splits[name].size == 0:
            pinned = mode in ("md17_reference", "adk_reference")  # these ignore fractions
            raise UsageError(
                f"split {mode!r}{'' if pinned else f' with fractions {values.tolist()}'} "
                f"leaves no {name} windows "
                f"({counted(len(index), 'window')} of span {spec.span} frames in "
                f"{counted(np.unique(index.system).size, 'system')}); use longer data, other fractions "
                "or another split mode"
            )
    return splits
