"""Speed of the data layer: batch assembly (windows/s) and N-body generation (trajectories/s).

Run: ``OMP_NUM_THREADS=1 python benchmarks/data_speed.py [--quick] [--json]``

Measured in one run, on the same machine:
* batch assembly of 100-window batches (gather + graph + tensors) for a synthetic 3341-atom
  system (AdK-sized, protein-like density, T=10, D=5) with a radius graph (cutoff 5, at most 16
  neighbours), for 213 AdK-like residues (CA density, radius 6, no cap: ESTAG's AdK graph size)
  and for the N-body set with its built-in multi-frame task (all pairs);
* generator throughput in exact mode (per-trajectory loop) and fast mode (all at once), and
  their ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.timing import median_ms
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.data.windows import PROTOCOLS, WindowDataset, WindowSpec
from dynforecast.io.trajectory import Trajectory

BATCH_WINDOWS = 100


def protein_like_system(
    n_atoms: int = 3341, density: float = 0.1, n_frames: int = 200, seed: int = 0
) -> Trajectory:
    """Random atoms at a protein-like density (per cubic Angstrom) with small thermal motion.

    0.1 is the all-atom density of a protein; 0.0067 that of its CA atoms (one per residue).
    """
    rng = np.random.default_rng(seed)
    side = (n_atoms / density) ** (1.0 / 3.0)
    rest = rng.uniform(0.0, side, size=(1, n_atoms, 3))
    positions = rest + rng.normal(scale=0.3, size=(n_frames, n_atoms, 3))
    return Trajectory(
        name="protein_like",
        positions=positions.astype(np.float32),
        species=np.full(n_atoms, 6, dtype=np.int32),
        time=np.arange(n_frames, dtype=np.float64) * 240.0,
        step=np.arange(n_frames, dtype=np.int64),
        length_unit="Angstrom",
        time_unit="ps",
    )


def batch_rate(data: WindowDataset, repeats: int) -> dict[str, float]:
    """Median windows/s of `data.batch` over random 100-window batches."""
    rng = np.random.default_rng(1)
    batches = [rng.choice(len(data), size=BATCH_WINDOWS, replace=False) for _ in range(8)]
    state = {"i": 0}

    def assemble() -> None:
        data.batch(batches[state["i"] % len(batches)])
        state["i"] += 1

    milliseconds = median_ms(assemble, repeats=repeats, warmup=2)
    edges = data.batch(batches[0]).num_edges
    return {
        "ms_per_batch": milliseconds,
        "windows_per_s": BATCH_WINDOWS / (milliseconds / 1e3),
        "edges_per_batch": edges,
    }


def generator_rate(mode: str, n_trajectories: int) -> float:
    started = time.perf_counter()
    simulate_nbody(n_trajectories, seed=43, mode=mode)
    return n_trajectories / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and trajectories")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    repeats = 3 if args.quick else 10

    protein = WindowDataset(
        [protein_like_system()],
        WindowSpec(past_frames=10, spacing=5),
        GraphSpec("radius", cutoff=5.0, max_neighbours=16),
    )
    residues = WindowDataset(
        [protein_like_system(213, density=0.0067)],
        WindowSpec(past_frames=10, spacing=5),
        GraphSpec("radius", cutoff=6.0),
    )
    nbody_set = WindowDataset(
        nbody_trajectories(simulate_nbody(300, seed=43, mode="fast")),
        PROTOCOLS["nbody-multiframe"],
        GraphSpec("all_pairs"),
    )
    exact = generator_rate("exact", 5 if args.quick else 20)
    fast = generator_rate("fast", 200 if args.quick else 1000)
    results = {
        "batch_protein_3341_radius": batch_rate(protein, repeats),
        "batch_adk_residues_213_radius": batch_rate(residues, repeats * 3),
        "batch_nbody_multiframe": batch_rate(nbody_set, repeats * 5),
        "generator_trajectories_per_s": {"exact": exact, "fast": fast, "ratio": fast / exact},
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in (
        "batch_protein_3341_radius",
        "batch_adk_residues_213_radius",
        "batch_nbody_multiframe",
    ):
        row = results[name]
        print(
            f"{name:28s} {row['windows_per_s']:10.0f} windows/s  "
            f"({row['ms_per_batch']:.1f} ms per {BATCH_WINDOWS}-window batch, "
            f"{row['edges_per_batch']} edges)"
        )
    print(
        f"{'nbody generator':28s} exact {exact:.1f} traj/s, fast {fast:.1f} traj/s, "
        f"ratio {fast / exact:.1f}x"
    )


if __name__ == "__main__":
    main()
