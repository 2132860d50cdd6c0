"""The training configuration: defaults, files, --set overrides, refusals with exact messages."""

from __future__ import annotations

import json

import pytest

from dynforecast.errors import InputError, UsageError
from dynforecast.train.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    parse_override,
    resolve_config,
    valid_keys,
)


def test_defaults_round_trip_through_dict():
    config = TrainConfig()
    assert config_from_dict(config.to_dict()) == config
    assert config.to_dict()["model"] == {"name": "estag"}
    assert config.to_dict()["data"]["split"]["fractions"] is None  # auto (train/auto.py)


@pytest.mark.parametrize(
    ("text", "parts", "value"),
    [
        ("optim.lr=1e-3", ["optim", "lr"], 1e-3),
        ("model.hidden_dim=32", ["model", "hidden_dim"], 32),
        ("data.graph.kind=all_pairs", ["data", "graph", "kind"], "all_pairs"),
        ("graph.kind=radius", ["data", "graph", "kind"], "radius"),
        ('model.name="sake"', ["model", "name"], "sake"),
        ("optim.amp=true", ["optim", "amp"], True),
        ("split.fractions=[0.6, 0.2, 0.2]", ["data", "split", "fractions"], [0.6, 0.2, 0.2]),
    ],
)
def test_parse_override_reads_toml_literals_and_bare_strings(text, parts, value):
    assert parse_override(text) == (parts, value)


def test_parse_override_refuses_missing_value():
    with pytest.raises(UsageError) as caught:
        parse_override("optim.lr")
    assert str(caught.value) == (
        "--set 'optim.lr': expected key=value with a dotted key, e.g. optim.lr=1e-3"
    )


def test_precedence_file_then_set_then_options(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'seed = 5\n[optim]\nlr = 0.01\nepochs = 3\n[model]\nname = "sake"\nhidden_dim = 8\n'
    )
    config = resolve_config(path, ["optim.lr=0.02", "model.hidden_dim=16"], {"optim.epochs": 7})
    assert (config.seed, config.optim.lr, config.optim.epochs) == (5, 0.02, 7)
    assert config.model.name == "sake" and dict(config.model.hyperparameters) == {"hidden_dim": 16}


def test_json_config_and_none_clears_optional(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"optim": {"clip": 1.5}}))
    assert resolve_config(path).optim.clip == 1.5
    assert resolve_config(path, ["optim.clip=none"]).optim.clip is None


def test_unknown_key_is_refused_with_the_valid_ones():
    with pytest.raises(UsageError) as caught:
        config_from_dict(apply_overrides({}, ["optim.lrr=1"]))
    assert str(caught.value) == (
        "unknown configuration key 'optim.lrr'; valid keys: optim.lr, optim.weight_decay, "
        "optim.clip, optim.schedule, optim.epochs, optim.batch_size, "
        "optim.early_stopping_patience, optim.amp, optim.compile, optim.val_every, "
        "optim.ema_decay, optim.precision, optim.divergence_factor, optim.rollback_lr_factor, "
        "optim.max_rollbacks, optim.workers"
    )
    assert "data.window.past_frames" in valid_keys()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=fast", "configuration key 'optim.lr': expected a number (got 'fast')"),
        ("optim.epochs=2.5", "configuration key 'optim.epochs': expected an integer (got 2.5)"),
        ("optim.epochs=0", "configuration key 'optim.epochs': expected a positive value (got 0)"),
        (
            "optim.schedule=linear",
            "configuration key 'optim.schedule': expected one of ['none', 'cosine', 'plateau'] "
            "(got 'linear')",
        ),
        (
            "split.fractions=[0.5, 0.1]",
            "configuration key 'data.split.fractions': expected a list of 3 (got [0.5, 0.1])",
        ),
        ("optim=3", "configuration key 'optim': expected a table (got 3)"),
    ],
)
def test_bad_values_are_refused(override, message):
    with pytest.raises(UsageError) as caught:
        resolve_config(None, [override])
    assert str(caught.value) == message


def test_bad_config_files(tmp_path):
    with pytest.raises(InputError, match="configuration file not found"):
        resolve_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\n")
    with pytest.raises(InputError, match=r"bad.toml: not a valid TOML file"):
        resolve_config(bad)
    yaml = tmp_path / "run.yaml"
    yaml.write_text("optim: {}\n")
    with pytest.raises(InputError) as caught:
        resolve_config(yaml)
    assert str(caught.value) == f"{yaml}: unknown configuration format '.yaml'; use .toml or .json"
