"""ESTAG internals: forward attention mask, ETP, EDFT, options and parameter counts (spec §10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_batches import collate, make_batch, pad_batch, small_model, window_list

from dynforecast.models import create_model
from dynforecast.models.edft import (
    amplitude,
    batch_edft_features,
    centre_per_graph,
    cross_spectrum,
    fourier_coefficients,
)
from dynforecast.models.estag import ESTAG, TemporalLayer
from dynforecast.models.symmetry import assert_equivariant, random_orthogonal, transform_batch

T = 6


def _batch(**options):
    return make_batch([5, 4, 6], num_frames=T, **options)


def _model(batch, **options):
    torch.manual_seed(0)
    return small_model("estag", batch, **options)


# Forward attention mask ----------------------------------------------------------------------


def _perturb_last_frame(batch):
    positions = batch.positions.clone()
    positions[:, -1] += 0.3 * torch.randn(
        batch.num_nodes, 3, generator=torch.Generator().manual_seed(9), dtype=positions.dtype
    )
    return batch.replace(positions=positions)


def test_forward_mask_without_spectra_leaves_earlier_refined_frames_unchanged() -> None:
    batch = _batch()
    model = _model(batch, spectral_features=False, attention_mask="forward")
    with torch.no_grad():
        before = model.refine(batch)
        after = model.refine(_perturb_last_frame(batch))
    assert torch.equal(after[:, :-1], before[:, :-1])
    assert not torch.equal(after[:, -1], before[:, -1])


def test_bidirectional_attention_lets_a_later_frame_change_earlier_ones() -> None:
    """The mask test above can fail: without the mask the change propagates backwards."""
    batch = _batch()
    model = _model(batch, spectral_features=False, attention_mask="none")
    with torch.no_grad():
        change = (model.refine(_perturb_last_frame(batch)) - model.refine(batch))[:, :-1]
    assert change.abs().max() > 0


def test_spectral_features_make_the_forward_masked_network_non_causal() -> None:
    """Spec D6: the EDFT sees all frames, so earlier refined frames change (slightly)."""
    batch = _batch()
    model = _model(batch, spectral_features=True, attention_mask="forward")
    with torch.no_grad():
        change = (model.refine(_perturb_last_frame(batch)) - model.refine(batch))[:, :-1]
    assert 0 < change.abs().max() < 1e-2


def test_forward_mask_zeroes_attention_above_the_diagonal_and_frame_zero_update() -> None:
    torch.manual_seed(0)
    layer = TemporalLayer(8, "forward").double()
    with torch.no_grad():  # make the coordinate head large enough to move frames visibly
        layer.coordinate[-1].weight.mul_(1000.0)
    h = torch.randn(7, T, 8, dtype=torch.float64)
    x = torch.randn(7, T, 3, dtype=torch.float64)
    weights, _ = layer.attention(h)
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))
    torch.testing.assert_close(weights.sum(-1), torch.ones(7, T, dtype=torch.float64))
    _, moved, _ = layer(h, x)
    assert torch.equal(moved[:, 0], x[:, 0])
    assert (moved[:, 1:] - x[:, 1:]).abs().max() > 1e-3


def test_temporal_layer_coordinate_update_matches_its_formula() -> None:
    torch.manual_seed(1)
    layer = TemporalLayer(4, "none").double()
    h = torch.randn(3, T, 4, dtype=torch.float64)
    x = torch.randn(3, T, 3, dtype=torch.float64)
    weights, value = layer.attention(h)
    scale = layer.coordinate(value)[..., 0]  # [V, S]
    expected = x.clone()
    for t in range(T):  # explicit sum over s, for a small case
        for s in range(T):
            expected[:, t] += (weights[:, t, s] * scale[:, s]).unsqueeze(-1) * (x[:, s] - x[:, t])
    _, moved, _ = layer(h, x)
    torch.testing.assert_close(moved, expected)


# ETP ----------------------------------------------------------------------------------------


def test_theta_of_the_last_frame_gets_exactly_zero_gradient() -> None:
    batch = _batch()
    model = _model(batch)
    loss = (model(batch) - batch.target).square().mean()
    loss.backward()
    grad = model.pooling.theta.grad
    assert grad[-1].item() == 0.0
    assert grad[:-1].abs().max() > 0


def test_untrained_etp_predicts_the_refined_last_frame() -> None:
    batch = _batch()
    model = _model(batch, extrapolation_init=0.0)  # the reference's start
    with torch.no_grad():
        assert torch.equal(model(batch), model.refine(batch)[:, -1])


def test_extrapolation_init_starts_the_etp_at_constant_velocity_of_the_refined_frames() -> None:
    batch = _batch()
    model = _model(batch, extrapolation_init=2.5)
    with torch.no_grad():
        refined = model.refine(batch)
        expected = refined[:, -1] + 2.5 * (refined[:, -1] - refined[:, -2])
        torch.testing.assert_close(model(batch), expected)


def test_softmax_pooling_starts_as_the_uniform_average() -> None:
    batch = _batch()
    model = _model(batch, pooling="softmax")
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model.refine(batch).mean(1))


# EDFT ---------------------------------------------------------------------------------------


def _features(batch, gates=None, form="code"):
    return batch_edft_features(batch, gates, form)


def _random_gates(batch):
    return torch.rand(batch.num_nodes, T - 1, generator=torch.Generator().manual_seed(4)).double()


def test_ungated_features_are_palindromic_over_frequencies() -> None:
    edges, nodes = _features(_batch())
    torch.testing.assert_close(edges, edges.flip(-1))
    torch.testing.assert_close(nodes, nodes.flip(-1))
    assert not torch.allclose(edges[:, 0], edges[:, 1])  # but not constant over k


@pytest.mark.parametrize("form", ["code", "paper"])
def test_features_sum_to_one_over_frequencies(form: str) -> None:
    batch = _batch()
    edges, nodes = _features(batch, _random_gates(batch), form)
    assert (edges.sum(-1) - 1).abs().max() < 1e-6
    assert (nodes.sum(-1) - 1).abs().max() < 1e-6
    assert (edges >= 0).all() and (nodes >= 0).all()


@pytest.mark.parametrize("reflection", [False, True])
def test_features_are_e3_invariant(reflection: bool) -> None:
    batch = _batch()
    gates = _random_gates(batch)
    generator = torch.Generator().manual_seed(2)
    rotation = random_orthogonal(torch.float64, generator, reflection)
    shifts = 10 * torch.randn(batch.num_graphs, 3, generator=generator, dtype=torch.float64)
    moved = transform_batch(batch, rotation, shifts)
    for got, expected in zip(_features(moved, gates), _features(batch, gates), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shift", [1, 2, T - 1])
def test_features_are_invariant_to_circular_time_shifts(shift: int) -> None:
    batch = _batch()
    gates = _random_gates(batch)
    rolled = batch.replace(positions=batch.positions.roll(shift, dims=1))
    for got, expected in zip(_features(rolled, gates), _features(batch, gates), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_amplitude_forms_differ_and_match_their_formulas() -> None:
    batch = _batch()
    centred = centre_per_graph(batch.positions, batch.node_graph, batch.num_graphs, None).numpy()
    spectrum = np.fft.fft(centred, axis=1)[:, 1:]  # [V, K, 3], numpy as the independent oracle
    coefficients = fourier_coefficients(torch.from_numpy(centred))
    code = amplitude(coefficients, "code").numpy()
    paper = amplitude(coefficients, "paper").numpy()
    np.testing.assert_allclose(code, np.abs((spectrum**2).sum(-1)), rtol=1e-10)
    np.testing.assert_allclose(paper, (np.abs(spectrum) ** 2).sum(-1), rtol=1e-10)
    assert np.abs(code - paper).max() > 1e-3 * paper.max()
    assert (code <= paper * (1 + 1e-12)).all()  # |sum f^2| <= sum |f|^2 (triangle inequality)
    with pytest.raises(ValueError, match=r"^expected amplitude form in \('code', 'paper'\)"):
        amplitude(coefficients, "power")


def test_cross_spectrum_matches_the_hermitian_inner_product() -> None:
    batch = _batch()
    centred = centre_per_graph(batch.positions, batch.node_graph, batch.num_graphs, None)
    coefficients = fourier_coefficients(centred)
    got = cross_spectrum(coefficients, batch.edge_src, batch.edge_dst).numpy()
    f = coefficients.numpy()
    src, dst = batch.edge_src.numpy(), batch.edge_dst.numpy()
    expected = np.abs(np.einsum("ekd,ekd->ek", np.conj(f[dst]), f[src]))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_centroid_is_per_window_and_ignores_masked_nodes() -> None:
    batch = _batch()
    padded = pad_batch(batch, 3, torch.Generator().manual_seed(0))
    centred = centre_per_graph(
        padded.positions, padded.node_graph, padded.num_graphs, padded.node_mask
    )[: batch.num_nodes]
    sizes = [5, 4, 6]
    for window, part in zip(batch.positions.split(sizes), centred.split(sizes), strict=True):
        torch.testing.assert_close(part, window - window.mean(0, keepdim=True))


def test_masked_padding_leaves_outputs_bit_identical_in_float64() -> None:
    batch = collate(window_list([5, 4, 6], num_frames=T, seed=3))
    padded = pad_batch(batch, 2, torch.Generator().manual_seed(5))
    model = _model(batch)
    with torch.no_grad():
        assert torch.equal(model(padded)[: batch.num_nodes], model(batch))


# Options, validation, parameter counts ------------------------------------------------------

OPTION_VARIANTS = [
    {"amplitude": "paper"},
    {"frequency_gate": False},
    {"spectral_features": False},
    {"temporal_attention": False},
    {"attention_mask": "none"},
    {"pooling": "softmax"},
    {"node_input": "one_hot", "species_vocabulary": [1, 6, 7, 8]},
]


@pytest.mark.parametrize("options", OPTION_VARIANTS, ids=lambda o: ",".join(map(str, o.items())))
def test_every_option_variant_is_equivariant_and_differs_from_the_default(options) -> None:
    batch = _batch()
    model = _model(batch, **options).eval()
    assert_equivariant(model, batch, atol=0.0, rtol=1e-10, generator=torch.Generator())
    default = _model(batch).eval()
    with torch.no_grad():  # make both move coordinates so that the variants can show
        for m in (model, default):
            m.pooling.theta.add_(0.3)
            for module in m.modules():
                if isinstance(module, torch.nn.Sequential) and module[-1].out_features == 1:
                    module[-1].weight.mul_(500.0)
        assert not torch.allclose(model(batch), default(batch))


def test_batch_with_another_number_of_frames_is_refused() -> None:
    batch = _batch()
    model = small_model("estag", batch, num_past_frames=T + 1)
    with pytest.raises(ValueError, match=r"^expected batches of 7 past frames \(got 6\)$"):
        model(batch)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"amplitude": "power"}, r"^expected amplitude in \('code', 'paper'\) \(got 'power'\)$"),
        (
            {"attention_mask": "causal"},
            r"^expected attention_mask in \('forward', 'none'\) \(got 'causal'\)$",
        ),
        ({"pooling": "mean"}, r"^expected pooling in \('etp', 'softmax'\) \(got 'mean'\)$"),
        (
            {"node_input": "charge"},
            r"^expected node_input in \('atomic_number', 'one_hot'\) \(got 'charge'\)$",
        ),
        ({"hidden_dim": 0}, r"^expected hidden_dim >= 1 \(got 0\)$"),
        ({"num_past_frames": 0}, r"^expected num_past_frames >= 1 \(got 0\)$"),
        (
            {"temporal_attention": "yes"},
            r"^expected temporal_attention of type bool \(got 'yes'\)$",
        ),
    ],
)
def test_invalid_options_are_refused_with_one_clear_message(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("estag", **options)


def test_the_constructor_itself_refuses_sizes_below_one() -> None:
    with pytest.raises(ValueError, match=r"^expected hidden_dim, num_layers, num_past_frames >= 1"):
        ESTAG(hidden_dim=0)


def reference_parameter_count(h: int, layers: int, t: int) -> int:
    """Spec §9.1 formula (in_node_nf = 1, spectral features on), reference's unused adj_mlp included."""
    k = t - 1
    spatial = (
        (2 * h + 1 + k) * h
        + h
        + h * h
        + h
        + (2 * h + k) * h
        + h
        + h * h
        + h
        + h * h
        + h
        + h
        + (k + 1)
    )
    temporal = 3 * (2 * h * h + 2 * h) + h * h + h + h
    return t * h + 2 * h + (h + 1) + layers * spatial + layers * temporal + t


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_reference_configuration_has_8443_used_parameters() -> None:
    model = create_model("estag")
    assert _count(model) == 8443
    assert reference_parameter_count(16, 2, 10) == 8463  # the reference's total, unused kept
    assert 8463 - 8443 == 2 * (10 - 1 + 1)  # one unused adj_mlp Linear(K, 1) per ESM layer


@pytest.mark.parametrize(("h", "layers", "t"), [(16, 2, 10), (8, 3, 5), (32, 1, 4), (12, 4, 7)])
def test_parameter_count_follows_the_reference_formula(h: int, layers: int, t: int) -> None:
    model = create_model("estag", hidden_dim=h, num_layers=layers, num_past_frames=t)
    assert _count(model) == reference_parameter_count(h, layers, t) - layers * t


def test_spatial_messages_flow_from_src_to_dst() -> None:
    """Edge direction convention: with the single edge 0 -> 1 only node 1 (the receiver) moves."""
    from dynforecast.models.estag import SpatialLayer

    torch.manual_seed(0)
    layer = SpatialLayer(8, 0, 0).double()
    with torch.no_grad():
        layer.coordinate[-1].weight.mul_(1000.0)
    h = torch.randn(2, T, 8, dtype=torch.float64)
    x = torch.randn(2, T, 3, dtype=torch.float64)
    src, dst = torch.tensor([0]), torch.tensor([1])
    new_h, new_x = layer(h, x, src, dst, None, None, torch.ones(2, dtype=torch.float64))
    assert torch.equal(new_x[0], x[0])
    assert (new_x[1] - x[1]).abs().max() > 1e-4
    # The receiver moves along x_1 - x_0 at every frame (radial update).
    direction = torch.linalg.cross(new_x[1] - x[1], x[1] - x[0], dim=-1)
    assert direction.abs().max() < 1e-12
    # Node 0's features change only through its own self-update (no message arrives).
    alone_h, _ = layer(h[:1], x[:1], src[:0], dst[:0], None, None, torch.ones(1).double())
    torch.testing.assert_close(new_h[0], alone_h[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_reference_configuration_is_equivariant_on_aspirin_like_windows(dtype) -> None:
    """Spec §10.2 on the README configuration (H 16, L 2, T 10), 13 nodes, 60 edges per window."""
    from benchmarks.model_timing import aspirin_batch

    batch = aspirin_batch(batch_size=4, num_frames=10).to(dtype=dtype)
    torch.manual_seed(0)
    model = create_model("estag").to(dtype).eval()
    with torch.no_grad():  # trained-looking: frames pooled and coordinates moved visibly
        model.pooling.theta.normal_(0.0, 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.Sequential) and module[-1].out_features == 1:
                module[-1].weight.mul_(300.0)
        assert (model(batch) - batch.positions[:, -1]).abs().max() > 0.05
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    assert_equivariant(model, batch, atol=0.0, rtol=rtol, generator=torch.Generator())
