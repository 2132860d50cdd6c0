"""`dynforecast train` launched the SLURM way: two processes started as srun starts them (the test
sets SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS / SLURM_JOB_NODELIST / SLURM_JOB_ID ..., no
torchrun), on the CPU with gloo.

- they step like one process with the same global batch (same parameters, float tolerance),
  and only rank 0 prints the result line and writes files;
- a rank killed by SIGKILL ends the other within a bounded time, with a one-line error;
- SIGUSR1 to one rank stops both (exit 75) and the run resumes under 1 process, then 2 again,
  to the parameters of a run never stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import write_h5md
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.config import resolve_config
from dynforecast.train.launch import PORT_BASE, PORT_SPAN
from dynforecast.train.metrics import read_metrics_csv
from dynforecast.train.run import train

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")

CLI = [sys.executable, "-c", "from dynforecast.cli import app; app()"]
SMALL = ["model.hidden_dim=8", "model.num_layers=1", "optim.lr=0.005"]
OPTIONS = ["--model", "egnn", "--seed", "1", "--device", "cpu"]
OPTIONS += [w for s in SMALL for w in ("--set", s)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("slurm") / "nbody.h5"
    write_h5md(path, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    return path


def free_job_id() -> int:
    """A job id whose derived port (`launch.slurm_port`, step 0) is free on this host."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if PORT_BASE <= port < PORT_BASE + PORT_SPAN and port % 10 == PORT_BASE % 10:
            return (port - PORT_BASE) // 10
    for job in range(1000, 2000):  # the OS hands out high ports: probe ours directly
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", PORT_BASE + 10 * job % PORT_SPAN))
            except OSError:
                continue
        return job
    raise RuntimeError("no free port")


def slurm_env(rank: int, world: int, job: int) -> dict[str, str]:
    """What srun gives task ``rank`` of a one-node step of ``world`` tasks with 1 CPU each."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_", "OMP_"))
    }
    env.update(
        SLURM_PROCID=str(rank),
        SLURM_LOCALID=str(rank),
        SLURM_NODEID="0",
        SLURM_NTASKS=str(world),
        SLURM_STEP_NUM_TASKS=str(world),
        SLURM_STEP_TASKS_PER_NODE=str(world),
        SLURM_JOB_NODELIST="localhost",
        SLURM_STEP_NODELIST="localhost",
        SLURM_JOB_ID=str(job),
        SLURM_STEP_ID="0",
        SLURM_CPUS_PER_TASK="1",
        DYNFORECAST_DDP_TIMEOUT="60",
    )
    return env


def srun(args: list[str], cwd: Path, world: int = 2) -> list[subprocess.Popen]:
    job = free_job_id()
    return [
        subprocess.Popen(
            [*CLI, *args],
            env=slurm_env(rank, world, job),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]


def finish(processes: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        out.append((process.returncode, stdout, stderr))
    return out


def reference(data: Path, run: Path, epochs: int, batch: int) -> dict[str, torch.Tensor]:
    """One process, in this process, global batch ``batch``: the weights after ``epochs``."""
    options = {"optim.epochs": epochs, "optim.batch_size": batch, "seed": 1, "device": "cpu"}
    config = resolve_config(None, SMALL, {**options, "model.name": "egnn"})
    train(data, config, run)
    return load_checkpoint(run / "last.pt")["model_state"]


def assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow  # two fresh processes (~20 s on the loaded 2-core machine)
def test_two_srun_tasks_step_like_one_process_with_the_global_batch(data, tmp_path):
    want = reference(data, tmp_path / "one", epochs=1, batch=8)
    args = ["train", str(data), *OPTIONS, "--epochs", "1", "--batch-size", "4", "--out", "two"]
    (rc0, out0, err0), (rc1, out1, err1) = finish(srun(args, tmp_path))
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert_same_weights(load_checkpoint(tmp_path / "two" / "last.pt")["model_state"], want)
    # one result line, from rank 0; rank 1 logs nothing
    assert len(out0.strip().splitlines()) == 1 and out0.startswith("two: egnn, 1 epoch, best val")
    assert out1 == "" and err1 == ""
    assert "device     cpu, 1 thread (SLURM_CPUS_PER_TASK), precision fp32" in err0
    assert "processes  2 (slurm, gloo; 2 on this node)" in err0
    assert "batch      4 windows per process x 2 processes = global batch 8" in err0
    assert sorted(os.listdir(tmp_path / "two")) == [
        ".lock", "best.pt", "config.json", "last.pt", "metrics.csv",
    ]  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]  # rank 1 wrote nothing elsewhere
    written = load_checkpoint(tmp_path / "two" / "last.pt")
    assert (written["world_size"], written["global_batch"]) == (2, 8)


@pytest.mark.slow  # two fresh processes (~15 s)
def test_a_killed_rank_ends_the_other_within_a_bounded_time(data, tmp_path):
    args = ["train", str(data), *OPTIONS, "--epochs", "1000", "--batch-size", "4", "--out", "r"]
    rank0, rank1 = srun(args, tmp_path)
    assert rank0.stderr is not None
    for line in rank0.stderr:  # training has started on both ranks
        if line.startswith("epoch 1/1000 "):
            break
    rank1.kill()
    killed = time.monotonic()
    assert rank0.wait(timeout=60) == 7
    waited = time.monotonic() - killed
    assert waited < 30, f"rank 0 took {waited:.1f} s to notice"
    last = rank0.stderr.read().strip().splitlines()[-1]
    assert last.startswith("error: rank 0 of 2: another rank ended or stopped answering (")
    assert last.endswith("all ranks stop; rerun the job to resume from r/last.pt")
    assert (tmp_path / "r" / "last.pt").is_file()  # the checkpoint the line names is there
    rank1.communicate()


@pytest.mark.slow  # 3 x two fresh processes (~40 s)
def test_rank_0_killed_ends_rank_1_with_exit_7_every_time(data, tmp_path):
    """gloo's threads could abort the surviving rank after its error line (SIGABRT, 134) in
    about one run of six; it must end with 7 and its one line each time."""
    for attempt in range(3):
        out = f"r{attempt}"
        args = ["train", str(data), *OPTIONS, "--epochs", "1000", "--batch-size", "4"]
        rank0, rank1 = srun([*args, "--out", out], tmp_path)
        assert rank0.stderr is not None
        for line in rank0.stderr:
            if line.startswith("epoch 1/1000 "):
                break
        rank0.kill()
        assert rank1.wait(timeout=60) == 7
        lines = rank1.stderr.read().strip().splitlines()  # type: ignore[union-attr]
        assert len(lines) == 1 and lines[0].startswith(
            "error: rank 1 of 2: another rank ended or stopped answering ("
        ), lines
        rank0.communicate()


@pytest.mark.parametrize("alone", [0, 1])
def test_a_rank_whose_peer_never_started_ends_after_the_join_timeout(data, tmp_path, alone):
    """Rank 0 waits for the others at its store, the others for rank 0's store to answer: a
    rank killed before it joined ends the rest after DYNFORECAST_DDP_JOIN_TIMEOUT, exit 7."""
    env = {**slurm_env(alone, 2, free_job_id()), "DYNFORECAST_DDP_JOIN_TIMEOUT": "2"}
    args = ["train", str(data), *OPTIONS, "--epochs", "1", "--out", "r"]
    started = time.monotonic()
    result = subprocess.run(
        [*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 7, result.stderr
    assert time.monotonic() - started < 60
    prefix = f"error: slurm: rank {alone} of 2 (local rank {alone}), master localhost:"
    assert result.stderr.startswith(prefix), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no C++ stack trace
    assert result.stderr.strip().endswith("; all ranks stop")
    waited = "1/2 clients joined" if alone == 0 else "did not answer within 2 s"
    assert waited in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # six fresh processes (~60 s)
def test_usr1_to_one_rank_stops_both_and_the_run_resumes_under_1_then_2_processes(data, tmp_path):
    want = reference(data, tmp_path / "ref", epochs=3, batch=8)
    metrics_want = read_metrics_csv(tmp_path / "ref" / "metrics.csv")
    args = ["train", str(data), *OPTIONS, "--batch-size", "4", "--out", "run"]
    rank0, rank1 = srun([*args, "--epochs", "3"], tmp_path)
    assert rank0.stderr is not None
    for line in rank0.stderr:
        if line.startswith("epoch 1/3 "):
            break
    rank1.send_signal(signal.SIGUSR1)  # in epoch 2, a few steps in
    (rc0, _, err0), (rc1, _, err1) = [
        (p.wait(timeout=60), "", p.stderr.read())
        for p in (rank0, rank1)  # type: ignore[union-attr]
    ]
    assert (rc0, rc1) == (75, 75), err0 + err1
    assert "stopped by SIGUSR1" in err0.strip().splitlines()[-1]
    stopped = load_checkpoint(tmp_path / "run" / "last.pt")
    assert stopped["world_size"] == 2 and (stopped["epoch"], stopped["windows_done"]) != (0, 0)

    # 1 process with the same global batch (8) for epoch 2, then 2 processes again for epoch 3
    one = subprocess.run(
        [*CLI, *args[:-4], "--batch-size", "8", "--out", "run", "--epochs", "2"],
        env=slurm_env(0, 1, 1), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert "note: global batch" not in one.stderr  # 8 x 1 = 4 x 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["world_size"] == 1
    (rc0, _, err0), (rc1, _, err1) = finish(srun([*args, "--epochs", "3"], tmp_path))
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert "resuming " in err0 and "2 epochs done" in err0
    assert_same_weights(load_checkpoint(tmp_path / "run" / "last.pt")["model_state"], want)
    got = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    for row, ref in zip(got, metrics_want, strict=True):
        assert float(row["val_mse"]) == pytest.approx(float(ref["val_mse"]), rel=1e-4)


@pytest.mark.slow  # compilation: ~90 s for two ranks on the loaded 2-core machine
def test_compile_with_two_srun_tasks_steps_like_one_eager_process(data, tmp_path):
    want = reference(data, tmp_path / "one", epochs=1, batch=8)
    args = ["train", str(data), *OPTIONS, "--epochs", "1", "--batch-size", "4", "--compile"]
    (rc0, _, err0), (rc1, _, err1) = finish(srun([*args, "--out", "two"], tmp_path), timeout=600)
    assert (rc0, rc1) == (0, 0), err0 + err1
    assert_same_weights(load_checkpoint(tmp_path / "two" / "last.pt")["model_state"], want)
