"""Batches built by DataLoader workers ahead of the step are the batches built in process.

`optim.workers` changes where a batch is assembled, never what it holds: batches, training
metrics and weights are bit-identical for 0 and more workers, out of core too; a stop signal to
the whole process group (what SLURM sends) still stops training with last.pt and exit 75, and
no worker outlives the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dynforecast.data.graphs import GraphSpec
from dynforecast.data.loading import load_systems
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.data.prefetch import batches
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.errors import UsageError
from dynforecast.io.h5md import write_h5md
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import resolve_config
from dynforecast.train.metrics import read_metrics_csv
from dynforecast.train.run import train

FIELDS = ("positions", "velocities", "target", "species", "node_attrs", "edge_src", "edge_dst",
          "node_graph")  # fmt: skip
SMALL = ["optim.batch_size=8", "model.hidden_dim=8", "model.num_layers=1"]


@pytest.fixture
def nbody_file(tmp_path):
    path = tmp_path / "nbody.h5"
    write_h5md(path, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    return path


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "file"])
def test_worker_batches_equal_in_process_batches_in_order(nbody_file, lazy):
    systems = load_systems(nbody_file, lazy=lazy)
    dataset = WindowDataset(systems, WindowSpec(past_frames=3, spacing=2), GraphSpec("all_pairs"))
    order = np.random.default_rng(0).permutation(len(dataset))
    chunks = [order[i : i + 7] for i in range(0, len(order), 7)]
    here = list(batches(dataset, chunks, workers=0))
    ahead = list(batches(dataset, chunks, workers=2))
    assert len(here) == len(ahead) == len(chunks)
    for a, b in zip(here, ahead, strict=True):
        for name in FIELDS:
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert a.num_graphs == b.num_graphs


def test_training_with_a_worker_gives_the_same_weights_and_metrics(nbody_file, tmp_path):
    runs = {}
    for workers in (0, 1):
        config = resolve_config(
            None, [*SMALL, f"optim.workers={workers}"], {"optim.epochs": 2, "model.name": "egnn"}
        )
        runs[workers] = train(nbody_file, config, tmp_path / f"w{workers}").run_dir
    assert (
        read_metrics_csv(runs[0] / "metrics.csv")[0]["train_mse"]
        == read_metrics_csv(runs[1] / "metrics.csv")[0]["train_mse"]
    )
    a, b = (load_checkpoint(runs[w] / "last.pt")["model_state"] for w in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(runs[1] / "last.pt")["train_config"]["optim"]["workers"] == 1


def test_negative_workers_are_refused():
    with pytest.raises(UsageError) as caught:
        resolve_config(None, ["optim.workers=-1"])
    assert str(caught.value) == (
        "configuration key 'optim.workers': expected 0 or more worker processes (got -1)"
    )


@pytest.mark.parametrize(
    ("out_of_core", "threads", "cpus", "workers", "note"),
    [
        (True, 1, 2, 1, "workers: 1 DataLoader process builds batches ahead (frames read on "
         "demand; 1 CPU spare beyond the 1 training thread)"),
        (True, 2, 2, 0, "workers: none (no CPU spare beyond the 2 training threads; --set "
         "optim.workers=1 prefetches batches anyway)"),
        (False, 1, 8, 0, None),
    ],
)  # fmt: skip
def test_auto_workers_need_out_of_core_frames_and_a_spare_cpu(
    out_of_core, threads, cpus, workers, note
):
    """A worker that takes a core from the training threads slowed an epoch (1.085x)."""
    from types import SimpleNamespace

    from dynforecast.train.setup import resolve_workers

    notes: list[str] = []
    dataset = SimpleNamespace(frames_out_of_core=out_of_core)
    config = resolve_workers(
        resolve_config(None, []), dataset, notes, threads=threads, usable_cpus=cpus
    )
    assert config.optim.workers == workers
    assert notes == ([] if note is None else [note])
    chosen = resolve_config(None, ["optim.workers=2"])
    assert resolve_workers(chosen, dataset, [], threads=threads, usable_cpus=cpus) is chosen


def test_usable_cpus_ignore_the_thread_settings(tmp_path):
    from dynforecast.train.threads import choose_threads, usable_cpus

    env = {"OMP_NUM_THREADS": "1"}
    kw = {"cgroup_root": tmp_path, "proc_cgroup": tmp_path / "none", "affinity": 6}
    assert choose_threads(None, environ=env, **kw).count == 1
    assert usable_cpus(environ=env, **kw).count == 6
    assert usable_cpus(environ={"SLURM_CPUS_PER_TASK": "4"}, **kw).count == 4


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")
def test_a_stop_signal_to_the_process_group_stops_training_and_its_workers(tmp_path):
    data = tmp_path / "nbody.h5"
    write_h5md(data, nbody_trajectories(simulate_nbody(60, seed=43, mode="fast")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DYNFORECAST_FRAMES": "file"}
    command = [sys.executable, "-m", "dynforecast", "train", str(data), "--model", "egnn",
               "--epochs", "50", "--out", str(tmp_path / "run"), "--set", "optim.workers=2",
               *(w for s in SMALL for w in ("--set", s))]  # fmt: skip
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    seen = []
    for line in process.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith("epoch 1/50 "):
            os.killpg(process.pid, signal.SIGTERM)  # as SLURM signals every process of a step
            break
    rest = process.stderr.read()  # type: ignore[union-attr]
    assert process.wait(timeout=60) == 75, "".join(seen) + rest
    assert "frames     read from the file on demand" in "".join(seen)
    assert "stopped by SIGTERM" in rest.strip().splitlines()[-1]
    assert not load_checkpoint(tmp_path / "run" / "last.pt")["finished"]
    deadline = time.monotonic() + 10
    while True:  # the group is empty once every worker has gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a DataLoader worker outlived the run"
        time.sleep(0.1)
