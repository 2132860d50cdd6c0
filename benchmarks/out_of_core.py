"""Out-of-core training (issue 13, item 4): a data file several times larger than the memory the
process may use trains to the end, and an in-memory-size file trains as fast as before.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.out_of_core [--limit-gib 1.5] [--factor 4]
[--atoms 1000] [--stages generate large small workers] [--force]``.

Stages (results one JSON file per stage under benchmarks/results/out_of_core/; a stage whose
file exists is skipped unless ``--force``, so an interrupted run resumes):

* ``generate``: an H5MD file of one ``--atoms``-particle chain (bonds i - i+1; velocities an
  Ornstein-Uhlenbeck process in nm/ps, positions their sum; 1 ps frames) with enough frames that its
  positions + velocities take ``--factor`` x ``--limit-gib``; written chunk by chunk (bounded
  memory) into the benchmark cache (``DYNFORECAST_CACHE``), not the repository; and a small file
  of the same system with 1/64 of the frames.
* ``large``: ``dynforecast train`` of the large file (EGNN 16 x 2, one past frame with
  velocities, horizon 1, bonds + 2 hops, chronological 60/20/20 split, one epoch, batch 32)
  under an address-space limit of ``--limit-gib`` (``RLIMIT_AS``, what ``ulimit -v`` sets;
  inherited by the child): exit code, wall time, epoch time (metrics.csv) and the child's peak
  resident memory. The frame store sees the limit and reads windows from the file
  (`dynforecast.data.frame_store`).
* ``small``: the small file trained for 3 epochs with ``DYNFORECAST_FRAMES=memory`` (the
  in-memory store, what train did before out-of-core reading) and ``=file`` (on-demand reads),
  in alternating order over ``--repeats`` rounds: median epoch time of each (epochs 2-3) and
  their ratio, with the load average (the machine is shared).
* ``workers``: a file of 1/8 of the large one's frames, out of core under the same limit, one
  epoch with ``optim.workers`` 0 and 1 (batches built in this process, or by one DataLoader
  worker ahead of the step): epoch times and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "out_of_core"
GIB = 1 << 30
FRAME_CHUNK = 256
PERSISTENCE = 0.9
TRAIN_SETTINGS = (
    "model.hidden_dim=16",
    "model.num_layers=2",
    "window.past_frames=1",
    "window.spacing=1",
    "window.horizon=1",
    "graph.kind=bonds",
    "split.mode=chronological",
    "split.fractions=[0.6, 0.2, 0.2]",
)


def bench_cache() -> Path:
    from dynforecast.data.builtin import cache_dir

    return cache_dir() / "bench" / "out_of_core"


def write_chain(path: Path, atoms: int, frames: int, seed: int = 0) -> None:
    """An H5MD chain of ``atoms`` particles and ``frames`` frames, written FRAME_CHUNK at a time."""
    from scipy.signal import lfilter

    from dynforecast.io.h5md import H5MDWriter

    rng = np.random.default_rng(seed)
    position = np.cumsum(rng.normal(0, 0.15, size=(atoms, 3)), axis=0)
    state = np.zeros((1, atoms, 3))
    tmp = path.with_suffix(".tmp")
    with H5MDWriter(tmp, overwrite=True) as writer:
        writer.add_system(
            "chain",
            n_particles=atoms,
            species=np.full(atoms, 6, dtype=np.int32),
            length_unit="nm",
            time_unit="ps",
            bonds=np.stack([np.arange(atoms - 1), np.arange(1, atoms)], axis=1),
            has_velocities=True,
            expected_frames=frames,
        )
        for first in range(0, frames, FRAME_CHUNK):  # a loop over chunks of frames, not frames
            count = min(FRAME_CHUNK, frames - first)
            # Velocities an Ornstein-Uhlenbeck process (v' = 0.9 v + noise, nm/ps), positions
            # their running sum: momentum, so constant velocity has something to find.
            kicks = rng.normal(0, 0.001, size=(count, atoms, 3))
            velocities, state = lfilter([1.0], [1.0, -PERSISTENCE], kicks, axis=0, zi=state)
            path_positions = position + np.cumsum(velocities, axis=0)
            position = path_positions[-1]
            frame_index = np.arange(first, first + count)
            writer.append_frames(
                "chain",
                path_positions.astype(np.float32),
                frame_index.astype(np.float64),
                frame_index,
                velocities.astype(np.float32),
            )
    tmp.replace(path)


def limited_run(argv: list[str], env: dict[str, str], limit: int | None) -> dict:
    """Run ``argv`` under an address-space limit (bytes; None: none) in a fresh wrapper process:
    exit code, wall seconds, the child's peak resident memory (MiB), the stderr tail."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "limit = int(sys.argv[1])\n"
        "if limit > 0:\n"
        "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "began = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[2:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - began\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps({'rc': r.returncode, 'wall': wall, 'peak': peak, 'err': r.stderr}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(limit or 0), *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    record = json.loads(done.stdout)
    return {
        "exit_code": record["rc"],
        "wall_s": round(record["wall"], 2),
        "peak_rss_mib": round(record["peak"] / (1 << 20), 1),
        "stderr_tail": record["err"][-1500:],
    }


def train_argv(data: Path, run_dir: Path, epochs: int) -> list[str]:
    argv = [sys.executable, "-m", "dynforecast", "train", str(data), "--model", "egnn"]
    argv += ["--epochs", str(epochs), "--batch-size", "32", "--out", str(run_dir), "--quiet"]
    for setting in TRAIN_SETTINGS:
        argv += ["--set", setting]
    return argv


def epoch_seconds(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open() as handle:
        return [float(row["seconds"]) for row in csv.DictReader(handle)]


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "python": platform.python_version(),
    }


def files(options: argparse.Namespace) -> tuple[Path, Path, int]:
    frame_bytes = options.atoms * 3 * 4 * 2  # positions + velocities, float32
    frames = int(np.ceil(options.factor * options.limit_gib * GIB / frame_bytes))
    directory = bench_cache()
    large = directory / f"chain-{options.atoms}x{frames}.h5"
    small = directory / f"chain-{options.atoms}x{frames // 64}.h5"
    return large, small, frames


def stage_generate(options: argparse.Namespace) -> dict:
    large, small, frames = files(options)
    large.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    if not large.is_file():
        write_chain(large, options.atoms, frames)
    if not small.is_file():
        write_chain(small, options.atoms, frames // 64)
    return {
        "large": str(large),
        "large_frames": frames,
        "large_bytes": large.stat().st_size,
        "small": str(small),
        "small_frames": frames // 64,
        "small_bytes": small.stat().st_size,
        "atoms": options.atoms,
        "seconds": round(time.perf_counter() - began, 1),
    }


def stage_large(options: argparse.Namespace) -> dict:
    large, _, frames = files(options)
    if not large.is_file():
        stage_generate(options)
    limit = int(options.limit_gib * GIB)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory() as directory:
        run_dir = Path(directory) / "run"
        record = limited_run(train_argv(large, run_dir, 1), env, limit)
        record["epoch_s"] = epoch_seconds(run_dir) if record["exit_code"] == 0 else None
    return {
        **record,
        "data_bytes": large.stat().st_size,
        "frames": frames,
        "atoms": options.atoms,
        "address_space_limit_bytes": limit,
        "file_over_limit": round(large.stat().st_size / limit, 2),
        "settings": list(TRAIN_SETTINGS),
        "load_average": os.getloadavg()[0],
        "machine": machine(),
    }


def stage_small(options: argparse.Namespace) -> dict:
    _, small, _ = files(options)
    if not small.is_file():
        stage_generate(options)
    seconds: dict[str, list[float]] = {"memory": [], "file": []}
    peaks: dict[str, list[float]] = {"memory": [], "file": []}
    loads = []
    for round_index in range(options.repeats):
        order = ("memory", "file") if round_index % 2 == 0 else ("file", "memory")
        for mode in order:
            env = {
                **os.environ,
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                "DYNFORECAST_FRAMES": mode,
            }
            with tempfile.TemporaryDirectory() as directory:
                run_dir = Path(directory) / "run"
                record = limited_run(train_argv(small, run_dir, 3), env, None)
                if record["exit_code"] != 0:
                    raise RuntimeError(f"small ({mode}) failed: {record['stderr_tail']}")
                seconds[mode].extend(epoch_seconds(run_dir)[1:])
                peaks[mode].append(record["peak_rss_mib"])
            loads.append(os.getloadavg()[0])
    memory = statistics.median(seconds["memory"])
    file = statistics.median(seconds["file"])
    return {
        "data_bytes": small.stat().st_size,
        "epoch_s_memory": memory,
        "epoch_s_file": file,
        "file_over_memory": round(file / memory, 3),
        "epoch_s_all": seconds,
        "peak_rss_mib": peaks,
        "load_average": loads,
        "machine": machine(),
    }


def stage_workers(options: argparse.Namespace) -> dict:
    """One epoch of a file of 1/8 the large one's frames, out of core under the same limit, with
    0 and 1 DataLoader workers (optim.workers): epoch times and their ratio."""
    large, _, frames = files(options)
    medium = large.with_name(f"chain-{options.atoms}x{frames // 8}.h5")
    if not medium.is_file():
        write_chain(medium, options.atoms, frames // 8)
    limit = int(options.limit_gib * GIB)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    seconds: dict[str, float] = {}
    for workers in (0, 1):
        with tempfile.TemporaryDirectory() as directory:
            run_dir = Path(directory) / "run"
            argv = [*train_argv(medium, run_dir, 1), "--set", f"optim.workers={workers}"]
            record = limited_run(argv, env, limit)
            if record["exit_code"] != 0:
                raise RuntimeError(f"workers={workers} failed: {record['stderr_tail']}")
            seconds[str(workers)] = epoch_seconds(run_dir)[0]
    return {
        "data_bytes": medium.stat().st_size,
        "address_space_limit_bytes": limit,
        "epoch_s_by_workers": seconds,
        "one_worker_over_none": round(seconds["1"] / seconds["0"], 3),
        "load_average": os.getloadavg()[0],
        "machine": machine(),
    }


STAGES = {
    "generate": stage_generate,
    "large": stage_large,
    "small": stage_small,
    "workers": stage_workers,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gib", type=float, default=1.5)
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true")
    options = parser.parse_args(argv)
    options.results.mkdir(parents=True, exist_ok=True)
    for stage in options.stages:
        target = options.results / f"{stage}.json"
        if target.is_file() and not options.force:
            print(f"{stage}: done ({target})")
            continue
        result = STAGES[stage](options)
        result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{stage}: {json.dumps({k: v for k, v in result.items() if k != 'stderr_tail'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
