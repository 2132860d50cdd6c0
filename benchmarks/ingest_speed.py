"""Ingest speed and memory: AdK (3341 atoms, PSF + DCD from MDAnalysisTests) into H5MD.

Measures, in one run and on the same file:

- ``ingest`` in chunks (the default 256 frames, and a small chunk),
- ``ingest`` with one chunk holding every frame (what a non-streaming converter does),
- the baseline ``mdtraj.load`` of the whole trajectory (reading only, no writing),

printing frames/s (median wall time over repeats) and the peak traced memory of each
(``tracemalloc``, which sees NumPy's buffers), with ratios against the baselines. ``--repeat K``
first writes a DCD that concatenates the 98 AdK frames K times, so that memory differences
between streaming and loading everything show at a realistic length.

    OMP_NUM_THREADS=1 python -m benchmarks.ingest_speed --repeat 10
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks.timing import median_ms


def peak_traced_mb(fn: Callable[[], object]) -> float:
    """Peak memory (MiB) that Python and NumPy allocate while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def make_long_dcd(psf: str, dcd: str, repeat: int, directory: Path) -> tuple[str, int]:
    """The AdK DCD repeated ``repeat`` times (written once, outside any measurement)."""
    import mdtraj

    from dynforecast.io.quiet import stdout_to_stderr

    with warnings.catch_warnings(), stdout_to_stderr():
        warnings.simplefilter("ignore")
        frames = mdtraj.load(dcd, top=psf)
    if repeat == 1:
        return dcd, frames.n_frames
    long = mdtraj.join([frames] * repeat)
    path = directory / f"adk_x{repeat}.dcd"
    long.save_dcd(str(path))
    return str(path), long.n_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="DCD length in copies of AdK")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median)")
    args = parser.parse_args()

    import mdtraj
    from MDAnalysisTests.datafiles import DCD, PSF

    from dynforecast.io.ingest import ingest
    from dynforecast.io.quiet import stdout_to_stderr

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        dcd, n_frames = make_long_dcd(PSF, DCD, args.repeat, directory)
        out = directory / "adk.h5"

        def run_ingest(chunk: int | None) -> Callable[[], object]:
            return lambda: ingest([dcd], out, topology=PSF, chunk_frames=chunk, overwrite=True)

        def run_load() -> object:
            with stdout_to_stderr():
                return mdtraj.load(dcd, top=PSF)

        cases = {
            "ingest, default chunk (8 MiB)": run_ingest(None),
            "ingest, chunk 256 frames": run_ingest(256),
            "ingest, chunk 32 frames": run_ingest(32),
            f"ingest, one chunk ({n_frames} frames)": run_ingest(n_frames),
            "mdtraj.load (read only)": run_load,
        }
        results = {}
        for name, fn in cases.items():
            ms = median_ms(fn, repeats=args.repeats, warmup=1)
            results[name] = (n_frames / (ms / 1e3), peak_traced_mb(fn))

    load_rate = results["mdtraj.load (read only)"][0]
    whole_mb = results[f"ingest, one chunk ({n_frames} frames)"][1]
    print(f"AdK PSF+DCD: {n_frames} frames x 3341 atoms ({args.repeats} timed runs, median)")
    print(f"{'case':<34} {'frames/s':>10} {'peak MiB':>9} {'speed/load':>11} {'mem/one-chunk':>14}")
    for name, (rate, mb) in results.items():
        print(
            f"{name:<34} {rate:>10.0f} {mb:>9.1f} {rate / load_rate:>11.2f} {mb / whole_mb:>14.2f}"
        )
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
