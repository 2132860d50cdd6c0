"""Parse Acclaim ASF skeleton files (the CMU motion-capture database's format) with one-line errors.

An ASF file describes a skeleton at rest, in global coordinates: ``:units`` (mass, length,
angle), ``:root`` (the dof ``order`` of its AMC line, the ``axis`` order of its
``orientation``, its rest ``position``), ``:bonedata`` (per bone: ``name``, unit ``direction``,
``length``, ``axis`` angles with their order, and the ``dof`` the AMC file animates, in the
order of its values) and ``:hierarchy`` (parent followed by its children, one parent a line).

Particles are the root followed by the bones in ``:bonedata`` order, each bone standing for its
tip. Every problem is an `InputError` naming the file and, where one line is to blame, the line.
What the parser reinterprets (a direction that is not a unit vector) is returned as notes.

Shapes: B bones plus the root (particle 0), D degrees of freedom in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError
from dynforecast.io.notes import IngestNote, counted

#: Degrees of freedom a bone may list, and the root's spelling of them in ``order``.
BONE_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz", "l")
ROOT_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz")
_AXES = "xyz"
#: Bone keywords the parser accepts without using (they do not move the skeleton).
_IGNORED_BONE_KEYS = ("id", "bodymass", "cofmass")


@dataclass(frozen=True)
class AsfSkeleton:
    """An ASF skeleton, root first (particle 0), bones in ``:bonedata`` order.

    Fields:
        names: particle names [B + 1], "root" first.
        parents: int [B + 1], parent particle, -1 for the root (parents may follow children).
        directions: float64 [B + 1, 3], unit rest direction of each bone (0 for the root).
        lengths: float64 [B + 1], bone lengths in ASF length units (0 for the root).
        axis_angles: float64 [B + 1, 3], the ``axis`` (root: ``orientation``) angles in
            radians, about x, y, z.
        axis_orders: int [B + 1, 3], the order those rotations are applied in (0=x, 1=y, 2=z).
        dofs: per particle, the dof names in AMC value order ("rx", "tx", "l", ...).
        root_position: float64 [3], the root's rest ``position``.
        length_scale: ``:units length`` (CMU: 1 unit = 1/length_scale inch).
        mass_scale: ``:units mass``.
        angle_unit: "deg" or "rad", the unit of ``axis`` and (by default) of AMC angles.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    directions: np.ndarray
    lengths: np.ndarray
    axis_angles: np.ndarray
    axis_orders: np.ndarray
    dofs: tuple[tuple[str, ...], ...]
    root_position: np.ndarray
    length_scale: float = 1.0
    mass_scale: float = 1.0
    angle_unit: str = "deg"

    @property
    def n_particles(self) -> int:
        return len(self.names)

    @property
    def n_dofs(self) -> int:
        return sum(len(d) for d in self.dofs)

    @cached_property
    def dof_starts(self) -> np.ndarray:
        """int [B + 1]: column of each particle's first dof in a motion row."""
        counts = np.array([len(d) for d in self.dofs], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    @cached_property
    def depth_levels(self) -> list[np.ndarray]:
        """Particle indices grouped by depth in the hierarchy (the root alone first)."""
        depth = np.full(self.n_particles, -1, dtype=np.int64)
        depth[0] = 0
        level = np.array([0])
        levels = []
        while level.size:
            levels.append(level)
            level = np.flatnonzero(np.isin(self.parents, level))
            depth[level] = len(levels)
        return levels

    @cached_property
    def subtree(self) -> np.ndarray:
        """bool [B + 1, B + 1]: ``subtree[a, b]`` when b is a or below it."""
        mask = np.eye(self.n_particles, dtype=bool)
        for level in self.depth_levels[1:]:  # static, one step per tree level
            mask[:, level] |= mask[:, self.parents[level]]
        return mask


def _error(path: Path, line: int | None, problem: str) -> InputError:
    where = f"line {line}: " if line is not None else ""
    return InputError(f"{path}: {where}{problem}")


def _floats(path: Path, line: int, key: str, values: list[str], count: int) -> np.ndarray:
    if len(values) != count:
        raise _error(path, line, f"'{key}' expects {count} numbers (got {len(values)})")
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        raise _error(path, line, f"'{key}': non-numeric value in {' '.join(values)!r}") from None
    if not np.isfinite(out).all():
        raise _error(path, line, f"'{key}': non-finite value in {' '.join(values)!r}")
    return out


def _order(path: Path, line: int, text: str, key: str) -> np.ndarray:
    order = text.lower()
    if len(order) != 3 or sorted(order) != ["x", "y", "z"]:
        raise _error(path, line, f"'{key}' order {text!r} is not a permutation of XYZ")
    return np.array([_AXES.index(c) for c in order], dtype=np.int64)


def _sections(lines: list[str], path: Path) -> dict[str, list[tuple[int, list[str]]]]:
    """Token lines (1-based line number, tokens) per ``:section``; comments dropped."""
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    current: list[tuple[int, list[str]]] | None = None
    for number, raw in enumerate(lines, start=1):
        tokens = raw.split("#", 1)[0].split()
        if not tokens:
            continue
        if tokens[0].startswith(":"):
            key = tokens[0][1:].lower()
            if key in sections:
                raise _error(path, number, f"section ':{key}' given twice")
            current = sections[key] = []
            if len(tokens) > 1:
                current.append((number, tokens[1:]))
        elif current is None:
            raise _error(path, number, f"{tokens[0]!r} before the first ':' section")
        else:
            current.append((number, tokens))
    return sections


def parse_asf(text: str, path: Path) -> tuple[AsfSkeleton, list[IngestNote]]:
    """An ASF file's skeleton and notes; InputError naming the file and line for any problem."""
    path = Path(path)
    sections = _sections(text.splitlines(), path)
    for needed in ("root", "bonedata", "hierarchy"):
        if needed not in sections:
            raise _error(path, None, f"no ':{needed}' section (not an ASF skeleton?)")
    length_scale, mass_scale, angle_unit = _units(sections.get("units", []), path)
    to_rad = np.pi / 180.0 if angle_unit == "deg" else 1.0
    root = _root(sections["root"], path)
    bones, notes = _bones(sections["bonedata"], path)
    names = ("root", *(b["name"] for b in bones))
    index = {name: i for i, name in enumerate(names)}
    parents = _hierarchy(sections["hierarchy"], path, index)
    zeros = np.zeros(3)
    skeleton = AsfSkeleton(
        names=names,
        parents=parents,
        directions=np.stack([zeros, *(b["direction"] for b in bones)]),
        lengths=np.array([0.0, *(b["length"] for b in bones)]),
        axis_angles=np.stack([root["orientation"], *(b["axis"] for b in bones)]) * to_rad,
        axis_orders=np.stack([root["axis_order"], *(b["axis_order"] for b in bones)]),
        dofs=(root["order"], *(b["dof"] for b in bones)),
        root_position=root["position"],
        length_scale=length_scale,
        mass_scale=mass_scale,
        angle_unit=angle_unit,
    )
    return skeleton, notes


def _units(rows: list[tuple[int, list[str]]], path: Path) -> tuple[float, float, str]:
    length, mass, angle = 1.0, 1.0, "deg"
    for number, tokens in rows:
        key = tokens[0].lower()
        if len(tokens) != 2:
            raise _error(path, number, f"':units' line expects a name and a value ({tokens})")
        if key == "angle":
            angle = tokens[1].lower()
            if angle not in ("deg", "rad"):
                raise _error(path, number, f"':units angle' must be deg or rad (got {tokens[1]!r})")
        elif key in ("length", "mass"):
            value = float(_floats(path, number, key, tokens[1:], 1)[0])
            if value <= 0:
                raise _error(path, number, f"':units {key}' must be positive (got {value})")
            length, mass = (value, mass) if key == "length" else (length, value)
        else:
            raise _error(path, number, f"unknown ':units' entry {tokens[0]!r}")
    return length, mass, angle


def _root(rows: list[tuple[int, list[str]]], path: Path) -> dict:
    root: dict = {"position": np.zeros(3), "orientation": np.zeros(3)}
    root["axis_order"] = np.arange(3)
    root["order"] = ()
    for number, tokens in rows:
        key, values = tokens[0].lower(), tokens[1:]
        if key == "order":
            dofs = tuple(v.lower() for v in values)
            bad = [v for v in dofs if v not in ROOT_DOFS]
            if bad or len(set(dofs)) != len(dofs):
                problem = f"unknown dof {bad[0]!r}" if bad else "a dof listed twice"
                raise _error(path, number, f"root 'order': {problem} (use TX TY TZ RX RY RZ)")
            root["order"] = dofs
        elif key == "axis":
            if len(values) != 1:
                raise _error(path, number, "root 'axis' expects one order such as XYZ")
            root["axis_order"] = _order(path, number, values[0], "axis")
        elif key in ("position", "orientation"):
            root[key] = _floats(path, number, key, values, 3)
        else:
            raise _error(path, number, f"unknown ':root' entry {tokens[0]!r}")
    return root


def _bones(rows: list[tuple[int, list[str]]], path: Path) -> tuple[list[dict], list[IngestNote]]:
    bones: list[dict] = []
    bone: dict | None = None
    in_limits = False
    renormalised = 0
    for number, tokens in rows:
        key, values = tokens[0].lower(), tokens[1:]
        if key == "begin":
            if bone is not None:
                raise _error(path, number, "'begin' inside a bone (missing 'end')")
            bone, in_limits = {"line": number, "dof": ()}, False
            continue
        if bone is None:
            raise _error(path, number, f"{tokens[0]!r} outside a bone's begin ... end")
        if key == "end":
            renormalised += _finish_bone(bone, path, number, bones)
            bone = None
        elif key.startswith("(") and in_limits:
            continue  # limits continue over several lines; they do not move the skeleton
        elif key == "name":
            if len(values) != 1:
                raise _error(path, number, "'name' expects one word")
            bone["name"] = values[0]
        elif key == "direction":
            bone["direction"] = _floats(path, number, key, values, 3)
        elif key == "length":
            bone["length"] = float(_floats(path, number, key, values, 1)[0])
            if bone["length"] < 0:
                raise _error(path, number, f"negative bone length {bone['length']}")
        elif key == "axis":
            if len(values) != 4:
                raise _error(path, number, "'axis' expects three angles and an order (0 0 0 XYZ)")
            bone["axis"] = _floats(path, number, key, values[:3], 3)
            bone["axis_order"] = _order(path, number, values[3], "axis")
        elif key == "dof":
            dofs = tuple(v.lower() for v in values)
            bad = [v for v in dofs if v not in BONE_DOFS]
            if bad or len(set(dofs)) != len(dofs):
                problem = f"unknown dof {bad[0]!r}" if bad else "a dof listed twice"
                raise _error(path, number, f"'dof': {problem} (use rx ry rz tx ty tz l)")
            bone["dof"] = dofs
        elif key == "limits":
            in_limits = True
        elif key not in _IGNORED_BONE_KEYS:
            raise _error(path, number, f"unknown bone entry {tokens[0]!r}")
    if bone is not None:
        raise _error(path, bone["line"], "bone without 'end'")
    if not bones:
        raise _error(path, None, "':bonedata' holds no bones")
    notes = []
    if renormalised:
        notes.append(
            IngestNote(
                "renormalised_directions",
                renormalised,
                f"{counted(renormalised, 'bone')} with a direction that is not a unit vector; "
                "scaled to unit length (the bone's length is its 'length')",
            )
        )
    return bones, notes


def _finish_bone(bone: dict, path: Path, line: int, bones: list[dict]) -> int:
    """Check a bone at its 'end'; append it; return 1 if its direction was rescaled."""
    for key in ("name", "direction", "length", "axis"):
        if key not in bone:
            raise _error(path, line, f"bone starting at line {bone['line']} has no '{key}'")
    if bone["name"].lower() == "root" or any(b["name"] == bone["name"] for b in bones):
        raise _error(path, bone["line"], f"bone name {bone['name']!r} used twice")
    norm = float(np.linalg.norm(bone["direction"]))
    if norm == 0.0:
        raise _error(path, bone["line"], f"bone {bone['name']!r} has a zero direction")
    bone["direction"] = bone["direction"] / norm
    bones.append(bone)
    return int(abs(norm - 1.0) > 1e-4)


def _hierarchy(rows: list[tuple[int, list[str]]], path: Path, index: dict[str, int]) -> np.ndarray:
    parents = np.full(len(index), -2, dtype=np.int64)
    parents[0] = -1
    for number, tokens in rows:
        if tokens[0].lower() in ("begin", "end") and len(tokens) == 1:
            continue
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise _error(path, number, f"':hierarchy' names unknown bone {unknown[0]!r}")
        parent = index[tokens[0]]
        for child in tokens[1:]:
            c = index[child]
            if c == 0 or parents[c] != -2:
                raise _error(path, number, f"bone {child!r} is given a parent twice")
            parents[c] = parent
    orphans = np.flatnonzero(parents == -2)
    if orphans.size:
        name = list(index)[orphans[0]]
        raise _error(path, None, f"bone {name!r} has no parent in ':hierarchy'")
    reached = np.zeros(len(index), dtype=bool)
    reached[0] = True
    for _ in range(len(index)):  # static: at most tree-depth passes
        grown = reached | reached[np.maximum(parents, 0)] & (parents >= 0)
        if (grown == reached).all():
            break
        reached = grown
    if not reached.all():
        name = list(index)[int(np.flatnonzero(~reached)[0])]
        raise _error(path, None, f"bone {name!r} is not below the root (a cycle in ':hierarchy')")
    return parents
