"""`dynforecast info`: what an H5MD file holds, as a stable JSON-able dict and as text.

Coordinates are scanned in blocks of frames (`iter_h5md_blocks`), so files larger than memory are
summarised too. The JSON object's keys are part of the interface (scripts read them):

    {"file": str, "systems": [{"name", "frames", "particles", "species" {symbol: count},
      "bonds", "length_unit", "time_unit", "time_step", "time_start", "time_end",
      "has_velocities", "forecast_frames" (int or null), "coordinate_min" [3] | null,
      "coordinate_max" [3] | null, "nan_count", "inf_count", "source", "checksum",
      "periodic" (bool: frames carry a unit cell), "box_lengths" [3] | null and
      "box_angles" [3] | null (the first frame's cell: a, b, c in length_unit; degrees)}]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynforecast.io.h5md import iter_h5md_blocks, list_systems, read_is_forecast
from dynforecast.io.table import format_table

#: Frames per block when scanning coordinates.
_BLOCK_FRAMES = 256


def species_counts(species: np.ndarray) -> dict[str, int]:
    """{element symbol: count} in order of atomic number; 0 (skeleton joint, unknown) is "X"."""
    from ase.data import chemical_symbols

    numbers, counts = np.unique(species, return_counts=True)
    return {
        chemical_symbols[int(z)] if 0 <= z < len(chemical_symbols) else str(int(z)): int(c)
        for z, c in zip(numbers, counts, strict=True)
    }


def describe_system(path: str | Path, name: str) -> dict[str, Any]:
    """Summary of one system; coordinate ranges ignore NaN/inf, which are counted instead."""
    lower = np.full(3, np.inf)
    upper = np.full(3, -np.inf)
    nan_count = inf_count = frames = 0
    header = None
    time_start = time_end = time_step = None
    for block in iter_h5md_blocks(path, name, _BLOCK_FRAMES):
        header = header or block
        positions = block.positions
        finite = np.isfinite(positions)
        nan_count += int(np.isnan(positions).sum())
        inf_count += int(np.isinf(positions).sum())
        lower = np.minimum(lower, np.where(finite, positions, np.inf).min(axis=(0, 1)))
        upper = np.maximum(upper, np.where(finite, positions, -np.inf).max(axis=(0, 1)))
        if frames == 0:
            time_start = float(block.time[0])
            time_step = float(block.time[1] - block.time[0]) if block.n_frames > 1 else None
        elif time_step is None:
            time_step = float(block.time[0]) - time_start
        time_end = float(block.time[-1])
        frames += block.n_frames
    if header is None:  # a system with zero frames: take its topology from an empty read
        from dynforecast.io.h5md import read_h5md

        header = read_h5md(path, [name])[0]
    flags = read_is_forecast(path, name)
    found = bool(np.isfinite(lower).all())
    lengths, angles = _first_cell(header.box)
    return {
        "name": name,
        "frames": frames,
        "particles": header.n_particles,
        "species": species_counts(header.species),
        "bonds": int(header.bonds.shape[0]),
        "length_unit": header.length_unit,
        "time_unit": header.time_unit,
        "time_step": time_step,
        "time_start": time_start,
        "time_end": time_end,
        "has_velocities": header.velocities is not None,
        "forecast_frames": None if flags is None else int(flags.sum()),
        "coordinate_min": lower.tolist() if found else None,
        "coordinate_max": upper.tolist() if found else None,
        "nan_count": nan_count,
        "inf_count": inf_count,
        "source": header.source,
        "checksum": header.checksum,
        "periodic": header.box is not None,
        "box_lengths": lengths,
        "box_angles": angles,
    }


def describe_h5md(path: str | Path) -> dict[str, Any]:
    """Summary of every system in an H5MD file (the object `info --json` prints)."""
    return {
        "file": str(path),
        "systems": [describe_system(path, name) for name in list_systems(path)],
    }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _vector(values: list[float] | None) -> str:
    return "-" if values is None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _first_cell(box: np.ndarray | None) -> tuple[list[float] | None, list[float] | None]:
    """Edge lengths a, b, c and angles alpha, beta, gamma (degrees) of the first frame's cell."""
    if box is None or len(box) == 0:
        return None, None
    from mdtraj.utils import box_vectors_to_lengths_and_angles

    a, b, c = np.asarray(box[:1], dtype=np.float64).transpose(1, 0, 2)
    cell = np.ravel(box_vectors_to_lengths_and_angles(a, b, c))
    return cell[:3].tolist(), cell[3:].tolist()


def _box(system: dict[str, Any]) -> str:
    """'periodic, first frame a b c [..] unit, angles [..] deg', or 'none (not periodic)'."""
    if not system["periodic"]:
        return "none (not periodic)"
    if system["box_lengths"] is None:
        return "periodic (no frames)"
    return (
        f"periodic, first frame a b c {_vector(system['box_lengths'])} {system['length_unit']}, "
        f"angles {_vector(system['box_angles'])} deg"
    )


def format_info(summary: dict[str, Any]) -> str:
    """Human-readable text of `describe_h5md`'s summary: a table, then details per system."""
    systems = summary["systems"]
    rows = [("system", "frames", "particles", "bonds", "dt", "units")]
    rows += [
        (
            s["name"],
            str(s["frames"]),
            str(s["particles"]),
            str(s["bonds"]),
            _number(s["time_step"]),
            f"{s['length_unit']}, {s['time_unit']}",
        )
        for s in systems
    ]
    lines = [f"{summary['file']}: {len(systems)} system(s)", format_table(rows)]
    for s in systems:
        species = " ".join(f"{symbol}:{count}" for symbol, count in s["species"].items())
        forecast = (
            "" if s["forecast_frames"] is None else f", forecast frames {s['forecast_frames']}"
        )
        lines += [
            "",
            f"{s['name']}:",
            f"  species      {species}",
            f"  time         {_number(s['time_start'])} .. {_number(s['time_end'])} {s['time_unit']}",
            f"  coordinates  min {_vector(s['coordinate_min'])} max "
            f"{_vector(s['coordinate_max'])} {s['length_unit']}",
            f"  non-finite   NaN {s['nan_count']}, inf {s['inf_count']}",
            f"  velocities   {'yes' if s['has_velocities'] else 'no'}{forecast}",
            f"  box          {_box(s)}",
            f"  source       {s['source'] or '-'}",
        ]
    return "\n".join(lines)
