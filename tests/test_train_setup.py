"""The one place where "auto" settings meet the data and the model (dynforecast.train.setup)."""

from __future__ import annotations

import numpy as np
import pytest
from datafactory import chain_bonds, make_system

from dynforecast.errors import CompatibilityError, UsageError
from dynforecast.train import setup
from dynforecast.train.checkpoint import DataSignature
from dynforecast.train.config import resolve_config


def _resolve(systems, *overrides, builtin=False):
    return setup.resolve_config(resolve_config(None, list(overrides)), systems, builtin=builtin)


def test_estag_window_follows_the_window_and_varying_charges_set_node_attrs():
    systems = [make_system("a", 1000, 4, charges=True)]
    systems[0].charges[:] = [1.0, -1.0, 1.0, -1.0]
    config = _resolve(systems)
    assert config.data.window.past_frames == 10 and config.data.window.spacing == 10
    assert config.model.hyperparameters == {"num_past_frames": 10, "node_attr_dim": 1}
    config = _resolve(systems, "window.past_frames=4")
    assert config.model.hyperparameters["num_past_frames"] == 4
    config = _resolve(systems, "model.num_past_frames=6")
    assert config.data.window.past_frames == 6
    systems[0].charges[:] = 0.5  # one charge: a constant input is left out
    assert _resolve(systems).model.hyperparameters["node_attr_dim"] == 0


def test_conflicting_frame_counts_are_refused():
    with pytest.raises(UsageError) as caught:
        _resolve([make_system("a", 30, 4)], "window.past_frames=4", "model.num_past_frames=6")
    assert str(caught.value) == (
        "model.num_past_frames=6 differs from data.window.past_frames=4; set one of them"
    )


def test_every_model_gets_the_same_data_driven_window():
    systems = [make_system("a", 1000, 3, velocities=True)]  # species 1..3: a molecule
    windows = {
        name: _resolve(systems, f"model.name={name}").data.window
        for name in ("estag", "sake", "egnn")
    }
    assert {(w.past_frames, w.spacing, w.horizon) for w in windows.values()} == {(10, 10, None)}
    short = [make_system("a", 100, 3)]  # too short for D=10: shortened until val/test fit
    config = _resolve(short, "model.name=sake")
    assert (config.data.window.past_frames, config.data.window.spacing) == (10, 1)
    assert config.data.split.fractions == (0.6, 0.2, 0.2)


def test_protocols_fill_unset_window_fields():
    config = _resolve([make_system("a", 60, 3)], "window.protocol=md17", "window.spacing=3")
    window = config.data.window
    assert (window.past_frames, window.spacing, window.horizon) == (10, 3, None)
    builtin = _resolve([make_system("a", 60, 3)], builtin=True).data.window
    assert (builtin.protocol, builtin.past_frames, builtin.spacing, builtin.horizon) == (
        "nbody-multiframe", 10, 1, 10,
    )  # fmt: skip
    with pytest.raises(UsageError, match=r"'data.window.protocol': expected one of \["):
        _resolve([make_system("a", 60, 3)], "window.protocol=md18")


def test_one_hot_species_get_the_data_vocabulary():
    config = _resolve([make_system("a", 30, 3)], "model.node_input=one_hot")
    assert config.model.hyperparameters["species_vocabulary"] == [1, 2, 3]


def test_graph_and_split_auto():
    bonded = [make_system(f"s{i}", 30, 4, bonds=chain_bonds(4)) for i in range(3)]
    config = _resolve(bonded)
    assert (config.data.graph.kind, config.data.split.mode) == ("bonds", "chronological")
    many = [make_system(f"s{i}", 30, 4) for i in range(10)]
    config = _resolve(many)
    assert (config.data.graph.kind, config.data.split.mode) == ("all_pairs", "systems")
    notes: list[str] = []
    big = [make_system("big", 12, 201)]
    config = setup.resolve_config(resolve_config(None, []), big, notes=notes)
    assert config.data.graph.kind == "radius" and config.data.graph.cutoff > 0
    assert any(n.startswith("graph: radius graph, cutoff ") for n in notes)


def test_unknown_model_and_hyperparameter():
    with pytest.raises(UsageError, match=r"^model 'gnn' is unknown; choose one of "):
        _resolve([make_system("a", 30, 3)], "model.name=gnn")
    with pytest.raises(UsageError) as caught:
        setup.build_model(_resolve([make_system("a", 30, 3)], "model.hidden_dim=0"))
    assert str(caught.value) == "model 'estag': expected hidden_dim >= 1 (got 0)"
    with pytest.raises(UsageError) as caught:
        setup.build_model(_resolve([make_system("a", 30, 3)], "model.hidden_dim='16'"))
    assert str(caught.value) == "model 'estag': expected hidden_dim of type int (got '16')"


def test_velocity_use_is_detected_through_gradients():
    systems = [make_system(f"s{i}", 20, 4, velocities=True, charges=True) for i in range(2)]
    for name, expected in (("sake", True), ("estag", False)):
        config = _resolve(systems, f"model.name={name}", "window.past_frames=2", "window.spacing=1")
        dataset = setup.build_dataset(systems, config)
        model = setup.build_model(config)
        assert setup.uses_velocities(model, dataset, np.arange(3)) is expected


def test_signature_refuses_missing_velocities_and_other_sizes():
    trained = DataSignature("nm", "ps", 0.5, (1, 6), 0, True, (5,), fixed_size=True)
    offered = DataSignature("nm", "ps", 0.5, (6,), 0, False, (5,))
    with pytest.raises(CompatibilityError) as caught:
        trained.check(offered, "m.pt", "d.h5")
    assert str(caught.value) == (
        "d.h5: does not fit checkpoint m.pt: no velocities (the model was trained with velocities)"
    )
    offered = DataSignature("nm", "ps", 0.5, (6,), 0, True, (7,))
    with pytest.raises(CompatibilityError, match=r"particle counts \[7\], trained on \[5\]$"):
        trained.check(offered, "m.pt", "d.h5")
    assert DataSignature.from_dict(trained.to_dict()) == trained


def test_resolve_device():
    import torch

    assert setup.resolve_device("cpu") == torch.device("cpu")
    assert setup.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UsageError) as caught:
        setup.resolve_device("tpu")
    assert str(caught.value) == "--device tpu: expected auto, cpu, cuda or cuda:<index>"


def test_generated_nbody_data_selects_its_recorded_protocol() -> None:
    from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
    from dynforecast.data.windows import PROTOCOLS
    from dynforecast.train.config import TrainConfig
    from dynforecast.train.setup import recommended_protocol, resolve_config

    systems = nbody_trajectories(simulate_nbody(3, seed=1, mode="fast"))
    assert recommended_protocol(systems) == "nbody-multiframe"
    window = resolve_config(TrainConfig(), systems).data.window
    named = PROTOCOLS["nbody-multiframe"]
    assert (window.past_frames, window.spacing, window.horizon) == (
        named.past_frames,
        named.spacing,
        named.horizon,
    )
    systems[0].parameters.pop("window_protocol")
    assert recommended_protocol(systems) is None  # mixed: no recommendation


def test_training_steps_sake_by_the_target_time_unless_told_otherwise():
    systems = [make_system(f"s{i}", 30, 4, velocities=True, charges=True) for i in range(2)]
    chosen = _resolve(systems, "model.name=sake")
    assert chosen.model.hyperparameters["dt_scale"] == "target_dt/L"
    told = _resolve(systems, "model.name=sake", "model.dt_scale=none")
    assert told.model.hyperparameters["dt_scale"] == "none"
    assert setup.build_model(told).dt_scale is None  # "none" is None spelled for --set
    assert "dt_scale" not in _resolve(systems, "model.name=egnn").model.hyperparameters


def test_sake_trained_on_motion_in_seconds_needs_the_scaled_kinetic_update(tmp_path):
    """Skeleton-like motion stored in seconds (120 frames/s): the reference's x + v' per layer adds
    velocities in units per second, hundreds of units off, and training does not recover; the
    update scaled by target_dt / L (train's default) starts at constant-velocity extrapolation."""
    import dataclasses

    from dynforecast.io.h5md import write_h5md
    from dynforecast.train.run import train

    rng = np.random.default_rng(0)
    t = np.arange(400)[:, None, None] / 120.0
    phase, freq = rng.uniform(0, 2 * np.pi, (1, 8, 3)), rng.uniform(0.5, 2, (1, 8, 3))
    wave = 40 * np.sin(2 * np.pi * freq * t + phase) + 10 * rng.normal(size=(1, 8, 3))
    system = dataclasses.replace(
        make_system("walk", 400, 8),
        positions=wave.astype(np.float32),
        time=t.ravel(),
        time_unit="s",
        length_unit="1",
    )
    write_h5md(tmp_path / "walk.h5", [system])
    results = {}
    for scale in ("target_dt/L", "none"):
        config = resolve_config(
            None,
            [
                "model.name=sake", "window.protocol=motion", "model.hidden_dim=16",
                "model.num_layers=2", f"model.dt_scale={scale}", "split.fractions=[0.6,0.2,0.2]",
                "optim.epochs=3",
                *(["model.delta_scale=none"] if scale == "none" else []),  # the whole reference
            ],
        )  # fmt: skip
        results[scale] = train(tmp_path / "walk.h5", config, tmp_path / scale.replace("/", "_"))
    scaled, reference = results["target_dt/L"], results["none"]
    stay, cv = (scaled.baselines_val_mse[k] for k in ("stay", "constant_velocity"))
    assert scaled.best_val_mse < min(stay, 1.1 * cv)
    assert reference.best_val_mse > 100 * stay  # why train does not default to the reference form
