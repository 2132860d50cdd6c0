"""File size and read speed of H5MD layouts: many small systems and one large system.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.h5md_layout [--systems 1000] [--atoms 20000]
[--frames 200] [--json]``

Cases, written with `dynforecast.io.h5md.H5MDWriter` into a temporary directory:

* many small systems: ``--systems`` N-body trajectories (49 frames x 5 particles, positions and
  velocities, charges, parameters: the layout of ``generate nbody --recipe nbody_small``);
* one large system: ``--atoms`` x ``--frames`` smooth random-walk positions (MD-like).

Layouts: "old" (HDF5's earliest format, what dynforecast wrote before: v1 B-trees and symbol
tables), "v110" (the 1.10 format, the default now), and v110 with gzip (+ shuffle) or lzf on the
frame datasets. For each: bytes per system (or per frame), the ratio to the raw float32 frame
data, the time to read every system whole (`read_h5md`), and, for the large system, the time to
read 100 random windows of 11 frames (what training does out of core).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import H5MDWriter, add_trajectory_system, read_h5md
from dynforecast.io.trajectory import Trajectory

LAYOUTS: dict[str, dict] = {
    "old": {"libver": ("earliest", "v110"), "compression": None},
    "v110": {"libver": ("v110", "v110"), "compression": None},
    "v110+gzip": {"libver": ("v110", "v110"), "compression": "gzip"},
    "v110+lzf": {"libver": ("v110", "v110"), "compression": "lzf"},
}


def write(path: Path, systems: list[Trajectory], libver, compression) -> None:
    with H5MDWriter(path, libver=libver, compression=compression) as writer:
        for system in systems:
            add_trajectory_system(
                writer,
                system,
                has_velocities=system.velocities is not None,
                expected_frames=system.n_frames,
            )
            writer.append_frames(
                system.name, system.positions, system.time, system.step, system.velocities
            )


def large_system(atoms: int, frames: int, seed: int = 0) -> Trajectory:
    """A smooth trajectory: a random walk of 0.01 nm steps around a 5 nm box of points."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 5, size=(1, atoms, 3))
    steps = rng.normal(0, 0.01, size=(frames, atoms, 3))
    positions = (start + np.cumsum(steps, axis=0)).astype(np.float32)
    return Trajectory(
        name="large",
        positions=positions,
        species=np.full(atoms, 18, dtype=np.int32),
        time=np.arange(frames, dtype=np.float64),
        step=np.arange(frames, dtype=np.int64),
        length_unit="nm",
        time_unit="ps",
    )


def raw_bytes(systems: list[Trajectory]) -> int:
    total = 0
    for s in systems:
        total += s.positions.nbytes + (0 if s.velocities is None else s.velocities.nbytes)
    return total


def random_windows_seconds(path: Path, windows: int = 100, span: int = 11) -> float:
    """Seconds to read ``windows`` random runs of ``span`` consecutive frames of "large"."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "r") as h5:
        value = h5["particles/large/position/value"]
        starts = rng.integers(0, value.shape[0] - span, size=windows)
        began = time.perf_counter()
        for start in starts:  # one read per window: what an uncached reader pays
            value[start : start + span]
        return time.perf_counter() - began


def measure(directory: Path, small: list[Trajectory], large: Trajectory) -> list[dict]:
    rows = []
    for name, options in LAYOUTS.items():
        small_path = directory / f"small-{name}.h5"
        large_path = directory / f"large-{name}.h5"
        began = time.perf_counter()
        write(small_path, small, **options)
        write_small = time.perf_counter() - began
        began = time.perf_counter()
        read_h5md(small_path)
        read_small = time.perf_counter() - began
        began = time.perf_counter()
        write(large_path, [large], **options)
        write_large = time.perf_counter() - began
        began = time.perf_counter()
        read_h5md(large_path)
        read_large = time.perf_counter() - began
        rows.append(
            {
                "layout": name,
                "small_bytes_per_system": small_path.stat().st_size / len(small),
                "small_size_ratio": small_path.stat().st_size / raw_bytes(small),
                "small_write_s": write_small,
                "small_read_all_s": read_small,
                "large_bytes_per_frame": large_path.stat().st_size / large.n_frames,
                "large_size_ratio": large_path.stat().st_size / raw_bytes([large]),
                "large_write_s": write_large,
                "large_read_all_s": read_large,
                "large_100_windows_s": random_windows_seconds(large_path),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--atoms", type=int, default=20_000)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    small = nbody_trajectories(simulate_nbody(args.systems, 43, mode="fast"))
    large = large_system(args.atoms, args.frames)
    with tempfile.TemporaryDirectory() as directory:
        rows = measure(Path(directory), small, large)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{args.systems} N-body systems (49 x 5, pos + vel) | one system {args.atoms} atoms x "
        f"{args.frames} frames"
    )
    print(
        f"{'layout':<10} {'B/system':>9} {'x raw':>6} {'read s':>7} | "
        f"{'MB/frame':>8} {'x raw':>6} {'read s':>7} {'100 win s':>9} {'write s':>8}"
    )
    for r in rows:
        print(
            f"{r['layout']:<10} {r['small_bytes_per_system']:>9.0f} {r['small_size_ratio']:>6.2f} "
            f"{r['small_read_all_s']:>7.2f} | {r['large_bytes_per_frame'] / 1e6:>8.3f} "
            f"{r['large_size_ratio']:>6.2f} {r['large_read_all_s']:>7.2f} "
            f"{r['large_100_windows_s']:>9.3f} {r['large_write_s']:>8.2f}"
        )


if __name__ == "__main__":
    main()
