"""Issue 9: a user's own trajectory trains with no options; presets; what runs is printed.

Every test goes through the CLI (Typer's runner) on the five data kinds of `data_kinds`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from data_kinds import KINDS, make_kind
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import write_h5md
from dynforecast.train.config import resolve_config
from dynforecast.train.presets import PRESETS

runner = CliRunner()
#: What each kind resolves to with defaults: graph kind, (T, D), split mode.
EXPECTED = {
    "adk": ("radius", (10, 1), "chronological"),
    "molecule": ("bonds", (10, 5), "chronological"),
    "clip": ("bonds", (10, 1), "chronological"),
    "clips": ("bonds", (10, 2), "chronological"),
    "nbody": ("all_pairs", (10, 1), "systems"),
}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    return {kind: make_kind(kind, root) for kind in KINDS}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _data(files, kind) -> list[str]:
    return [] if files[kind] is None else [str(files[kind])]


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _evaluate(run: Path, data: list[str], split: str) -> dict:
    if not data:  # the built-in set: its cached file is the checkpoint's data
        data = [_config(run)["data_path"]]
    result = invoke("evaluate", run, *data, "--split", split, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("kind", KINDS)
def test_each_data_kind_trains_with_defaults_and_prints_what_runs(files, kind, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", *_data(files, kind), "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    for label in ("device", "model", "window", "graph", "split", "batch", "baselines"):
        assert any(line.startswith(f"{label} ") for line in lines), (label, result.stderr)
    resolved = _config(run)["train_config"]
    graph, (t, d), mode = EXPECTED[kind]
    window = resolved["data"]["window"]
    assert (resolved["data"]["graph"]["kind"], (window["past_frames"], window["spacing"])) == (
        graph,
        (t, d),
    )
    assert resolved["data"]["split"]["mode"] == mode
    assert resolved["device"] == "cpu"
    for split in ("val", "test"):
        report = _evaluate(run, _data(files, kind), split)
        assert report["windows"] > 0 and math.isfinite(report["mse"])
        assert math.isfinite(report["baselines"]["stay"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_data_kind_runs_train_evaluate_predict_export_with_no_options(
    files, kind, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = _data(files, kind)
    result = invoke("train", *data)
    assert result.exit_code == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert math.isfinite(_evaluate(run, data, "test")["mse"])
    source = data or [_config(run)["data_path"]]
    suffix = {"adk": ".pdb", "molecule": ".xyz", "clip": ".bvh", "clips": ".bvh"}.get(kind)
    export = ["--export", tmp_path / f"forecast{suffix}"] if suffix else []
    result = invoke(
        "predict", *source, "--checkpoint", run, "--steps", 5, "-o", tmp_path / "f.h5", *export
    )
    assert result.exit_code == 0, result.stderr
    assert "window T=" in result.stderr


def test_estag_sake_egnn_with_defaults_see_the_same_windows_and_baselines(files, tmp_path):
    seen = {}
    for model in ("estag", "sake", "egnn"):
        run = tmp_path / model
        result = invoke("train", files["clip"], "--model", model, "--epochs", 1, "--out", run)
        assert result.exit_code == 0, result.stderr
        config = _config(run)
        window = config["train_config"]["data"]["window"]
        split = config["train_config"]["data"]["split"]
        seen[model] = (
            json.dumps(window),
            json.dumps(split),
            json.dumps(config["baselines_val_mse"]),
        )
        report = _evaluate(run, [str(files["clip"])], "test")
        seen[model] += (report["windows"], json.dumps(report["baselines"]))
    assert seen["estag"] == seen["sake"] == seen["egnn"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_reproduces_the_explicit_keys_it_stands_for(name):
    explicit = [f"{key}={json.dumps(value)}" for key, value in PRESETS[name].items()]
    assert resolve_config(protocol=name) == resolve_config(
        overrides=[*explicit, f'protocol="{name}"']
    )
    # preset < --set < explicit options
    config = resolve_config(
        overrides=["optim.lr=1e-2", "split.mode=random"],
        options={"optim.lr": 3e-3},
        protocol=name,
    )
    assert (config.optim.lr, config.data.split.mode, config.protocol) == (3e-3, "random", name)


def test_protocol_is_recorded_and_an_unknown_one_names_the_presets(files, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", files["adk"], "--protocol", "adk", "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr
    resolved = _config(run)["train_config"]
    assert resolved["protocol"] == "adk"
    assert resolved["data"]["graph"]["cutoff"] == pytest.approx(1.0)  # 10 angstrom in nm
    assert "fractions" not in resolved["data"]["split"]  # adk_reference ignores them
    result = invoke("train", files["adk"], "--protocol", "amber")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --protocol 'amber': expected one of adk, md17, motion, nbody"
    )


def test_a_split_mode_that_cannot_work_names_the_modes_that_would(files, tmp_path):
    result = invoke(
        "train", files["clip"], "--set", "window.past_frames=10", "--set", "window.spacing=5",
        "--set", "split.fractions=[0.8, 0.1, 0.1]", "--out", tmp_path / "run",
    )  # fmt: skip
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: split 'chronological' with fractions [0.8, 0.1, 0.1] leaves no val windows (70 "
        "windows of span 51 frames in 1 system); use longer data, other fractions or another "
        "split mode; modes that work here: random, adk_reference (--set split.mode=...)",
    )
    result = invoke("train", files["molecule"], "--protocol", "md17", "--out", tmp_path / "md17")
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: split 'md17_reference' leaves no train windows (200 windows of span 101 frames "
        "in 1 system); use longer data, other fractions or another split mode; modes that work "
        "here: random, adk_reference (--set split.mode=...)",
    )


def test_a_batch_leaving_few_steps_is_warned_about_and_quiet_silences_logs(files, tmp_path):
    result = invoke(
        "train", files["clip"], "--batch-size", 100, "--epochs", 1, "--out", tmp_path / "a"
    )
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: batch size 100 leaves 1 optimiser step per epoch for 62 training windows; "
        "a smaller batch (e.g. 6) usually trains better"
    ) in result.stderr
    result = invoke("train", files["clip"], "--epochs", 1, "--quiet", "--out", tmp_path / "b")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.count("\n") == 1 and "best val MSE" in result.stdout
    result = invoke("evaluate", tmp_path / "b", files["clip"], "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    result = invoke("evaluate", tmp_path / "b", files["clip"])
    assert "window T=10 frames 1 apart" in result.stderr
    assert "split chronological 0.6/0.2/0.2: train 62, val 14, test 14 windows; scoring test" in (
        result.stderr
    )


def test_amp_is_a_deprecated_alias_of_bf16_and_recorded_as_it(files, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", files["clip"], "--amp", "--device", "cpu", "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr
    assert "warning: --amp (optim.amp) is deprecated; training with --precision bf16 on cpu" in (
        result.stderr
    )
    resolved = _config(run)["train_config"]
    assert (resolved["optim"]["amp"], resolved["optim"]["precision"], resolved["device"]) == (
        False,
        "bf16",
        "cpu",
    )


def test_graph_cutoff_takes_a_length_with_a_unit(files, tmp_path):
    run = tmp_path / "run"
    result = invoke(
        "train", files["adk"], "--set", "graph.kind=radius", "--set", "graph.cutoff=8 angstrom",
        "--epochs", 1, "--out", run,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert _config(run)["train_config"]["data"]["graph"]["cutoff"] == pytest.approx(0.8)
    assert "graph: cutoff 8 angstrom = 0.8 nm" in result.stderr
    for value, message in (
        ("8 parsecs", "error: graph.cutoff '8 parsecs': unknown length unit 'parsecs'; "
         "use angstrom or nm"),
        ("-1 nm", "error: graph.cutoff '-1 nm': expected a positive length"),
    ):  # fmt: skip
        result = invoke("train", files["adk"], "--set", f"graph.cutoff={value}")
        assert (result.exit_code, result.stderr.strip()) == (2, message)
    result = invoke("train", files["clip"], "--set", "graph.cutoff=0.5 nm")
    assert result.stderr.strip() == (
        "error: graph.cutoff '0.5 nm': the data's lengths have no unit (\"1\"); give a bare number"
    )


def test_recorded_recipe_split_is_used_and_a_leaking_split_is_refused(tmp_path, monkeypatch):
    from dynforecast.data import nbody
    from dynforecast.io.h5md import read_h5md

    # A small recipe of the same shape as EGNN's (3/7, 2/7, 2/7 of the trajectories).
    monkeypatch.setitem(nbody.EGNN_RECIPES, "tiny", ((0, 6), (100, 4), (200, 4)))
    data = tmp_path / "recipe.h5"
    result = invoke("generate", "nbody", "--recipe", "tiny", "--mode", "fast", "-o", data)
    assert result.exit_code == 0, result.stderr
    stored = read_h5md(data)
    assert [s.parameters["recipe_split"] for s in stored] == ["train"] * 6 + ["val"] * 4 + [
        "test"
    ] * 4
    assert {(s.parameters["protocol"], s.parameters["recipe"]) for s in stored} == {
        ("nbody", "tiny")
    }
    run = tmp_path / "run"
    result = invoke("train", data, "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr
    assert "auto     protocol: nbody (recorded in the data file)" in result.stderr
    assert "split      systems 0.428571/0.285714/0.285714: train 6, val 4, test 4" in (
        result.stderr
    )
    resolved = _config(run)["train_config"]
    assert (resolved["protocol"], resolved["data"]["window"]["protocol"]) == (
        "nbody",
        "nbody-standard",
    )
    result = invoke("train", data, "--set", "split.fractions=[0.8, 0.1, 0.1]", "--out", run)
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: split 'systems' with fractions [0.8, 0.1, 0.1] trains on 4 validation and 1 "
        "test systems the file records (generate --recipe); drop the split settings to use the "
        "recorded split, or add --set split.ignore_recorded=true",
    )
    result = invoke(
        "train", data, "--set", "split.fractions=[0.8, 0.1, 0.1]",
        "--set", "split.ignore_recorded=true", "--epochs", 1, "--out", tmp_path / "leak",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_constant_node_inputs_are_left_out_and_said_so(tmp_path):
    systems = nbody_trajectories(simulate_nbody(12, seed=3, mode="fast"))
    data = tmp_path / "nbody.h5"
    write_h5md(data, systems)
    run = tmp_path / "run"
    result = invoke("train", data, "--model", "sake", "--epochs", 1, "--out", run)
    assert result.exit_code == 0, result.stderr
    assert "auto     node inputs: species left out (all 0)" in result.stderr
    hyper = _config(run)["train_config"]["model"]
    assert (hyper["species"], hyper["node_attr_dim"]) == ("none", 1)  # charges vary: kept
