"""Large systems: peak memory and time of ingest, one training epoch and forward passes.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.large_systems [--stages ...] [--atoms 20000]
[--forward-sizes 10000 30000 100000] [--device auto|cpu|cuda] [--force]``.

Stages (each a fresh subprocess, so its peak memory is its own; results one JSON file per stage
under benchmarks/results/large_systems/, and a stage whose file exists is skipped unless
``--force``: an interrupted run resumes where it stopped):

* ``generate``: an argon-like XYZ (fcc lattice, a = 5.26 Angstrom, thermal noise 0.1 Angstrom,
  ``--atoms`` atoms, 24 frames 10 fs apart), written once.
* ``ingest``: ``dynforecast ingest`` of it under ``/usr/bin/time -v``: wall time and maximum
  resident memory (bond inference on the first frame included; issue 13: ase's search was
  killed at 23 GB for 20,000 atoms).
* ``train_<model>``: ``dynforecast train`` for one epoch under ``/usr/bin/time -v`` (radius
  graph with the data-derived cutoff, as `auto` picks for bond-less data; 6 past frames 2
  apart; batch of 2 windows; random split of the 12 windows), for ESTAG, SAKE and EGNN.
  A failed stage is written to ``<stage>.failed.json`` and run again next time.
* ``neighbours``: ase's ``neighbor_list`` (the bond search before) against
  io/bond_inference.covalent_bonds, and scipy's k-d tree against data/radius_graph (vesin),
  each size in its own subprocess: time and peak memory growth (ru_maxrss).
* ``forward_<model>_<N>``: one inference forward pass of ESTAG, SAKE or EGNN on N random
  particles at an all-atom density (0.1 per cubic Angstrom) with a radius graph (cutoff 3.5
  Angstrom, about 18 neighbours; built on the device), T = 6 past frames, float32, on
  ``--device`` (CUDA when available): graph and forward time (median of 3 after one warm-up)
  and peak memory (CUDA: torch's peak allocated; CPU: ru_maxrss growth).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "large_systems"
MODELS = ("estag", "sake", "egnn")
FCC_A = 5.26  # argon's fcc lattice constant, Angstrom
FRAMES = 24
DENSITY = 0.1
CUTOFF = 3.5


def argon_xyz(path: Path, n_atoms: int, frames: int = FRAMES, seed: int = 0) -> None:
    """Write an fcc argon-like XYZ of ``n_atoms`` atoms and ``frames`` frames (Angstrom, fs)."""
    import numpy as np

    cells = int(np.ceil((n_atoms / 4) ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    lattice = ((grid + basis).reshape(-1, 3) * FCC_A)[:n_atoms]
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for frame in range(frames):  # a loop over 24 frames; atoms are written by numpy
            positions = lattice + rng.normal(0.0, 0.1, lattice.shape)
            out.write(f"{n_atoms}\nProperties=species:S:1:pos:R:3 time={frame * 10.0}\n")
            np.savetxt(out, positions, fmt="Ar %.5f %.5f %.5f")
    tmp.replace(path)


def timed(command: list[str]) -> dict:
    """Run ``command`` under /usr/bin/time -v: wall seconds, max RSS (MiB), exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {
        "command": " ".join(command),
        "exit_code": done.returncode,
        "wall_s": round(wall, 2),
        "max_rss_mib": round(int(found.group(1)) / 1024, 1) if found else None,
        "stderr_tail": done.stderr.split("\tCommand being timed")[0][-600:],
        "load_average": os.getloadavg()[0],
    }


def neighbour_cell(kind: str, n: int) -> dict:
    """One neighbour-search measurement in this process (see module docstring)."""
    import numpy as np

    rng = np.random.default_rng(0)
    if kind.startswith("bonds"):
        side = int(np.ceil((n / 4) ** (1 / 3)))
        grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
        positions = grid[:n] * 1.5 + rng.normal(0, 0.05, (n, 3))  # a carbon-like lattice
        numbers = np.full(n, 6)
    else:
        positions = rng.uniform(0, (n / DENSITY) ** (1 / 3), (n, 3))
    if kind == "bonds_ase":
        import ase
        from ase.neighborlist import natural_cutoffs, neighbor_list

        atoms = ase.Atoms(numbers=numbers, positions=positions)
        work = lambda: neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.2))  # noqa: E731
        neighbor_list("ij", atoms[:10], natural_cutoffs(atoms[:10], mult=1.2))
    elif kind == "bonds_vesin":
        from dynforecast.io.bond_inference import covalent_bonds

        work = lambda: covalent_bonds(positions, numbers, 1.2)  # noqa: E731
        covalent_bonds(positions[:10], numbers[:10], 1.2)
    elif kind == "radius_kdtree":
        from scipy.spatial import cKDTree

        work = lambda: cKDTree(positions).query_pairs(CUTOFF, output_type="ndarray")  # noqa: E731
    else:
        from dynforecast.data.graphs import GraphSpec, radius_edges

        spec = GraphSpec("radius", cutoff=CUTOFF)
        zeros = np.zeros(n, dtype=np.int64)
        work = lambda: radius_edges(positions, zeros, spec)  # noqa: E731
        radius_edges(positions[:10], zeros[:10], spec)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "n": n,
        "seconds": round(seconds, 4),
        "peak_growth_mib": (after - before) / 1024,
    }


def forward_cell(model_name: str, n: int, device_name: str) -> dict:
    """One forward-pass measurement in this process (see module docstring)."""
    import numpy as np
    import torch

    from benchmarks.data_speed import protein_like_system
    from benchmarks.timing import median_ms
    from dynforecast.data.graphs import GraphSpec, radius_edges
    from dynforecast.data.windows import WindowDataset, WindowSpec
    from dynforecast.models.base import create_model
    from dynforecast.models.batch import WindowBatch

    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    torch.manual_seed(0)
    system = protein_like_system(n, density=DENSITY, n_frames=12)
    spec = GraphSpec("radius", cutoff=CUTOFF)
    data = WindowDataset([system], WindowSpec(past_frames=6, spacing=2), spec)
    cpu_batch = data.batch(np.array([0]))
    fields = {
        k: getattr(cpu_batch, k) for k in ("positions", "species", "node_attrs", "node_graph")
    }
    fields = {k: v.to(device) for k, v in fields.items()}
    kwargs = {"num_past_frames": 6} if model_name == "estag" else {}
    model = create_model(model_name, **kwargs).to(device).eval()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def graph():
        edges = radius_edges(fields["positions"][:, -1], fields["node_graph"], spec)
        sync()
        return edges

    graph_ms = median_ms(graph, repeats=3, warmup=1)
    src, dst = graph()
    batch = WindowBatch(edge_src=src, edge_dst=dst, num_graphs=1, **fields)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def forward() -> None:
        with torch.no_grad():
            model(batch)
        sync()

    forward_ms = median_ms(forward, repeats=3, warmup=1)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {
        "model": model_name,
        "particles": n,
        "edges": int(src.numel()),
        "device": str(device),
        "graph_ms": round(graph_ms, 1),
        "forward_ms": round(forward_ms, 1),
        "peak_mib": round(peak, 1),
        "load_average": os.getloadavg()[0],
    }


def _cell(args: list[str]) -> dict:
    if args[0] == "neighbours":
        return neighbour_cell(args[1], int(args[2]))
    return forward_cell(args[1], int(args[2]), args[3])


def _subprocess_cell(*args: str, timeout: float = 900) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.large_systems", "--cell", *args],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"cell": list(args), "error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        return {"cell": list(args), "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_stage(stage: str, options: argparse.Namespace) -> object:
    work = RESULTS / "work"
    data = work / f"argon-{options.atoms}.xyz"
    h5 = work / f"argon-{options.atoms}.h5"
    if stage == "generate":
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        argon_xyz(data, options.atoms)
        return {"path": str(data), "atoms": options.atoms, "frames": FRAMES,
                "mib": round(data.stat().st_size / 2**20, 1), "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    if stage == "ingest":
        return timed(["dynforecast", "ingest", str(data), "-o", str(h5), "--overwrite"])
    if stage.startswith("train_"):
        model = stage.removeprefix("train_")
        return timed(
            ["dynforecast", "train", str(h5), "--model", model, "--epochs", "1",
             "--batch-size", "2", "--out", str(work / f"run-{model}"), "--device", options.device,
             "--set", "data.window.past_frames=6", "--set", "data.window.spacing=2",
             "--set", "data.window.horizon=2", "--set", "data.split.mode=random", "--quiet"]
        )  # fmt: skip
    if stage == "neighbours":
        rows = []
        for kind, sizes in (
            ("bonds_ase", (1000, 2000)),
            ("bonds_vesin", (1000, 2000, 20000, 100000)),
            ("radius_kdtree", (20000, 100000)),
            ("radius_vesin", (20000, 100000)),
        ):
            for n in sizes:
                rows.append(_subprocess_cell("neighbours", kind, str(n)))
                print(json.dumps(rows[-1]), flush=True)
        return rows
    _, model, size = stage.split("_")
    return _subprocess_cell("forward", model, size, options.device, timeout=options.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=None, help="default: all, in order")
    parser.add_argument("--atoms", type=int, default=20000)
    parser.add_argument("--forward-sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per forward cell")
    parser.add_argument("--force", action="store_true", help="rerun stages that have results")
    parser.add_argument("--cell", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.cell:
        print(json.dumps(_cell(options.cell)))
        return 0
    stages = options.stages or [
        "generate", "ingest", *(f"train_{m}" for m in MODELS), "neighbours",
        *(f"forward_{m}_{n}" for n in options.forward_sizes for m in MODELS),
    ]  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        target = RESULTS / f"{stage}.json"
        if target.exists() and not options.force:
            print(f"{stage}: done ({target})", flush=True)
            continue
        result = run_stage(stage, options)
        failed = isinstance(result, dict) and (result.get("exit_code") or "error" in result)
        if failed:  # kept aside, so that the next run tries this stage again
            target = target.with_suffix(".failed.json")
        target.write_text(json.dumps(result, indent=1) + "\n")
        print(f"{stage}: {json.dumps(result)[:400]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
