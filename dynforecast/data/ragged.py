"""Index arithmetic for ragged groups (windows of different node or edge counts)."""

from __future__ import annotations

import numpy as np


def ragged_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For consecutive groups of sizes ``counts``: (group of each element, index inside its group).

    The vectorised replacement of ``for g, c in enumerate(counts): for i in range(c): ...``,
    used to lay out the nodes and edges of a batch of windows of different sizes.

    Shapes: counts [G] -> ([sum(counts)], [sum(counts)]), both int64.
    """
    counts = np.asarray(counts, dtype=np.int64)
    group = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    return group, np.arange(group.size, dtype=np.int64) - first[group]


def group_offsets(counts: np.ndarray) -> np.ndarray:
    """int64 [G]: where each group starts in the concatenation (exclusive cumulative sum)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.cumsum(counts) - counts
