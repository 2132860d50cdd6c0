"""SAKE: the edge-list layer against a dense reference written from the spec, symmetry, padding,
batching, gradients, ablation switches, attention variant A and the parameter count."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F_
from torch import Tensor

from dynforecast.models import WindowBatch, create_model, model_from_config
from dynforecast.models.sake import Sake, input_velocity, sake_graph
from dynforecast.models.sake_layer import SakeLayer, pair_geometry
from dynforecast.models.symmetry import assert_equivariant, random_orthogonal

SMALL = {"hidden_dim": 8, "num_heads": 2, "num_layers": 2, "num_basis": 6}


def all_pairs(sizes: list[int], offset_gaps: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """Directed all-pairs edges (no self loops) of consecutive systems of the given sizes."""
    src, dst, start = [], [], 0
    for size in sizes:
        idx = torch.arange(size) + start
        s, d = torch.meshgrid(idx, idx, indexing="ij")
        keep = s != d
        src.append(s[keep])
        dst.append(d[keep])
        start += size
    return torch.cat(src), torch.cat(dst)


def make_batch(
    sizes: list[int],
    *,
    frames: int = 1,
    velocities: bool = True,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> WindowBatch:
    """Random systems of the given sizes, all pairs, charges as node attribute."""
    g = torch.Generator().manual_seed(seed)
    v = sum(sizes)
    src, dst = all_pairs(sizes)
    return WindowBatch(
        positions=torch.randn(v, frames, 3, generator=g, dtype=dtype) * 1.5,
        species=torch.randint(1, 4, (v,), generator=g),
        node_attrs=torch.randint(0, 2, (v, 1), generator=g).to(dtype) * 2 - 1,
        edge_src=src,
        edge_dst=dst,
        node_graph=torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)),
        num_graphs=len(sizes),
        velocities=torch.randn(v, frames, 3, generator=g, dtype=dtype) if velocities else None,
    )


def small_sake(dtype: torch.dtype = torch.float64, seed: int = 0, **options) -> Sake:
    torch.manual_seed(seed)
    hp = {**SMALL, "species": "none", "node_attr_dim": 1, **options}
    return create_model("sake", **hp).to(dtype)


# -- dense reference (spec §3.10 and §4, written independently of the edge-list code) ----------


def dense_layer(layer: SakeLayer, h: Tensor, x: Tensor, v: Tensor | None):
    """One layer on one fully connected system, pair tensors [N, N, ·], i = row = receiver."""
    n = x.shape[0]
    eye = torch.eye(n, dtype=x.dtype)
    r = x.unsqueeze(0) - x.unsqueeze(1)  # r[i, j] = x_j - x_i
    d = torch.sqrt((r**2).sum(-1, keepdim=True) + 1e-5)
    z = torch.cat([h.unsqueeze(0).expand(n, n, -1), h.unsqueeze(1).expand(n, n, -1)], -1)
    g = layer.basis(d) * layer.edge_filter(z)
    m = layer.edge_out(F_.silu(layer.edge_in(torch.cat([z, g, d], -1))))
    if layer.use_semantic_attention:
        lam = torch.softmax(F_.celu(layer.semantic(m), 2.0) - 1e5 * eye[..., None], dim=1)
    elif layer.attention == "semantic":
        lam = ((1 - eye) / (n - 1))[..., None].expand(n, n, layer.heads)
    else:
        lam = torch.ones(n, n, layer.heads, dtype=x.dtype)
    mu = 1.0
    if layer.cutoff is not None:
        mu = 0.5 * (torch.cos(math.pi * d / layer.cutoff) + 1) * (d < layer.cutoff)
    if layer.attention == "semantic":
        # a receiver with no neighbour inside the cutoff gets no message (not 0/0)
        alpha = lam * mu / (lam * mu).sum(1, keepdim=True).clamp_min(1e-300)
    else:
        if layer.use_euclidean_attention:
            eps = torch.softmax(-layer.log_gamma.exp() * (d + 1e5 * eye[..., None]), dim=1)
        else:
            eps = torch.ones_like(lam)
        alpha = torch.softmax(eps * lam, dim=1)
        if layer.cutoff is not None:
            alpha = alpha * mu / (alpha * mu).sum(1, keepdim=True)
    hhat = (m.unsqueeze(-1) * alpha.unsqueeze(-2)).reshape(n, n, -1)
    c = torch.tanh(layer.coefficient_mixing(hhat))
    u = r / (d + 1e-5)
    spatial = torch.einsum("ijc,ijd->icd", c, u) / n
    p = layer.spatial_mlp((spatial**2).sum(-1))
    delta = torch.einsum("ij,ijd->id", layer.velocity_mixing(c)[..., 0], u) / n
    if not layer.use_spatial_attention:
        p, delta = torch.zeros_like(p), torch.zeros_like(delta)
    h_new = h + layer.node_mlp(torch.cat([h, hhat.sum(1), p], -1))
    v_new = delta if v is None else delta + 2 * torch.sigmoid(layer.velocity_mlp(h_new)) * v
    return h_new, x + v_new, v_new


def dense_model(model: Sake, batch: WindowBatch) -> Tensor:
    velocity = input_velocity(batch)
    h = model.embedding(model.node_scalars(batch, velocity))
    x, v = batch.positions[:, -1], velocity if model.use_velocity else None
    for layer in model.layers:
        h, x, v = dense_layer(layer, h, x, v)
    return x


DENSE_CASES = [
    {},
    {"use_velocity": False},
    {"cutoff": 3.5},
    {"use_semantic_attention": False},
    {"use_spatial_attention": False},
    {"attention": "euclidean_softmax_2022"},
    {"attention": "euclidean_softmax_2022", "cutoff": 3.5},
    {"attention": "euclidean_softmax_2022", "use_euclidean_attention": False},
    {
        "attention": "euclidean_softmax_2022",
        "use_euclidean_attention": False,
        "use_semantic_attention": False,
    },
]


@pytest.mark.parametrize("options", DENSE_CASES, ids=lambda o: json.dumps(o))
def test_edge_list_matches_dense_reference(options):
    model = small_sake(**options)
    batch = make_batch([5])
    torch.testing.assert_close(model(batch), dense_model(model, batch), rtol=0, atol=1e-10)


# -- shapes, config, errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "velocities", "use_velocity"),
    [(1, True, True), (3, False, True), (3, True, False), (2, False, False)],
)
def test_output_shape_with_and_without_velocities(frames, velocities, use_velocity):
    batch = make_batch([4, 6], frames=frames, velocities=velocities, dtype=torch.float32)
    out = small_sake(torch.float32, use_velocity=use_velocity)(batch)
    assert out.shape == (10, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_layer_shapes():
    layer = SakeLayer(hidden=8, heads=3, num_basis=5).double()
    batch = make_batch([4, 3])
    graph = sake_graph(batch)
    h = torch.randn(7, 8, dtype=torch.float64)
    for v in (None, torch.randn(7, 3, dtype=torch.float64)):
        h2, x2, v2 = layer(h, batch.positions[:, -1], v, graph)
        assert (h2.shape, x2.shape, v2.shape) == ((7, 8), (7, 3), (7, 3))


def test_velocity_from_frames_when_data_has_none():
    batch = make_batch([3], frames=3, velocities=False).replace(past_dt=0.5)
    expected = (batch.positions[:, 2] - batch.positions[:, 1]) / 0.5
    torch.testing.assert_close(input_velocity(batch), expected)
    assert input_velocity(make_batch([3], frames=1, velocities=False)) is None


def test_speed_input_without_any_velocity_is_refused():
    batch = make_batch([3], frames=1, velocities=False)
    with pytest.raises(ValueError) as info:
        small_sake()(batch)
    assert str(info.value) == (
        "expected velocities or at least 2 past frames for the speed input "
        "(got 1 frame, no velocities)"
    )
    small_sake(speed=False, use_velocity=False)(batch)  # nothing needed: runs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"attention": "dense"},
            "expected attention in ('semantic', 'euclidean_softmax_2022') (got 'dense')",
        ),
        (
            {"dt_scale": "1/L"},
            "expected dt_scale in (None, 'none', 'target_dt/L') (got '1/L')",
        ),
        ({"init": "xavier"}, "expected init in ('lecun', 'torch') (got 'xavier')"),
        ({"cutoff": 0.0}, "expected a positive cutoff or None (got 0.0)"),
        ({"num_layers": 0}, "expected num_layers >= 1 (got 0)"),
        ({"hidden_dim": -3}, "expected hidden_dim >= 1 (got -3)"),
        ({"hidden_dim": "abc"}, "expected hidden_dim of type int (got 'abc')"),
        ({"hidden_dim": 64.0}, "expected hidden_dim of type int (got 64.0)"),
        ({"speed": 1}, "expected speed of type bool (got 1)"),
        ({"cutoff": "x"}, "expected cutoff of type float or none (got 'x')"),
        (
            {"species_vocabulary": [1, "a"]},
            "expected species_vocabulary of type list of int (got [1, 'a'])",
        ),
    ],
)
def test_bad_hyperparameters(options, message):
    with pytest.raises(ValueError) as info:
        create_model("sake", **options)
    assert str(info.value) == message


def test_config_is_json_and_rebuilds_the_same_model():
    model = small_sake(cutoff=3.0, dt_scale="target_dt/L")
    config = json.loads(json.dumps(model.config))
    assert config["name"] == "sake" and config["hidden_dim"] == 8 and config["cutoff"] == 3.0
    rebuilt = model_from_config(config).double()
    rebuilt.load_state_dict(model.state_dict())
    batch = make_batch([4])
    torch.testing.assert_close(rebuilt(batch), model(batch), rtol=0, atol=0)


def test_lecun_init_has_zero_biases_and_fan_in_variance():
    model = create_model("sake", hidden_dim=64, num_layers=1)
    mixing = model.layers[0].coefficient_mixing.weight
    assert abs(mixing.var().item() * mixing.shape[1] - 1.0) < 0.05
    assert all(b.abs().max() == 0 for n, b in model.named_parameters() if n.endswith("bias"))
    torch_init = create_model("sake", hidden_dim=64, num_layers=1, init="torch")
    assert torch_init.layers[0].edge_in.bias.abs().max() > 0


# -- parameter count (spec §5.3) -------------------------------------------------------------


def expected_parameters(d_in: int, f: int, h: int, layers: int, k: int = 50) -> int:
    """Per layer as spec §5.3 without the dead log_gamma (H), plus the input embedding.

    The reference's 572,089 (N-body, D_in 2, F 64, L 4) also holds log_gamma (4 per layer, dead at
    HEAD: not created here) and the output head embedding_out (F·F + F + F·1 + 1 = 4,225, unused
    for dynamics: not created). Its motion count lacks layer 0's velocity MLP (F·F + 2F = 4,224),
    which Flax creates lazily and PyTorch eagerly.
    """
    c = h * f
    per_layer = (
        2 * k  # radial basis means, betas
        + 2 * f * k + k  # edge filter Lin_a
        + (2 * f + k + 1) * f + f + f * f + f  # edge MLP
        + f * h + h  # semantic attention
        + (f * h) * c  # coefficient mixing, no bias
        + c * f + f + f * f + f  # spatial MLP
        + (2 * f + f * h) * f + f + f * f + f  # node MLP
        + c  # velocity mixing
        + f * f + f + f  # velocity MLP (last Linear without bias)
    )  # fmt: skip
    return d_in * f + f + layers * per_layer


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_nbody_default_against_reference():
    model = create_model("sake", species="none", node_attr_dim=1)  # D_in 2: charge, speed
    assert count(model) == expected_parameters(2, 64, 4, 4) == 567_848
    readout, dead_log_gamma = 64 * 64 + 64 + 64 + 1, 4 * 4
    assert count(model) + readout + dead_log_gamma == 572_089  # the Flax reference
    per_layer = (count(model) - (2 * 64 + 64)) // 4
    assert per_layer + 4 == 141_918  # spec §5.3 per-layer figure includes log_gamma


@pytest.mark.parametrize(
    ("f", "h", "layers", "d_in"), [(32, 4, 5, 2), (16, 2, 3, 5), (64, 4, 4, 32)]
)
def test_parameter_count_formula(f, h, layers, d_in):
    model = create_model(
        "sake", hidden_dim=f, num_heads=h, num_layers=layers, species="none", node_attr_dim=d_in - 1
    )
    assert count(model) == expected_parameters(d_in, f, h, layers)
    variant_a = create_model(
        "sake", hidden_dim=f, num_heads=h, num_layers=layers, attention="euclidean_softmax_2022"
    )
    assert (
        count(variant_a) - count(create_model("sake", hidden_dim=f, num_heads=h, num_layers=layers))
        == h * layers
    )


def test_parameter_count_motion_and_sweep_references():
    sweep = create_model("sake", hidden_dim=32, num_layers=5, species="none", node_attr_dim=1)
    assert count(sweep) + 5 * 4 + (32 * 32 + 32 + 32 + 1) == 192_535
    motion = create_model("sake", species="one_hot", species_vocabulary=list(range(31)))
    lazy_velocity_mlp = 64 * 64 + 2 * 64
    assert count(motion) + 16 + 4225 - lazy_velocity_mlp == 569_785


# -- symmetry --------------------------------------------------------------------------------


@pytest.mark.parametrize("reflection", [False, True])
def test_layer_is_e3_equivariant_velocity_rotated_not_translated(reflection):
    torch.manual_seed(1)
    layer = SakeLayer(hidden=8, heads=2, num_basis=6, cutoff=3.0).double()
    batch = make_batch([6])
    graph = sake_graph(batch)
    h, x = torch.randn(6, 8, dtype=torch.float64), batch.positions[:, -1]
    v = torch.randn(6, 3, dtype=torch.float64)
    rot = random_orthogonal(torch.float64, torch.Generator().manual_seed(3), reflection)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    h1, x1, v1 = layer(h, x, v, graph)
    h2, x2, v2 = layer(h, x @ rot.T + shift, v @ rot.T, graph)
    torch.testing.assert_close(h2, h1, rtol=0, atol=1e-10)
    torch.testing.assert_close(x2, x1 @ rot.T + shift, rtol=0, atol=1e-10)
    torch.testing.assert_close(v2, v1 @ rot.T, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("dtype", "atol", "rtol"), [(torch.float64, 1e-10, 1e-10), (torch.float32, 1e-5, 1e-5)]
)
@pytest.mark.parametrize("options", [{}, {"attention": "euclidean_softmax_2022", "cutoff": 2.0}])
def test_model_equivariance(dtype, atol, rtol, options):
    batch = make_batch([5, 3, 4], frames=2, dtype=dtype)
    assert_equivariant(small_sake(dtype, **options), batch, atol=atol, rtol=rtol)


# -- padding, batching, gradients ----------------------------------------------------------


def pad_batch(batch: WindowBatch, at: int, connect: bool) -> WindowBatch:
    """Insert a padding node (x = 1, h from charge 1, node_mask False) at index ``at``; with
    ``connect`` it gets all-pairs edges to its window, as a padded dense batch would have."""
    shift = lambda idx: idx + (idx >= at).long()  # noqa: E731
    src, dst = shift(batch.edge_src), shift(batch.edge_dst)
    graph_of_pad = int(batch.node_graph[min(at, batch.num_nodes - 1)])
    if connect:
        members = shift(torch.nonzero(batch.node_graph == graph_of_pad).flatten())
        pad = torch.full_like(members, at)
        src, dst = torch.cat([src, members, pad]), torch.cat([dst, pad, members])

    def insert(t: Tensor, value: Tensor) -> Tensor:
        return torch.cat([t[:at], value.unsqueeze(0).to(t.dtype), t[at:]])

    ones = torch.ones_like(batch.positions[0])
    return WindowBatch(
        positions=insert(batch.positions, ones),
        species=insert(batch.species, torch.tensor(1)),
        node_attrs=insert(batch.node_attrs, torch.ones(1)),
        edge_src=src,
        edge_dst=dst,
        node_graph=insert(batch.node_graph, torch.tensor(graph_of_pad)),
        num_graphs=batch.num_graphs,
        velocities=insert(batch.velocities, ones),
        node_mask=insert(torch.ones(batch.num_nodes, dtype=torch.bool), torch.tensor(False)),
    )


@pytest.mark.parametrize("connect", [False, True])
@pytest.mark.parametrize("options", [{}, {"attention": "euclidean_softmax_2022", "cutoff": 2.0}])
def test_padding_nodes_do_not_change_real_nodes(connect, options):
    model = small_sake(**options)
    batch = make_batch([4, 5])
    padded = pad_batch(batch, at=2, connect=connect)
    out, out_padded = model(batch), model(padded)
    real = padded.node_mask
    torch.testing.assert_close(out_padded[real], out, rtol=0, atol=1e-12)
    assert torch.isfinite(out_padded).all()


@pytest.mark.parametrize("options", [{}, {"attention": "euclidean_softmax_2022"}])
def test_batch_of_mixed_sizes_equals_single_calls(options):
    model = small_sake(**options)
    sizes = [3, 6, 2, 5]
    batch = make_batch(sizes, frames=2)
    out = model(batch)
    start = 0
    for size in sizes:
        nodes = slice(start, start + size)
        src, dst = all_pairs([size])
        single = WindowBatch(
            positions=batch.positions[nodes],
            species=batch.species[nodes],
            node_attrs=batch.node_attrs[nodes],
            edge_src=src,
            edge_dst=dst,
            node_graph=torch.zeros(size, dtype=torch.long),
            num_graphs=1,
            velocities=batch.velocities[nodes],
        )
        torch.testing.assert_close(out[nodes], model(single), rtol=0, atol=1e-12)
        start += size


def test_self_loops_in_the_edge_list_are_ignored():
    model = small_sake()
    batch = make_batch([4, 3])
    loops = torch.arange(7)
    looped = batch.replace(
        edge_src=torch.cat([loops, batch.edge_src]), edge_dst=torch.cat([loops, batch.edge_dst])
    )
    torch.testing.assert_close(model(looped), model(batch), rtol=0, atol=1e-12)


@pytest.mark.parametrize("options", [{}, {"attention": "euclidean_softmax_2022", "cutoff": 2.0}])
def test_gradients_finite_with_coincident_particles(options):
    model = small_sake(**options)
    batch = make_batch([4])
    positions = batch.positions.clone()
    positions[1] = positions[0]
    positions[2] = positions[0]
    positions.requires_grad_(True)
    out = model(batch.replace(positions=positions))
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(positions.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# -- ablation switches and attention variant A ----------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"use_semantic_attention": False},
        {"use_euclidean_attention": False},
        {"use_spatial_attention": False},
        {"attention": "euclidean_softmax_2022"},
        {"cutoff": None},
        {"dt_scale": "target_dt/L"},
        {"use_velocity": False},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_switch_changes_the_output(change):
    base = {"cutoff": 6.0}  # with a cutoff, the Euclidean switch matters in the default variant
    batch = make_batch([5, 4]).replace(target_dt=3.0)
    reference = small_sake(**base)
    changed = small_sake(**{**base, **change})
    changed.load_state_dict(reference.state_dict(), strict=False)
    difference = (changed(batch) - reference(batch)).abs().max().item()
    assert difference > 1e-4


def test_euclidean_switch_changes_variant_a_without_cutoff():
    batch = make_batch([5])
    on = small_sake(attention="euclidean_softmax_2022")
    off = small_sake(attention="euclidean_softmax_2022", use_euclidean_attention=False)
    off.load_state_dict(on.state_dict())
    assert (on(batch) - off(batch)).abs().max() > 1e-4


def test_variant_a_attention_is_nearly_uniform_for_five_particles():
    torch.manual_seed(0)
    layer = SakeLayer(hidden=16, heads=4, num_basis=10, attention="euclidean_softmax_2022").double()
    batch = make_batch([5, 5, 5])
    graph = sake_graph(batch)
    h = torch.randn(15, 16, dtype=torch.float64) * 3
    _, d = pair_geometry(batch.positions[:, -1], graph)
    m, _ = layer.messages(h, d, graph)
    edge_alpha, self_alpha = layer._attention_2022(m, d, graph)
    n = 5
    low, high = 1 / (1 + (n - 1) * math.e), math.e / (math.e + n - 1)
    assert low == pytest.approx(0.084, abs=5e-4) and high == pytest.approx(0.405, abs=5e-4)
    weights = torch.cat([edge_alpha, self_alpha])
    assert weights.min() >= low and weights.max() <= high
    row_sums = torch.zeros_like(self_alpha).index_add_(0, graph.dst, edge_alpha) + self_alpha
    torch.testing.assert_close(row_sums, torch.ones_like(row_sums))
    # logits ε·λ ∈ [0, 1] and the self logit 0: the self pair gets between 1/(1+(n-1)e) and 1/n
    assert (self_alpha <= 1 / n + 1e-12).all()


def test_dt_scale_scales_each_position_step():
    """x' = x + (target_dt / L) v' instead of x + v'; one layer, so v' is the same in both."""
    model = small_sake(num_layers=1, dt_scale="target_dt/L")
    reference = small_sake(num_layers=1)
    reference.load_state_dict(model.state_dict())
    batch = make_batch([4]).replace(target_dt=2.5)
    x0 = batch.positions[:, -1]
    torch.testing.assert_close(model(batch) - x0, 2.5 * (reference(batch) - x0))


# -- the graph: regular fast path against scatters ----------------------------------------------


def test_regular_layout_is_detected_only_for_equal_in_degrees():
    assert sake_graph(make_batch([5, 5, 5])).regular_degree == 4
    assert sake_graph(make_batch([5, 4])).regular_degree == 0
    padded = pad_batch(make_batch([4, 4]), at=3, connect=False)  # the pad has no neighbours
    assert sake_graph(padded).regular_degree == 0
    graph = sake_graph(make_batch([3, 3]))
    assert torch.equal(graph.dst, torch.arange(6).repeat_interleave(2))  # sorted by receiver
    torch.testing.assert_close(graph.inv_count, torch.full((6, 1), 1 / 3, dtype=torch.float64))


def test_regular_reductions_equal_scatter_reductions():
    graph = sake_graph(make_batch([6, 6]))
    generic = graph._replace(regular_degree=0)
    g = torch.Generator().manual_seed(0)
    values = torch.randn(graph.src.shape[0], 7, dtype=torch.float64, generator=g)
    vectors = torch.randn(graph.src.shape[0], 3, dtype=torch.float64, generator=g)
    for name in ("receiver_sum", "receiver_softmax"):
        torch.testing.assert_close(getattr(graph, name)(values), getattr(generic, name)(values))
    outer = graph.receiver_outer_sum(values, vectors)
    torch.testing.assert_close(outer, generic.receiver_outer_sum(values, vectors))
    dense = torch.zeros(12, 3, 7, dtype=torch.float64)  # Σ_j u_ij c_ijᵀ, edge by edge
    for e in range(graph.src.shape[0]):
        dense[graph.dst[e]] += vectors[e].unsqueeze(1) * values[e].unsqueeze(0)
    torch.testing.assert_close(outer, dense)


@pytest.mark.parametrize("options", [{}, {"attention": "euclidean_softmax_2022", "cutoff": 3.0}])
def test_model_output_same_on_regular_and_scatter_paths(options, monkeypatch):
    import dynforecast.models.sake as sake_module

    model = small_sake(**options)
    batch = make_batch([5, 5, 5], frames=2)
    regular = model(batch)
    assert sake_graph(batch).regular_degree == 4
    original = sake_module.build_sake_graph
    monkeypatch.setattr(
        sake_module,
        "build_sake_graph",
        lambda *args: original(*args)._replace(regular_degree=0),
    )
    torch.testing.assert_close(model(batch), regular, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """torch.compile runs and agrees with eager (slow: minutes of compilation on 2 CPU cores)."""
    model = small_sake(torch.float32)
    batch = make_batch([5, 5], dtype=torch.float32)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(batch), model(batch), rtol=1e-5, atol=1e-5)


def test_dt_scale_none_spelled_as_a_string_is_the_reference_update():
    torch.manual_seed(0)
    reference = small_sake(dt_scale=None)
    spelled = small_sake(dt_scale="none")
    spelled.load_state_dict(reference.state_dict())
    scaled = small_sake(dt_scale="target_dt/L")
    scaled.load_state_dict(reference.state_dict())
    batch = make_batch([3, 4])
    assert torch.equal(spelled(batch), reference(batch))
    assert not torch.allclose(scaled(batch), reference(batch))
