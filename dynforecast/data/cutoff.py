"""A radius-graph cutoff derived from the data's own neighbour distances.

Why: a bond-less system (a C-alpha trace, a point cloud) needs a cutoff in the data's length unit,
and a fixed number (10 Angstrom) is wrong by 10x in nm and meaningless in a skeleton's or a
simulation's own units. Counting neighbours is unit-free: the cutoff is the distance within which a
typical particle sees ``neighbours`` others, so the mean in-degree of the radius graph is about
``neighbours`` whatever the unit or density.

Rule: for a few evenly spaced frames of every system, each particle's distance to its
``neighbours``-th nearest other particle (scipy's k-d tree, one vectorised query per frame); the
cutoff is the median of those distances over all particles and frames, times ``margin`` (1.05,
so the median particle keeps its ``neighbours``-th neighbour through small motions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from dynforecast.io.trajectory import Trajectory

#: Neighbours a typical particle gets in the derived radius graph (ESTAG/EGNN-style graphs of
#: proteins keep 10-20 C-alpha neighbours within 10 Angstrom).
DEFAULT_NEIGHBOURS = 16
#: Frames sampled per system (evenly spaced, first and last included).
SAMPLED_FRAMES = 5
MARGIN = 1.05


@dataclass(frozen=True)
class DerivedCutoff:
    """A cutoff and how it was found (for the start-of-run summary)."""

    cutoff: float
    neighbours: int
    frames: int

    def reason(self, unit: str) -> str:
        shown = "" if unit == "1" else f" {unit}"
        return (
            f"radius graph, cutoff {self.cutoff:.4g}{shown}: {MARGIN} x the median distance to "
            f"each particle's {self.neighbours}th nearest neighbour over {self.frames} frames "
            "(no bonds in the data)"
        )


def derive_cutoff(
    systems: Sequence[Trajectory], neighbours: int = DEFAULT_NEIGHBOURS
) -> DerivedCutoff:
    """The cutoff giving about ``neighbours`` neighbours per particle, in the data's length unit.

    Shapes: each system's positions [F, N, 3]. Systems of fewer than ``neighbours + 1`` particles
    use their largest k (N - 1). Raises ValueError for systems with fewer than two particles or no
    frames (the caller chooses another graph for those).
    """
    distances = []
    frames = 0
    for system in systems:  # a loop over systems and a few frames, not over particles
        n = system.n_particles
        if n < 2 or system.n_frames == 0:
            raise ValueError(f"system {system.name!r}: expected at least 2 particles and 1 frame")
        k = min(neighbours, n - 1)
        picks = np.unique(np.linspace(0, system.n_frames - 1, SAMPLED_FRAMES).round().astype(int))
        for frame in picks:
            points = np.asarray(system.positions[frame], dtype=np.float64)
            found, _ = cKDTree(points).query(points, k=k + 1)  # column 0 is the particle itself
            distances.append(found[:, k])
        frames += picks.size
    value = float(np.median(np.concatenate(distances))) * MARGIN
    return DerivedCutoff(value, neighbours, frames)
