"""The CPU thread count of a training process (train/threads.py): affinity, cgroup quotas (v1 and
v2, nested), SLURM_CPUS_PER_TASK, ranks sharing a node, OMP_NUM_THREADS, ``--threads``; the
start-of-run line says which applied, and torch trains with that many threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.errors import UsageError
from dynforecast.io.h5md import write_h5md
from dynforecast.train.config import resolve_config
from dynforecast.train.run import train
from dynforecast.train.threads import cgroup_cpu_quota, choose_threads

runner = CliRunner()
SMALL = ["--set", "model.hidden_dim=8", "--set", "model.num_layers=1"]


def _v2(root: Path, path: str, cpu_max: dict[str, str]) -> Path:
    """A cgroup v2 tree under ``root``: ``cpu.max`` per directory; returns /proc/self/cgroup."""
    for directory, text in cpu_max.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / "cpu.max").write_text(text + "\n")
    proc = root / "proc-cgroup"
    proc.write_text(f"0::/{path}\n")
    return proc


def _v1(root: Path, mount: str, path: str, quotas: dict[str, tuple[int, int]]) -> Path:
    for directory, (quota, period) in quotas.items():
        where = root / mount / directory
        where.mkdir(parents=True, exist_ok=True)
        (where / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (where / "cpu.cfs_period_us").write_text(f"{period}\n")
    proc = root / "proc-cgroup"
    proc.write_text(f"12:memory:/{path}\n4:{mount}:/{path}\n1:name=systemd:/{path}\n")
    return proc


def test_cgroup_v2_takes_the_tightest_quota_on_the_path_rounded_up(tmp_path):
    proc = _v2(
        tmp_path,
        "user.slice/job/step",
        {"": "max 100000", "user.slice": "400000 100000", "user.slice/job": "150000 100000",
         "user.slice/job/step": "max 100000"},
    )  # fmt: skip
    assert cgroup_cpu_quota(tmp_path, proc) == 2  # 1.5 CPUs of the job's cgroup -> 2 threads
    choice = choose_threads(None, environ={}, cgroup_root=tmp_path, proc_cgroup=proc, affinity=16)
    assert (choice.count, choice.source) == (2, "cgroup CPU quota")
    assert choice.describe() == "2 threads per process (cgroup CPU quota)"


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path):
    proc = _v2(tmp_path, "a/b", {"": "max 100000", "a": "max", "a/b": "max 100000"})
    assert cgroup_cpu_quota(tmp_path, proc) is None
    choice = choose_threads(None, environ={}, cgroup_root=tmp_path, proc_cgroup=proc, affinity=3)
    assert (choice.count, choice.source) == (3, "CPU affinity")


def test_cgroup_v1_reads_the_cpu_controller_of_the_process_path(tmp_path):
    proc = _v1(
        tmp_path,
        "cpu,cpuacct",
        "slurm/uid_1/job_7",
        {"": (-1, 100000), "slurm": (-1, 100000), "slurm/uid_1/job_7": (300000, 100000)},
    )
    assert cgroup_cpu_quota(tmp_path, proc) == 3
    choice = choose_threads(None, environ={}, cgroup_root=tmp_path, proc_cgroup=proc, affinity=8)
    assert (choice.count, choice.source) == (3, "cgroup CPU quota")


def test_cgroup_v1_without_quota_and_unreadable_trees_give_none(tmp_path):
    proc = _v1(tmp_path, "cpu,cpuacct", "x", {"": (-1, 100000), "x": (-1, 100000)})
    assert cgroup_cpu_quota(tmp_path, proc) is None
    assert cgroup_cpu_quota(tmp_path / "missing", tmp_path / "missing-proc") is None


def test_slurm_cpus_per_task_is_per_rank_under_srun_and_per_agent_under_torchrun(tmp_path):
    none = tmp_path / "no-cgroup"
    kw = {"cgroup_root": none, "proc_cgroup": none, "affinity": 32}
    env = {"SLURM_CPUS_PER_TASK": "8"}
    srun = choose_threads(None, ranks_on_node=4, launcher="slurm", environ=env, **kw)
    assert (srun.count, srun.source) == (8, "SLURM_CPUS_PER_TASK")
    agent = choose_threads(None, ranks_on_node=4, launcher="torchrun", environ=env, **kw)
    assert (agent.count, agent.source) == (2, "SLURM_CPUS_PER_TASK / 4 ranks")
    alone = choose_threads(None, environ=env, **kw)
    assert (alone.count, alone.source) == (8, "SLURM_CPUS_PER_TASK")
    bound = choose_threads(
        None, ranks_on_node=4, launcher="slurm", environ=env, **{**kw, "affinity": 4}
    )
    assert (bound.count, bound.source) == (4, "CPU affinity")  # a tighter binding wins
    shared = choose_threads(None, ranks_on_node=3, launcher="torchrun", environ={}, **kw)
    assert (shared.count, shared.source) == (10, "CPU affinity / 3 ranks")
    crowded = choose_threads(None, ranks_on_node=64, launcher="slurm", environ={}, **kw)
    assert crowded.count == 1


def test_omp_num_threads_and_threads_option_win_and_bad_values_are_refused(tmp_path):
    kw = {"cgroup_root": tmp_path, "proc_cgroup": tmp_path / "none", "affinity": 16}
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "3"}, **kw).source == "OMP_NUM_THREADS"
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "2,1"}, **kw).count == 2
    given = choose_threads(
        5, environ={"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "8"}, machine_cpus=16, **kw
    )
    assert (given.count, given.source) == (5, "--threads")


def test_asking_for_more_threads_than_cpus_is_honoured_and_said(tmp_path):
    kw = {"cgroup_root": tmp_path, "proc_cgroup": tmp_path / "none", "affinity": 2}
    given = choose_threads(64, environ={}, machine_cpus=64, **kw)
    assert (given.count, given.source) == (
        64,
        "--threads; more than the 2 CPUs this process may use: CPU affinity",
    )
    with pytest.raises(UsageError) as beyond:
        choose_threads(999, environ={}, machine_cpus=64, **kw)
    assert str(beyond.value) == (
        "--threads 999: more than the 64 CPUs of this machine (this process may use 2: "
        "CPU affinity)"
    )
    given = choose_threads(None, environ={"OMP_NUM_THREADS": "4", "SLURM_CPUS_PER_TASK": "1"}, **kw)
    assert given.source == (
        "OMP_NUM_THREADS; more than the 1 CPU this process may use: SLURM_CPUS_PER_TASK"
    )
    assert choose_threads(2, environ={}, **kw).source == "--threads"
    with pytest.raises(UsageError) as bad:
        choose_threads(None, environ={"OMP_NUM_THREADS": "four"}, **kw)
    assert str(bad.value) == (
        "environment variable OMP_NUM_THREADS: expected a positive integer (got 'four')"
    )
    with pytest.raises(UsageError, match=r"^--threads: expected a positive number \(got 0\)$"):
        choose_threads(0, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "nbody.h5"
    write_h5md(path, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    return path


def _train_cli(data: Path, out: Path, *extra: str):
    args = ["train", str(data), "--model", "egnn", "--epochs", "1", "--device", "cpu"]
    return runner.invoke(app, [*args, *SMALL, "--out", str(out), *extra])


def test_threads_option_is_printed_and_used_by_the_training(data, tmp_path, monkeypatch):
    import dynforecast.train.threads as threads_module

    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 64)  # 3 threads on any machine
    before = torch.get_num_threads()
    result = _train_cli(data, tmp_path / "run", "--threads", "2")
    assert result.exit_code == 0, result.stderr
    assert "device     cpu, 2 threads (--threads), precision fp32" in result.stderr
    assert torch.get_num_threads() == before  # restored for the rest of the process

    seen = []
    config = resolve_config(None, [], {"optim.epochs": 2, "model.name": "egnn", "device": "cpu"})
    train(data, config, tmp_path / "hook", threads=3,
          on_epoch_end=lambda epoch, row: seen.append(torch.get_num_threads()))  # fmt: skip
    assert seen == [3, 3]


def test_more_threads_than_the_machine_has_is_one_usage_line(data, tmp_path):
    cpus = os.cpu_count()
    result = _train_cli(data, tmp_path / "run", "--threads", str(cpus + 1))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: --threads {cpus + 1}: more than the {cpus} CPU{'' if cpus == 1 else 's'} of "
        "this machine (this process may use "
    )
    assert not (tmp_path / "run").exists()


def test_the_default_comes_from_the_environment_and_the_cpus(data, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    expected = choose_threads(None)
    assert expected.source in ("CPU affinity", "cgroup CPU quota")
    result = _train_cli(data, tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    plural = "" if expected.count == 1 else "s"
    assert f"device     cpu, {expected.count} thread{plural} ({expected.source})" in result.stderr

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    result = _train_cli(data, tmp_path / "slurm")
    assert "device     cpu, 1 thread (SLURM_CPUS_PER_TASK)" in result.stderr


def test_bad_thread_counts_are_one_line_usage_errors(data, tmp_path, monkeypatch):
    result = _train_cli(data, tmp_path / "run", "--threads", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --threads: expected a positive number (got 0)"
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    result = _train_cli(data, tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: environment variable OMP_NUM_THREADS: expected a positive integer (got 'lots')"
    )
    assert not (tmp_path / "run").exists()
