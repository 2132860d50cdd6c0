"""EGNN-vel baseline: velocity source, constant-velocity start, charges, options, size."""

from __future__ import annotations

import pytest
import torch
from model_batches import make_batch, small_model

from dynforecast.models import create_model


def _model(batch, **options):
    torch.manual_seed(0)
    return small_model("egnn", batch, **options).eval()


def _constant_velocity(batch):
    return create_model("constant_velocity")(batch)


@pytest.mark.parametrize("velocities", [True, False])
def test_untrained_model_is_close_to_constant_velocity(velocities: bool) -> None:
    batch = make_batch([5, 4], num_frames=3, velocities=velocities, charges=True)
    model = _model(batch)
    with torch.no_grad():
        got = model(batch)
    expected = (
        batch.positions[:, -1] + batch.velocities[:, -1] * batch.target_dt
        if velocities
        else _constant_velocity(batch)
    )
    step = (expected - batch.positions[:, -1]).abs().max()
    assert (got - expected).abs().max() < 0.02 * step


def test_data_velocities_are_used_when_present() -> None:
    batch = make_batch([5], num_frames=3, velocities=True, charges=True)
    model = _model(batch)
    earlier = batch.positions.clone()
    earlier[:, 0] += 1.0  # frames before the last are not read when velocities exist
    earlier[:, 1] += 1.0
    faster = batch.replace(velocities=batch.velocities * 2)
    with torch.no_grad():
        base = model(batch)
        assert torch.equal(model(batch.replace(positions=earlier)), base)
        assert (model(faster) - base).abs().max() > 0.1


def test_finite_difference_velocity_without_data_velocities() -> None:
    batch = make_batch([5], num_frames=3, velocities=False, charges=True)
    expected = (batch.positions[:, -1] - batch.positions[:, -2]) / batch.past_dt
    torch.testing.assert_close(create_model("egnn").last_velocity(batch), expected)


def test_one_frame_without_velocities_is_refused() -> None:
    batch = make_batch([4], num_frames=1, velocities=False, charges=True)
    with pytest.raises(
        ValueError,
        match=r"^expected velocities or at least 2 past frames for egnn \(got 1 frame, no velocities\)$",
    ):
        _model(batch)(batch)


def test_edge_charges_need_a_charge_column() -> None:
    batch = make_batch([4], velocities=True, charges=False)
    model = small_model("egnn", batch, node_attr_dim=1)
    with pytest.raises(
        ValueError,
        match=r"^expected a charge column in node_attrs for egnn with node_attr_dim=1 \(got 0 columns\)$",
    ):
        model(batch)


def _trained_looking(model):
    """Scale the near-zero coordinate heads up so that interactions visibly move particles."""
    with torch.no_grad():
        for layer in model.layers:
            layer.coordinate[-1].weight.mul_(1000.0)
    return model


def test_only_charge_products_matter() -> None:
    """q_i q_j is the edge input: flipping every sign changes nothing, flipping one does."""
    batch = make_batch([5], velocities=True, charges=True)
    model = _trained_looking(_model(batch))
    one_flipped = batch.node_attrs.clone()
    one_flipped[0] = -one_flipped[0]
    with torch.no_grad():
        base = model(batch)
        torch.testing.assert_close(model(batch.replace(node_attrs=-batch.node_attrs)), base)
        assert (model(batch.replace(node_attrs=one_flipped)) - base).abs().max() > 1e-6


def test_mean_and_sum_coordinate_aggregation_differ_by_the_degree() -> None:
    batch = make_batch([5], velocities=True, charges=True)
    models = []
    for aggregation in ("mean", "sum"):
        model = _trained_looking(_model(batch, coords_aggregation=aggregation, num_layers=1))
        with torch.no_grad():  # velocity head = its bias 1/L = 1: exactly constant velocity
            model.layers[0].velocity[-1].weight.zero_()
        models.append(model)
    start = batch.positions[:, -1] + batch.velocities[:, -1] * batch.target_dt
    with torch.no_grad():
        mean_shift, sum_shift = (model(batch) - start for model in models)
    assert mean_shift.abs().max() > 1e-3
    torch.testing.assert_close(sum_shift, 4.0 * mean_shift)  # 4 neighbours (all pairs of 5)


def test_more_than_one_node_attribute_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^expected node_attr_dim 0 or 1 \(charges\) \(got 2\)$"):
        create_model("egnn", node_attr_dim=2)


def test_invalid_aggregation_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^expected coords_aggregation in \('mean', 'sum'\) \(got 'max'\)$"
    ):
        create_model("egnn", coords_aggregation="max")


def egnn_parameter_count(h: int, layers: int, node_input_dim: int, edge_dim: int) -> int:
    """Embedding, then per layer: edge MLP, coordinate head, velocity head; node MLP except last."""
    embedding = (1 + node_input_dim) * h + h
    edge = (2 * h + 1 + edge_dim) * h + h + h * h + h
    coordinate = h * h + h + h
    velocity = h * h + h + h + 1
    node = 2 * h * h + h + h * h + h
    return embedding + layers * (edge + coordinate + velocity) + (layers - 1) * node


@pytest.mark.parametrize(("h", "layers", "charges"), [(64, 4, True), (16, 2, False), (8, 1, True)])
def test_parameter_count(h: int, layers: int, charges: bool) -> None:
    model = create_model("egnn", hidden_dim=h, num_layers=layers, node_attr_dim=int(charges))
    count = sum(p.numel() for p in model.parameters())
    assert count == egnn_parameter_count(h, layers, 1, int(charges))
    if (h, layers, charges) == (64, 4, True):
        assert count == 121_412


def test_messages_flow_from_src_to_dst() -> None:
    """With the single edge 0 -> 1, the position of node 0 does not depend on node 1."""
    batch = make_batch([2], velocities=True, charges=True)
    batch = batch.replace(edge_src=torch.tensor([0]), edge_dst=torch.tensor([1]))
    model = _trained_looking(_model(batch))
    moved = batch.positions.clone()
    moved[1] += 1.0
    with torch.no_grad():
        base, shifted = model(batch), model(batch.replace(positions=moved))
        sender_moved = batch.positions.clone()
        sender_moved[0] += 1.0
        receiver_effect = model(batch.replace(positions=sender_moved))[1] - base[1]
    assert torch.equal(shifted[0], base[0])
    assert receiver_effect.abs().max() > 1e-4
