"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores on CI; tests run under pytest-xdist with two workers, so one thread each.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
