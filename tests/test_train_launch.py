"""Who launched `train` (train/launch.py): srun tasks, torchrun (also under srun), a batch script
without srun, a plain process; malformed variables are one-line usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.errors import UsageError
from dynforecast.io.h5md import write_h5md
from dynforecast.train.launch import (
    Launch,
    batch_script_note,
    detect_launch,
    expand_hostlist,
    slurm_tasks_on_this_node,
)

#: srun's environment for task 5 of 8 (2 nodes x 4 tasks), on the second node.
SRUN = {
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_NTASKS": "8",
    "SLURM_STEP_NUM_TASKS": "8",
    "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_STEP_NODELIST": "gpu[07-08]",
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_ID": "3",
}


def test_an_srun_task_finds_its_rank_world_and_the_first_node_of_the_step():
    launch = detect_launch(SRUN)
    assert launch == Launch(
        launcher="slurm", rank=5, local_rank=1, world_size=8, master_addr="gpu07",
        master_port=12000 + (10 * 4242 + 3) % 20000, local_world_size=4,
    )  # fmt: skip
    assert launch.init_method == f"tcp://gpu07:{launch.master_port}"
    assert launch.describe() == (
        f"slurm: rank 5 of 8 (local rank 1), master gpu07:{launch.master_port}"
    )
    given = detect_launch({**SRUN, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29600"})
    assert given is not None and given.init_method == "tcp://10.0.0.1:29600"
    ipv6 = detect_launch({**SRUN, "MASTER_ADDR": "fe80::1"})
    assert ipv6 is not None and ipv6.init_method.startswith("tcp://[fe80::1]:")


def test_torchrun_variables_win_over_slurm_and_one_task_is_no_launch():
    torchrun = {**SRUN, "RANK": "2", "WORLD_SIZE": "16", "LOCAL_RANK": "2",
                "LOCAL_WORLD_SIZE": "8", "MASTER_ADDR": "gpu07", "MASTER_PORT": "29500"}  # fmt: skip
    launch = detect_launch(torchrun)
    assert launch is not None and (launch.launcher, launch.rank, launch.world_size) == (
        "torchrun", 2, 16,
    )  # fmt: skip
    assert launch.init_method is None and launch.local_world_size == 8
    assert detect_launch({**SRUN, "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    assert detect_launch({}) is None


def test_a_batch_script_outside_srun_trains_alone_with_a_note():
    script = {k: v for k, v in SRUN.items() if not k.startswith("SLURM_STEP")}
    script["SLURM_PROCID"] = "0"
    assert detect_launch(script) is None
    assert batch_script_note(script) == (
        "note: SLURM_NTASKS=8 but this process was not started by srun; training in one "
        "process (start it as `srun dynforecast train ...` for one process per task)"
    )
    assert batch_script_note(SRUN) is None and batch_script_note({}) is None


def test_host_lists_and_tasks_per_node():
    assert expand_hostlist("node[01-03,07],gpu-a1") == [
        "node01", "node02", "node03", "node07", "gpu-a1",
    ]  # fmt: skip
    assert (
        slurm_tasks_on_this_node({"SLURM_STEP_TASKS_PER_NODE": "4(x2),3", "SLURM_NODEID": "2"}) == 3
    )
    assert slurm_tasks_on_this_node({"SLURM_TASKS_PER_NODE": "garbage"}) == 1
    # without the per-node list: the step's tasks over its nodes, rounded up
    counts = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_NUM_NODES": "2"}
    assert slurm_tasks_on_this_node(counts) == 4
    assert slurm_tasks_on_this_node({"SLURM_NTASKS": "3", "SLURM_NNODES": "2"}) == 2
    listed = {"SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "node[01-02]"}
    assert slurm_tasks_on_this_node(listed) == 2
    assert slurm_tasks_on_this_node({"SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "localhost"}) == 4
    assert slurm_tasks_on_this_node({"SLURM_NTASKS": "4"}) == 1  # no nodes known
    assert slurm_tasks_on_this_node({"SLURM_NTASKS": "x", "SLURM_NNODES": "2"}) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"SLURM_PROCID": "x"}, "environment variable SLURM_PROCID: expected an integer (got 'x')"),
        ({"SLURM_PROCID": "8"}, "environment variable SLURM_PROCID=8: outside the world of SLURM_NTASKS=8"),
        ({"SLURM_NTASKS": "0"}, "environment variable SLURM_NTASKS: expected >= 1 (got 0)"),
        ({"SLURM_STEP_NODELIST": "gpu[07-"}, "SLURM node list 'gpu[07-': not a host list ("),
        ({"RANK": "3", "WORLD_SIZE": "2"}, "environment variable RANK=3: outside the world of WORLD_SIZE=2"),
    ],
)  # fmt: skip
def test_malformed_launch_variables_are_usage_errors(change, message):
    with pytest.raises(UsageError) as error:
        detect_launch({**SRUN, **change})
    assert str(error.value).startswith(message)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("launch") / "nbody.h5"
    write_h5md(path, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    return path


def _train(data: Path, out: Path):
    args = ["train", str(data), "--model", "egnn", "--epochs", "1", "--device", "cpu"]
    args += ["--set", "model.hidden_dim=8", "--set", "model.num_layers=1", "--out", str(out)]
    return CliRunner().invoke(app, args)


def _clear(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_train_in_a_batch_script_notes_it_and_runs_alone(data, tmp_path, monkeypatch):
    _clear(monkeypatch)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "0")
    result = _train(data, tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "note: SLURM_NTASKS=4 but this process was not started by srun" in result.stderr
    assert "processes  " not in result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'run'}: egnn, 1 epoch")


def test_train_with_a_malformed_slurm_variable_is_one_error_line(data, tmp_path, monkeypatch):
    _clear(monkeypatch)
    for name, value in {**SRUN, "SLURM_PROCID": "five"}.items():
        monkeypatch.setenv(name, value)
    result = _train(data, tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: environment variable SLURM_PROCID: expected an integer (got 'five')"
    )
    assert not (tmp_path / "run").exists()


def test_batch_size_is_documented_per_process_in_train_help():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert (
        "Windows per step of each process (optim.batch_size); under DDP the global batch is "
        in (text)
    )
    assert "this times the number of processes (printed at the start)." in text


def test_a_rank_other_than_0_prints_logs_and_writes_nothing(data, tmp_path, monkeypatch):
    from dynforecast.train import run
    from dynforecast.train.distributed import DistContext

    _clear(monkeypatch)
    # rank 1 of a world whose collectives are identities: what rank 1 does alone
    monkeypatch.setattr(run, "init_from_env", lambda device: DistContext(rank=1, world_size=1))
    result = _train(data, tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    assert not (tmp_path / "run").exists()


def test_the_peer_failure_line_names_the_checkpoint_only_where_one_was_written(
    tmp_path, monkeypatch
):
    from dynforecast.train import distributed
    from dynforecast.train.distributed import DistContext, group_broken, peer_failure

    monkeypatch.setattr(distributed, "_group_broken", False)  # restored after the test
    context = DistContext(rank=1, world_size=2, launched=True, launcher="slurm")
    failure = RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:6809.\nmore")
    before = str(peer_failure(failure, context, tmp_path))
    assert before == (
        "rank 1 of 2: another rank ended or stopped answering ([pair.cc:553] Connection closed "
        "by peer [127.0.0.1]:6809.); all ranks stop; no checkpoint was written yet: rerunning "
        "the job starts the run afresh"
    )
    assert group_broken()
    (tmp_path / "last.pt").write_bytes(b"")
    after = str(peer_failure(failure, context, tmp_path))
    assert after.endswith(f"; all ranks stop; rerun the job to resume from {tmp_path}/last.pt")


@pytest.mark.parametrize("variable", ["DYNFORECAST_DDP_TIMEOUT", "DYNFORECAST_DDP_JOIN_TIMEOUT"])
def test_ddp_timeouts_must_be_positive_seconds(monkeypatch, variable):
    from dynforecast.train.distributed import collective_timeout, join_timeout

    read = collective_timeout if variable == "DYNFORECAST_DDP_TIMEOUT" else join_timeout
    monkeypatch.setenv(variable, "45")
    assert read() == 45.0
    monkeypatch.setenv(variable, "soon")
    with pytest.raises(UsageError) as bad:
        read()
    assert str(bad.value) == (
        f"environment variable {variable}: expected a positive number of seconds (got 'soon')"
    )
