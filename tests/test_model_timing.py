"""The speed benchmark's synthetic batches have the published graph sizes, and the timer runs."""

from __future__ import annotations

import torch

from benchmarks.model_timing import aspirin_batch, nbody_batch, time_model
from dynforecast.models import create_model


def test_aspirin_batch_has_13_nodes_and_60_directed_edges_per_window() -> None:
    batch = aspirin_batch(batch_size=3, num_frames=10)
    assert (batch.num_nodes, batch.num_edges, batch.num_frames) == (39, 180, 10)
    assert not (batch.edge_src == batch.edge_dst).any()
    # Edges never cross windows, and every directed edge has its reverse.
    assert torch.equal(batch.node_graph[batch.edge_src], batch.node_graph[batch.edge_dst])
    pairs = set(zip(batch.edge_src.tolist(), batch.edge_dst.tolist(), strict=True))
    assert all((d, s) in pairs for s, d in pairs)


def test_nbody_batch_is_five_charged_particles_all_pairs_with_velocities() -> None:
    batch = nbody_batch(batch_size=2)
    assert (batch.num_nodes, batch.num_edges, batch.num_frames) == (10, 40, 1)
    assert batch.velocities is not None
    assert set(batch.node_attrs[:, 0].tolist()) <= {-1.0, 1.0}


def test_time_model_reports_positive_times_and_restores_threads() -> None:
    threads = torch.get_num_threads()
    model = create_model("egnn", hidden_dim=8, num_layers=1)
    timing = time_model(model, nbody_batch(batch_size=4), threads=1, repeats=2, warmup=1)
    assert timing.forward_ms > 0 and timing.forward_backward_ms > 0
    assert timing.batch_size == 4
    assert timing.samples_per_second(1000.0) == 4.0
    assert torch.get_num_threads() == threads
