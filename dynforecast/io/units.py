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


#: Length units a user may write (case-insensitive) -> the recorded unit they are expressed in.
_LENGTH_WORDS = {
    "angstrom": "Angstrom",
    "a": "Angstrom",
    "å": "Angstrom",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
}


def parse_length(text: str | float, unit: str, key: str) -> float:
    """A positive length ``"6 angstrom"``, ``"0.6 nm"`` or a bare number, in the data's ``unit``.

    A bare number is taken in ``unit``; a unit on unitless data ("1": BVH, N-body) is refused, as
    is an unknown unit or a non-positive length. Raises UsageError naming ``key``.
    """
    import math
    import re

    from dynforecast.errors import UsageError

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        number, word = float(text), None
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([^\s0-9.+-][^\s]*)?\s*", str(text))
        try:
            number = float(match.group(1)) if match else math.nan
        except ValueError:
            number = math.nan
        word = match.group(2) if match else None
        if math.isnan(number):
            raise UsageError(
                f"{key} {text!r}: expected a length, a number and a unit "
                f"(e.g. '6 angstrom', '0.6 nm')"
            )
    if not (math.isfinite(number) and number > 0):
        raise UsageError(f"{key} {text!r}: expected a positive length")
    if word is None:
        return number
    given = _LENGTH_WORDS.get(word.lower())
    if given is None:
        raise UsageError(f"{key} {text!r}: unknown length unit {word!r}; use angstrom or nm")
    factor = length_factor(given, unit)
    if factor is None:
        raise UsageError(
            f'{key} {text!r}: the data\'s lengths have no unit ("1"); give a bare number'
        )
    return number * factor
