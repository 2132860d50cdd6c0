"""The opt-in malloc tuning removes the page faults of repeatedly allocated large tensors."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from dynforecast.ops.allocator import retain_freed_memory

def faults_of_churn():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        blocks = [torch.empty(1_000_000).fill_(1.0) for _ in range(4)]  # 4 x 4 MB
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_churn()
default = faults_of_churn()
accepted = retain_freed_memory()
faults_of_churn()
print(accepted, default, faults_of_churn())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_retain_freed_memory_removes_page_faults_of_large_temporaries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    accepted, default, tuned = result.stdout.split()
    assert accepted == "True"
    assert int(default) > 1000  # 4 MB blocks are page-faulted in again and again by default
    assert int(tuned) < int(default) / 10
