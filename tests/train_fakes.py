"""Test doubles for the training tests: a constant-velocity data set and a one-parameter model.

The model ``x_last + w * (x_last - x_prev)`` starts at w = 0 (the `stay` baseline) and must learn
w = target_dt / past_dt to reach zero error, so a falling loss proves the loop learns.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from dynforecast.data.windows import WindowIndex, WindowSpec
from dynforecast.models.base import ForecastModel
from dynforecast.models.batch import WindowBatch


class DriftDataset:
    """S systems of N particles drifting at constant velocity plus noise; windows of T=2 frames."""

    def __init__(self, n_systems: int = 6, n_frames: int = 12, n_particles: int = 4, seed: int = 0):
        rng = np.random.default_rng(seed)
        start = rng.normal(size=(n_systems, 1, n_particles, 3))
        velocity = rng.normal(size=(n_systems, 1, n_particles, 3))
        frames = np.arange(n_frames)[None, :, None, None]
        noise = 0.01 * rng.normal(size=(n_systems, n_frames, n_particles, 3))
        self.positions = (start + velocity * frames + noise).astype(np.float32)
        self.n_particles = n_particles
        self.windows = WindowIndex([n_frames] * n_systems, WindowSpec(past_frames=2, spacing=1))
        self.systems = [f"sys{i}" for i in range(n_systems)]

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, window_ids: np.ndarray) -> WindowBatch:
        system, first = self.windows.array[window_ids].T
        frames = first[:, None] + np.arange(3)[None, :]
        block = torch.from_numpy(self.positions[system[:, None], frames])  # [B, 3, N, 3]
        b, n = len(window_ids), self.n_particles
        past = block[:, :2].permute(0, 2, 1, 3).reshape(b * n, 2, 3)
        return WindowBatch(
            positions=past,
            species=torch.zeros(b * n, dtype=torch.long),
            node_attrs=torch.zeros(b * n, 0),
            edge_src=torch.zeros(0, dtype=torch.long),
            edge_dst=torch.zeros(0, dtype=torch.long),
            node_graph=torch.arange(b).repeat_interleave(n),
            num_graphs=b,
            target=block[:, 2].reshape(b * n, 3),
        )


class DriftModel(ForecastModel):
    """x_last + w (x_last - x_prev) + 0 * noise_scale: learns w -> 1."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.config = {"name": "drift"}

    def forward(self, batch: WindowBatch) -> Tensor:
        last = batch.positions[:, -1]
        return last + self.weight * (last - batch.positions[:, -2])


def splits_of(dataset: DriftDataset) -> dict[str, np.ndarray]:
    ids = np.arange(len(dataset))
    system = dataset.windows.system
    return {"train": ids[system < 4], "val": ids[system == 4], "test": ids[system == 5]}
