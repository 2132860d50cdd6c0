"""Every learned model can fit a handful of windows: the loss falls at least 100-fold.

The windows are exact harmonic motions about each window's fixed centroid,
x_i(t) = c + r_i cos(w t) + s_i sin(w t), so the target is reachable by every model in its own
way (ESTAG: a linear recurrence over the past frames in its pooling; EGNN: a pull towards the
centroid plus a scaled velocity). A model that cannot learn, or whose gradients are wrong, stays
near its starting loss.
"""

from __future__ import annotations

import math

import pytest
import torch
from model_batches import collate, graph_edges, learnable_model_names, small_model

from dynforecast.models import WindowBatch

OMEGA = 1.0
PAST_DT = 0.3
TARGET_DT = 0.6
NUM_FRAMES = 5
STEPS = 300


def harmonic_window(num_nodes: int, generator: torch.Generator) -> WindowBatch:
    """One window of exact harmonic motion with velocities and charges, centroid fixed."""

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    centre = 2.0 * normal(1, 3)
    radial = normal(num_nodes, 3)
    radial = radial - radial.mean(0)
    tangential = normal(num_nodes, 3)
    tangential = tangential - tangential.mean(0)
    start = 2 * math.pi * torch.rand(1, generator=generator, dtype=torch.float64)
    times = start + PAST_DT * torch.arange(NUM_FRAMES + 1, dtype=torch.float64)
    times[-1] = times[-2] + TARGET_DT
    angle = (OMEGA * times).view(1, -1, 1)
    positions = centre.unsqueeze(1) + radial.unsqueeze(1) * angle.cos()
    positions = positions + tangential.unsqueeze(1) * angle.sin()
    velocities = OMEGA * (tangential.unsqueeze(1) * angle.cos() - radial.unsqueeze(1) * angle.sin())
    src, dst = graph_edges(num_nodes, "all_pairs")
    return WindowBatch(
        positions=positions[:, :-1].float(),
        species=torch.full((num_nodes,), 6),
        node_attrs=(torch.randint(0, 2, (num_nodes, 1), generator=generator) * 2.0 - 1.0),
        edge_src=src,
        edge_dst=dst,
        node_graph=torch.zeros(num_nodes, dtype=torch.long),
        num_graphs=1,
        past_dt=PAST_DT,
        target_dt=TARGET_DT,
        velocities=velocities[:, :-1].float(),
        target=positions[:, -1].float(),
    )


@pytest.mark.parametrize("name", learnable_model_names())
def test_a_small_model_overfits_a_handful_of_windows(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    batch = collate([harmonic_window(n, generator) for n in (5, 4, 5, 6)])
    torch.manual_seed(0)
    model = small_model(name, batch)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_value() -> torch.Tensor:
        return (model(batch) - batch.target).square().mean()

    with torch.no_grad():
        initial = loss_value().item()
    for _ in range(STEPS):
        optimiser.zero_grad()
        loss = loss_value()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = loss_value().item()
    assert initial > 1e-3  # the task is not trivial for the untrained model
    assert final < initial / 100, f"{name}: loss {initial:.3e} -> {final:.3e}"
