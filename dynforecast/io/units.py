"""Conversion factors between the units dynforecast records (see trajectory.LENGTH_UNITS).

Readers never convert; writers of formats with a fixed unit (PDB: Angstrom, XYZ: Angstrom and
fs) convert with these factors. A factor is None when no conversion exists (the unitless "1").
"""

from __future__ import annotations

_LENGTH_IN_ANGSTROM = {"Angstrom": 1.0, "nm": 10.0}
_TIME_IN_FS = {"fs": 1.0, "ps": 1e3, "s": 1e15}


def length_factor(unit: str, target: str) -> float | None:
    """Multiply a length in ``unit`` by this to get ``target`` (None if either is unitless)."""
    if unit in _LENGTH_IN_ANGSTROM and target in _LENGTH_IN_ANGSTROM:
        return _LENGTH_IN_ANGSTROM[unit] / _LENGTH_IN_ANGSTROM[target]
    return None


def time_factor(unit: str, target: str) -> float | None:
    """Multiply a time in ``unit`` by this to get ``target`` (None if either is unitless)."""
    if unit in _TIME_IN_FS and target in _TIME_IN_FS:
        return _TIME_IN_FS[unit] / _TIME_IN_FS[target]
    return None


def velocity_factor(unit: str | None, length_unit: str, time_unit: str) -> float | None:
    """Factor to Angstrom/fs of a velocity unit "L T-1" (default: length_unit per time_unit)."""
    if unit is not None:
        parts = unit.split()
        if len(parts) != 2 or not parts[1].endswith("-1"):
            return None
        length_unit, time_unit = parts[0], parts[1].removesuffix("-1")
    to_angstrom = length_factor(length_unit, "Angstrom")
    to_fs = time_factor(time_unit, "fs")
    if to_angstrom is None or to_fs is None:
        return None
    return to_angstrom / to_fs
