"""Longer N-body trajectories for rollout evaluation of models trained on the built-in set.

The built-in (EGNN) trajectories have 49 frames, so a model of the standard task (frame 30 ->
40) can roll out one step inside them. This writes trajectories of the same generator and
stream (default: EGNN's test stream indices from 12,000) integrated ``--frames`` frames long;
their first 49 frames are the built-in ones' (same initial state, same arithmetic: fast mode),
the rest continue the same dynamics, so ``dynforecast evaluate RUN long.h5 --split all --rollout
K`` rolls the trained models out K x 10 frames from frame 30 on unseen trajectories.

    python -m benchmarks.nbody_long -o nbody-long.h5 --trajectories 1000 --frames 149
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dynforecast.data import nbody
from dynforecast.io.h5md import write_h5md
from dynforecast.io.trajectory import Trajectory


def long_trajectories(
    count: int, frames: int, first_index: int, seed: int = 43
) -> list[Trajectory]:
    """``count`` trajectories of ``frames`` frames (frame k after step 100(k+1)), as Trajectory."""
    rng = np.random.RandomState(seed)
    for _ in range(first_index):  # skip-ahead in the stream, as `generate --first-index`
        nbody.draw_initial_states(rng, 1)
    initial = nbody.draw_initial_states(rng, count)
    edges = initial.charges @ np.swapaxes(initial.charges, -1, -2)
    n_steps = (frames + 1) * nbody.RECORD_EVERY
    loc, vel = nbody.integrate(initial.loc, initial.vel, edges, n_steps=n_steps)
    arrays = nbody.NBodyArrays(
        loc[:, :frames], vel[:, :frames], edges, initial.charges, seed, first_index, "fast"
    )
    saved = nbody.N_FRAMES
    nbody.N_FRAMES = frames  # nbody_trajectories writes frame k's time 0.1(k+1) for N_FRAMES
    try:
        return nbody.nbody_trajectories(arrays, names_prefix="long")
    finally:
        nbody.N_FRAMES = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--trajectories", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=149)
    parser.add_argument("--first-index", type=int, default=12_000)
    args = parser.parse_args()
    systems = long_trajectories(args.trajectories, args.frames, args.first_index)
    write_h5md(args.output, systems, overwrite=True)
    print(f"{args.output}: {len(systems)} trajectories of {args.frames} frames")


if __name__ == "__main__":
    main()
