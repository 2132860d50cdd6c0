"""Who launched this process, and where its peers are: torchrun, SLURM's srun, or nobody.

`detect_launch` reads the environment only (no network, no subprocess unless the node list must
be expanded by ``scontrol``) and returns a `Launch`: rank, local rank, world size and the
rendezvous address of a distributed run, or None for a plain single-process run.

- torchrun (also ``srun torchrun ...``): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
  are torchrun's; they win over SLURM's, whose SLURM_PROCID counts torchrun agents, not ranks.
- srun (``srun dynforecast train ...``, one task per GPU): rank = SLURM_PROCID, local rank =
  SLURM_LOCALID, world size = SLURM_NTASKS; the master is the first host of the step's node list
  (SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST), expanded with python-hostlist (the parser
  CSCS/NSC tools use; it needs no SLURM installation, so it also works in containers without
  ``scontrol``); the port is derived from the job and step ids so that every rank computes the
  same one without talking to the others. MASTER_ADDR / MASTER_PORT, when set, are respected.
  Only processes that srun started count: a batch script itself also sees SLURM_NTASKS and
  SLURM_PROCID=0, but not SLURM_STEP_NUM_TASKS, and then trains in one process (with a note).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynforecast.errors import UsageError

#: Ports derived from the job id lie in [PORT_BASE, PORT_BASE + PORT_SPAN): below Linux's
#: ephemeral range (32768-60999), so that no outgoing connection already holds them.
PORT_BASE, PORT_SPAN = 12000, 20000


@dataclass(frozen=True)
class Launch:
    """A distributed launch: this process's place in the world and the rendezvous address.

    ``launcher`` is "torchrun" or "slurm"; ``init_method`` is None for torchrun (its env://
    rendezvous is used as torchrun set it up) and ``tcp://addr:port`` for srun.
    """

    launcher: str
    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int
    local_world_size: int = 1

    @property
    def init_method(self) -> str | None:
        if self.launcher == "torchrun":
            return None
        host = f"[{self.master_addr}]" if ":" in self.master_addr else self.master_addr
        return f"tcp://{host}:{self.master_port}"

    def describe(self) -> str:
        """One line for the start-of-run log."""
        return (
            f"{self.launcher}: rank {self.rank} of {self.world_size} (local rank "
            f"{self.local_rank}), master {self.master_addr}:{self.master_port}"
        )


def detect_launch(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch described by ``environ`` (default os.environ), None for a single process.

    Raises UsageError for variables that are present but malformed (a non-integer rank, a rank
    outside the world, a node list that cannot be parsed), naming the variable.
    """
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE", minimum=1)
        rank = _int(env, "RANK", minimum=0)
        _check_rank(rank, world, "RANK", "WORLD_SIZE")
        return Launch(
            launcher="torchrun",
            rank=rank,
            local_rank=_int(env, "LOCAL_RANK", default=0, minimum=0),
            world_size=world,
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=_int(env, "MASTER_PORT", default=29500, minimum=1),
            local_world_size=_int(env, "LOCAL_WORLD_SIZE", default=1, minimum=1),
        )
    if not started_by_srun(env):
        return None
    world = _int(env, "SLURM_NTASKS", minimum=1)
    if world == 1:
        return None
    rank = _int(env, "SLURM_PROCID", minimum=0)
    _check_rank(rank, world, "SLURM_PROCID", "SLURM_NTASKS")
    addr = env.get("MASTER_ADDR") or first_host(_node_list(env))
    port = _int(env, "MASTER_PORT", minimum=1) if env.get("MASTER_PORT") else slurm_port(env)
    return Launch(
        launcher="slurm",
        rank=rank,
        local_rank=_int(env, "SLURM_LOCALID", default=0, minimum=0),
        world_size=world,
        master_addr=addr,
        master_port=port,
        local_world_size=slurm_tasks_on_this_node(env),
    )


def started_by_srun(env: Mapping[str, str]) -> bool:
    """True in a process srun started (srun sets SLURM_STEP_NUM_TASKS; a batch script lacks it)."""
    return "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_NUM_TASKS" in env


def batch_script_note(environ: Mapping[str, str] | None = None) -> str | None:
    """A note when a SLURM allocation of several tasks runs train outside srun, else None."""
    env = os.environ if environ is None else environ
    if "RANK" in env or started_by_srun(env) or "SLURM_NTASKS" not in env:
        return None
    try:
        tasks = int(env["SLURM_NTASKS"])
    except ValueError:
        return None
    if tasks <= 1:
        return None
    return (
        f"note: SLURM_NTASKS={tasks} but this process was not started by srun; training in one "
        "process (start it as `srun dynforecast train ...` for one process per task)"
    )


def slurm_port(environ: Mapping[str, str]) -> int:
    """PORT_BASE + (10 * job id + step id) mod PORT_SPAN: the same on every rank of a step,
    different for concurrent steps of one job (up to 10) and for most concurrent jobs."""
    job = _int(environ, "SLURM_JOB_ID", default=None, minimum=0)
    if job is None:
        job = _int(environ, "SLURM_JOBID", default=0, minimum=0)
    step_text = environ.get("SLURM_STEP_ID", environ.get("SLURM_STEPID", "0"))
    step = int(step_text) if step_text.isdigit() else 0  # "batch"/"extern" steps have names
    return PORT_BASE + (10 * job + step % 10) % PORT_SPAN


def expand_hostlist(text: str) -> list[str]:
    """SLURM's compressed host list as host names, in order: ``node[01-03,07],gpu-a1`` ->
    ``[node01, node02, node03, node07, gpu-a1]`` (python-hostlist; zero padding kept).

    Raises UsageError when the text is not a host list.
    """
    import hostlist

    try:
        hosts = hostlist.expand_hostlist(text.strip())
    except hostlist.BadHostlist as exc:
        raise UsageError(f"SLURM node list {text!r}: not a host list ({exc})") from None
    if not hosts:
        raise UsageError(f"SLURM node list {text!r}: names no host")
    return list(hosts)


def first_host(text: str) -> str:
    """The first host of a SLURM node list: where rank 0 runs, hence the rendezvous address."""
    return expand_hostlist(text)[0]


def slurm_tasks_on_this_node(environ: Mapping[str, str]) -> int:
    """How many tasks of this step share this node (SLURM_STEP_TASKS_PER_NODE, e.g. ``4(x2),3``,
    at index SLURM_NODEID).

    Without the per-node list (srun always sets it; hand-made environments may not) it is the
    step's tasks over its nodes, rounded up (SLURM_STEP_NUM_TASKS or SLURM_NTASKS over
    SLURM_STEP_NUM_NODES, SLURM_NNODES or the hosts of the node list): an upper bound, which
    divides a node's CPUs safely. 1 when nothing is known or a variable is malformed.
    """
    text = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    node = environ.get("SLURM_NODEID", "0")
    if not text:
        return _tasks_over_nodes(environ)
    if not node.isdigit():
        return 1
    counts: list[int] = []
    for part in text.split(","):
        value, _, repeat = part.partition("(x")
        if not value.isdigit() or (repeat and not repeat.rstrip(")").isdigit()):
            return 1
        counts.extend([int(value)] * (int(repeat.rstrip(")")) if repeat else 1))
    index = int(node)
    return max(counts[index], 1) if index < len(counts) else 1


def _tasks_over_nodes(env: Mapping[str, str]) -> int:
    """ceil(tasks / nodes) of the step from its counts (see `slurm_tasks_on_this_node`)."""
    tasks = next((env[k] for k in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS") if env.get(k)), "")
    nodes = next((env[k] for k in ("SLURM_STEP_NUM_NODES", "SLURM_NNODES") if env.get(k)), "")
    if not nodes:
        try:
            nodes = str(len(expand_hostlist(_node_list(env))))
        except UsageError:
            return 1
    if not (tasks.isdigit() and nodes.isdigit()) or int(nodes) < 1:
        return 1
    return max(-(-int(tasks) // int(nodes)), 1)


def _node_list(env: Mapping[str, str]) -> str:
    for name in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        if env.get(name):
            return env[name]
    raise UsageError(
        "SLURM: no node list (SLURM_STEP_NODELIST / SLURM_JOB_NODELIST unset) to find rank 0's "
        "host; set MASTER_ADDR to it"
    )


_REQUIRED = object()


def _int(
    env: Mapping[str, str], name: str, *, default: object = _REQUIRED, minimum: int = 0
) -> Any:
    """Integer value of ``env[name]``; ``default`` when unset (UsageError if it is required)."""
    text = env.get(name)
    if text is None or text == "":
        if default is _REQUIRED:
            raise UsageError(f"environment variable {name}: not set")
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(
            f"environment variable {name}: expected an integer (got {text!r})"
        ) from None
    if value < minimum:
        raise UsageError(f"environment variable {name}: expected >= {minimum} (got {value})")
    return value


def _check_rank(rank: int, world: int, rank_name: str, world_name: str) -> None:
    if rank >= world:
        raise UsageError(
            f"environment variable {rank_name}={rank}: outside the world of {world_name}={world}"
        )
