"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Two cores on CI; tests run under pytest-xdist with two workers, so one thread each.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One build of the C kernels for the whole run, workers and CLI subprocesses included, even where
# a test points DYNFORECAST_CACHE at its own directory (a fresh build costs ~20 s of CPU).
os.environ.setdefault(
    "DYNFORECAST_KERNELS",
    os.path.join(tempfile.gettempdir(), f"dynforecast-test-kernels-{os.getuid()}"),
)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
