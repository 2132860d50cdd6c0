"""How many CPU threads a training process uses: what it may really run on, or ``--threads``.

torch's default is the machine's core count, which over-subscribes whenever the process may use
fewer: a SLURM task with ``--cpus-per-task=4`` on a 64-core node, a container with a CPU quota,
a ``taskset``, or several DDP ranks sharing one node. Two OpenMP threads on one free core make
small-graph steps slower than one thread (issue 13 measured 0.49x -> 1.85x of the reference).
The default is, in this order:

1. ``--threads N``;
2. OMP_NUM_THREADS when set (the user's choice, or torchrun's: it sets 1 for several ranks);
3. the smallest of the CPU affinity mask (``os.sched_getaffinity``: taskset, cpusets, SLURM's
   task binding) and the cgroup CPU quota, ceil(quota / period), of this process's cgroup and
   its parents (v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), capped by
   SLURM_CPUS_PER_TASK inside an allocation.

Ranks of one node share what 3. finds, so it is divided among them, except where it comes from
SLURM for srun-launched ranks: SLURM_CPUS_PER_TASK (and a bound task's affinity) is already per
rank. Under ``srun torchrun`` a SLURM task is a torchrun agent holding all of the node's ranks,
so its CPUs are divided. (joblib/loky's cpu_count applies affinity and the root cgroup's quota
but neither nested cgroups nor SLURM, and does not say which limit applied, which the
start-of-run block prints.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dynforecast.errors import UsageError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class ThreadChoice:
    """``count`` threads per process, and why (``source``: the limit that applied)."""

    count: int
    source: str

    def describe(self) -> str:
        return f"{self.count} thread{'' if self.count == 1 else 's'} per process ({self.source})"


def choose_threads(
    requested: int | None,
    *,
    ranks_on_node: int = 1,
    launcher: str | None = None,
    environ: Mapping[str, str] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    affinity: int | None = None,
    machine_cpus: int | None = None,
) -> ThreadChoice:
    """The thread count of this process (see the module docstring for the order of sources).

    ``ranks_on_node``: DDP ranks on this node; ``launcher``: "slurm" (srun started each rank),
    "torchrun" or None (one process); ``affinity`` and ``machine_cpus`` replace `affinity_cpus`
    and ``os.cpu_count()`` (tests). More threads than the process may use are honoured with a
    note (the user may know better than a cgroup); more than the machine has CPUs cannot be
    meant. Raises UsageError for ``requested`` < 1 or above the machine's CPUs, and for a
    malformed OMP_NUM_THREADS.
    """
    env = os.environ if environ is None else environ
    usable = usable_cpus(
        ranks_on_node=ranks_on_node,
        launcher=launcher,
        environ=env,
        cgroup_root=cgroup_root,
        proc_cgroup=proc_cgroup,
        affinity=affinity,
    )
    if requested is not None:
        if requested < 1:
            raise UsageError(f"--threads: expected a positive number (got {requested})")
        cpus = machine_cpus if machine_cpus is not None else os.cpu_count() or 1
        if requested > cpus:
            raise UsageError(
                f"--threads {requested}: more than the {cpus} CPU{'' if cpus == 1 else 's'} of "
                f"this machine (this process may use {usable.count}: {usable.source})"
            )
        return _beyond(ThreadChoice(requested, "--threads"), usable)
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp:
        first = omp.split(",")[0].strip()  # OpenMP allows a list, one per nesting level
        if not first.isdigit() or int(first) < 1:
            raise UsageError(
                f"environment variable OMP_NUM_THREADS: expected a positive integer (got {omp!r})"
            )
        return _beyond(ThreadChoice(int(first), "OMP_NUM_THREADS"), usable)
    return usable


def _beyond(choice: ThreadChoice, usable: ThreadChoice) -> ThreadChoice:
    """``choice``, its source saying so where it asks for more threads than the CPUs the process
    may use: oversubscribed threads wait on each other (64 threads on 2 CPUs trained 13x slower
    than 1 here), so the start block should show it."""
    if choice.count <= usable.count:
        return choice
    cpus = f"{usable.count} CPU{'' if usable.count == 1 else 's'}"
    return ThreadChoice(
        choice.count, f"{choice.source}; more than the {cpus} this process may use: {usable.source}"
    )


def usable_cpus(
    *,
    ranks_on_node: int = 1,
    launcher: str | None = None,
    environ: Mapping[str, str] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    affinity: int | None = None,
) -> ThreadChoice:
    """The CPUs this process may really use (source 3. of the module docstring), whatever
    ``--threads`` or OMP_NUM_THREADS say: what is left beyond the training threads is what a
    prefetching DataLoader worker can run on without taking a core from them."""
    env = os.environ if environ is None else environ
    limits = [(affinity_cpus() if affinity is None else affinity, "CPU affinity")]
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        limits.append((quota, "cgroup CPU quota"))
    count, source = min(limits, key=lambda item: item[0])
    slurm = env.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and 0 < int(slurm) <= count:
        count, source = int(slurm), "SLURM_CPUS_PER_TASK"
    per_rank = launcher == "slurm" and bool(slurm.isdigit() and int(slurm) > 0)
    if ranks_on_node > 1 and not per_rank:
        count, source = max(1, count // ranks_on_node), f"{source} / {ranks_on_node} ranks"
    return ThreadChoice(max(count, 1), source)


def apply_threads(choice: ThreadChoice) -> None:
    """torch.set_num_threads(choice.count) for this process's intra-op pool."""
    import torch

    torch.set_num_threads(choice.count)


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask; os.cpu_count where there is none)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # macOS/Windows have no sched_getaffinity
        return os.cpu_count() or 1


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """ceil(quota / period) of the tightest CPU quota on this process's cgroup path, None
    without one (no cgroup file system, no quota, or unreadable files)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    quotas: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        relative = path.strip().lstrip("/")
        if controllers == "":  # cgroup v2: one unified hierarchy
            quotas += _walk(root, relative, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in (controllers, "cpu", "cpu,cpuacct"):
                if (root / mount).is_dir():
                    quotas += _walk(root / mount, relative, _v1_quota)
                    break
    if not lines:
        quotas += [q for q in (_v2_quota(root),) if q is not None]
    return min(quotas) if quotas else None


def _walk(base: Path, relative: str, read: object) -> list[int]:
    """Quotas of ``base/relative`` and of every parent up to ``base``."""
    found: list[int] = []
    parts = [p for p in relative.split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(base.joinpath(*parts[:depth]))  # type: ignore[operator]
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> int | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return _ceil_ratio(int(quota), int(period or 100000))
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> int | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _ceil_ratio(quota, period) if quota > 0 else None


def _ceil_ratio(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(math.ceil(quota / period), 1)
