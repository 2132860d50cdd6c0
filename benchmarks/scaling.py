"""Time and memory of one forward pass against the number of particles, radius graph, constant density.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.scaling [--sizes 10 100 1000 10000]
[--models estag sake egnn] [--json]``.

For each model and size N, in a fresh subprocess (so that peak memory is the cell's own): random
particles at a fixed density (0.1 per cubic Angstrom, an all-atom protein's) with small thermal
motion over 60 frames, one window (T=10 frames 5 apart), a radius graph with cutoff 3.5 Angstrom
(about 18 neighbours per particle, no cap), then

* ``graph_ms``: assembling the window batch, radius graph included (median of 3);
* ``forward_ms``: one inference forward pass (``torch.no_grad``, float32; median of 3 after one
  warm-up);
* ``peak_mib``: the subprocess's peak resident memory above what it held after building the data
  (``ru_maxrss``), i.e. graph + model activations.

The slope of log(time) and log(memory) against log(N) over the sizes >= 100 is printed per model:
1 means linear. Ratios between models are from the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys

DENSITY = 0.1
CUTOFF = 3.5
DEFAULT_SIZES = (10, 30, 100, 300, 1000, 3000, 10000)


def _model(name: str):
    from dynforecast.models.base import create_model

    if name == "estag":
        return create_model("estag", num_past_frames=10)
    return create_model(name)


def measure(model_name: str, n_particles: int) -> dict[str, float]:
    """One cell (see module docstring); runs in the current process."""
    import numpy as np
    import torch

    from benchmarks.data_speed import protein_like_system
    from benchmarks.timing import median_ms
    from dynforecast.data.graphs import GraphSpec
    from dynforecast.data.windows import WindowDataset, WindowSpec

    torch.manual_seed(0)
    system = protein_like_system(n_particles, density=DENSITY, n_frames=60)
    data = WindowDataset(
        [system], WindowSpec(past_frames=10, spacing=5), GraphSpec("radius", cutoff=CUTOFF)
    )
    model = _model(model_name).eval()
    ids = np.array([0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    graph_ms = median_ms(lambda: data.batch(ids), repeats=3, warmup=0)
    batch = data.batch(ids)

    def forward() -> None:
        with torch.no_grad():
            model(batch)

    forward_ms = median_ms(forward, repeats=3, warmup=1)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": model_name,
        "particles": n_particles,
        "edges": int(batch.num_edges),
        "graph_ms": graph_ms,
        "forward_ms": forward_ms,
        "peak_mib": max(after - before, 0) / 1024.0,
    }


def slope(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(size)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(v, 1e-9)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--models", nargs="+", default=["estag", "sake", "egnn"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cell", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(measure(args.cell[0], int(args.cell[1]))))
        return 0
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for model in args.models:
        for size in args.sizes:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.scaling", "--cell", model, str(size)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            if not args.json:
                print(
                    f"{model:6s} N={size:6d} edges={row['edges']:8d} graph {row['graph_ms']:9.1f} ms "
                    f"forward {row['forward_ms']:9.1f} ms peak +{row['peak_mib']:8.1f} MiB",
                    flush=True,
                )
    slopes = {}
    for model in args.models:
        big = [r for r in rows if r["model"] == model and r["particles"] >= 100]
        if len(big) >= 2:
            sizes = [r["particles"] for r in big]
            slopes[model] = {
                key: slope(sizes, [r[key] for r in big])
                for key in ("graph_ms", "forward_ms", "peak_mib")
            }
    if args.json:
        print(json.dumps({"rows": rows, "slopes": slopes}, indent=1))
    else:
        for model, values in slopes.items():
            print(f"{model}: log-log slope " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
