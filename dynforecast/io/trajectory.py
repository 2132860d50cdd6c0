"""The in-memory record of one system's trajectory, shared by every reader and writer.

Readers produce a `Trajectory`; `io/h5md.py` stores it; writers turn it back into a source format.
Arrays are NumPy, frames first. Anything a writer needs to reproduce the source file beyond
positions (atom and residue names, chain ids, a BVH hierarchy) travels in ``parameters``, which
H5MD stores under ``/parameters/dynforecast/<system>/``.

Shapes: F frames, N particles, M bonds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Length and time units dynforecast writes. Positions are never silently converted: the unit
#: read is the unit written (mdtraj gives nm, ase gives Angstrom, BVH is unitless -> "1").
LENGTH_UNITS = ("nm", "Angstrom", "1")
TIME_UNITS = ("ps", "fs", "s", "1")

#: Parameter naming the periodic axes of a partly periodic box ("T T F": a slab), as extended XYZ
#: writes them; absent means a box is periodic along all three axes (every mdtraj format).
PERIODIC_AXES = "periodic_axes"

#: Values allowed in ``Trajectory.parameters``: strings, or NumPy arrays of numbers or strings.
ParameterValue = str | np.ndarray


@dataclass
class Trajectory:
    """One system: positions over frames plus the topology needed to interpret and re-export them.

    Fields:
        name: system name, used as the H5MD group name (letters, digits, ``_ - .``).
        positions: float32 [F, N, 3] in ``length_unit``.
        species: int32 [N], atomic numbers (0 for skeleton joints and unknown particles).
        time: float64 [F] in ``time_unit``; step: int64 [F] integration step or frame index.
        bonds: int32 [M, 2] particle index pairs (bonds, or parent->child bones), may be empty.
        velocities: optional float32 [F, N, 3] in ``length_unit``/``time_unit``.
        box: optional float32 [F, 3, 3], the periodic unit cell of each frame: box vectors a, b, c
            as rows (mdtraj's ``unitcell_vectors``, ase's ``cell``) in ``length_unit``. None means
            no periodic boundaries; kept so that no unit cell read is lost on a round trip.
        charges: optional float32 [N] (the N-body system's charges; H5MD ``charge``).
        names: particle names [N] (atom names, joint names).
        parameters: everything else a writer needs (see module docstring).
        source: the file(s) it came from, as given; checksum: their SHA-256 (hex).
    """

    name: str
    positions: np.ndarray
    species: np.ndarray
    time: np.ndarray
    step: np.ndarray
    length_unit: str
    time_unit: str
    bonds: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int32))
    velocities: np.ndarray | None = None
    box: np.ndarray | None = None
    charges: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
    source: str = ""
    checksum: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_particles(self) -> int:
        return int(self.positions.shape[1])

    @property
    def time_step(self) -> float:
        """Time between consecutive stored frames (0 for a single frame)."""
        return float(self.time[1] - self.time[0]) if self.n_frames > 1 else 0.0

    def validate(self) -> None:
        """Raise ValueError("expected X (got Y)") if the arrays do not fit together."""
        f, n = self.n_frames, self.n_particles
        if self.positions.ndim != 3 or self.positions.shape[2] != 3:
            raise ValueError(f"expected positions of shape [F, N, 3] (got {self.positions.shape})")
        if self.species.shape != (n,):
            raise ValueError(f"expected species of shape ({n},) (got {self.species.shape})")
        if self.time.shape != (f,) or self.step.shape != (f,):
            raise ValueError(
                f"expected time and step of shape ({f},) (got {self.time.shape}, {self.step.shape})"
            )
        if self.bonds.ndim != 2 or self.bonds.shape[1] != 2:
            raise ValueError(f"expected bonds of shape [M, 2] (got {self.bonds.shape})")
        if self.bonds.size and (self.bonds.min() < 0 or self.bonds.max() >= n):
            raise ValueError(
                f"expected bond indices in [0, {n}) (got {self.bonds.min()}..{self.bonds.max()})"
            )
        if self.velocities is not None and self.velocities.shape != self.positions.shape:
            raise ValueError(
                f"expected velocities of shape {self.positions.shape} (got {self.velocities.shape})"
            )
        if self.box is not None and self.box.shape != (f, 3, 3):
            raise ValueError(f"expected box of shape ({f}, 3, 3) (got {self.box.shape})")
        if self.charges is not None and self.charges.shape != (n,):
            raise ValueError(f"expected charges of shape ({n},) (got {self.charges.shape})")
        if self.names and len(self.names) != n:
            raise ValueError(f"expected {n} particle names (got {len(self.names)})")
        if self.length_unit not in LENGTH_UNITS:
            raise ValueError(f"expected a length unit in {LENGTH_UNITS} (got {self.length_unit!r})")
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"expected a time unit in {TIME_UNITS} (got {self.time_unit!r})")


def periodic_axes(parameters: dict, has_box: bool) -> tuple[bool, bool, bool]:
    """Which of the three box axes are periodic: none without a box, else ``PERIODIC_AXES``."""
    if not has_box:
        return (False, False, False)
    flags = str(parameters.get(PERIODIC_AXES, "T T T")).split()
    if len(flags) != 3 or any(f not in ("T", "F") for f in flags):
        raise ValueError(f"expected {PERIODIC_AXES} like 'T T F' (got {flags!r})")
    return tuple(f == "T" for f in flags)  # type: ignore[return-value]


def format_periodic_axes(axes) -> str:
    """'T T F' for (True, True, False): the extended XYZ spelling."""
    return " ".join("T" if a else "F" for a in axes)
