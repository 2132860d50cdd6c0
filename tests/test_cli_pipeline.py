"""End to end through the CLI: generate -> train -> evaluate -> predict -> export, and the errors.

One small N-body file (20 trajectories) and one 2-epoch ESTAG run are shared by the module; every
error case checks the exact one-line message and the documented exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.loading import load_systems
from dynforecast.io.h5md import read_h5md, read_is_forecast, write_h5md
from dynforecast.train.checkpoint import load_checkpoint, save_checkpoint
from dynforecast.train.metrics import read_metrics_csv

runner = CliRunner()

# Generated N-body files recommend the nbody-multiframe protocol (target 10 frames ahead); these
# tests were written for windows whose target is the next frame, so they ask for that explicitly.
ONE_FRAME_AHEAD = ("--set", "window.horizon=1")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 20, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    run = root / "run"
    result = invoke(
        "train",
        data,
        "--model",
        "estag",
        "--out",
        run,
        "--epochs",
        2,
        "--seed",
        1,
        *ONE_FRAME_AHEAD,
    )
    assert result.exit_code == 0, result.stderr
    return root, data, run, result


def test_train_writes_the_run_directory(workspace):
    _, data, run, result = workspace
    assert result.stdout.startswith(f"{run}: estag, 2 epochs, best val MSE ")
    assert "(baselines on val: stay " in result.stdout
    assert "epoch 1/2 train_mse " in result.stderr and "epoch 2/2 train_mse " in result.stderr
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock",  # train.lock's record lock file (the lock itself ends with the process)
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
    ]
    saved = json.loads((run / "config.json").read_text())
    assert saved["seed"] == 1
    assert saved["train_config"]["model"]["num_past_frames"] == 10
    assert saved["train_config"]["model"]["node_attr_dim"] == 1  # charges
    assert saved["train_config"]["data"]["graph"]["kind"] == "all_pairs"
    assert saved["train_config"]["data"]["split"]["mode"] == "systems"
    assert set(saved["versions"]) == {"python", "torch", "numpy", "dynforecast"}
    import hashlib

    assert saved["data_checksum"] == hashlib.sha256(data.read_bytes()).hexdigest()
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and state["finished"]
    assert state["data_signature"]["species"] == [0]


def test_rerunning_a_finished_run_resumes_and_does_nothing(workspace):
    _, data, run, first = workspace
    result = invoke(
        "train",
        data,
        "--model",
        "estag",
        "--out",
        run,
        "--epochs",
        2,
        "--seed",
        1,
        *ONE_FRAME_AHEAD,
    )
    assert result.exit_code == 0, result.stderr
    assert "train_mse" not in result.stderr
    assert result.stdout.split("; ")[0] == first.stdout.split("; ")[0]


def test_evaluate_json_matches_an_independent_baseline(workspace):
    _, data, run, _ = workspace
    result = invoke("evaluate", run / "best.pt", data, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unit"] == "1" and report["split"] == "test"
    # Split "systems" 0.8/0.1/0.1 of 20 trajectories: the test split is the last two; windows
    # of T=10 frames, spacing 1, target 1 frame later: 49 - 10 = 39 per trajectory.
    assert report["windows"] == 78
    assert sorted(report["per_system"]) == ["traj00018", "traj00019"]
    positions = np.stack([s.positions for s in load_systems(data)[18:]]).astype(np.float64)
    stay = np.mean((positions[:, 10:] - positions[:, 9:-1]) ** 2)
    assert report["baselines"]["stay"] == pytest.approx(stay, rel=1e-5)
    velocity = positions[:, 9:-1] - positions[:, 8:-2]
    constant = np.mean((positions[:, 10:] - positions[:, 9:-1] - velocity) ** 2)
    assert report["baselines"]["constant_velocity"] == pytest.approx(constant, rel=1e-5)
    # the file's own velocities: x_{T-1} + v_{T-1} * target_dt (one frame time ahead here)
    systems = load_systems(data)[18:]
    stored = np.stack([s.velocities for s in systems]).astype(np.float64)
    frame_time = float(systems[0].time[1] - systems[0].time[0])
    moved = positions[:, 9:-1] + stored[:, 9:-1] * frame_time
    assert report["baselines"]["file_velocity"] == pytest.approx(
        np.mean((positions[:, 10:] - moved) ** 2), rel=1e-5
    )
    per = report["per_system"]
    assert report["mse"] == pytest.approx(np.mean([v["mse"] for v in per.values()]), rel=1e-6)
    assert 0 < report["mse"] < report["baselines"]["stay"]


def test_evaluate_table(workspace):
    _, data, run, _ = workspace
    result = invoke("evaluate", run / "best.pt", data, "--split", "val")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{run / 'best.pt'} (epoch 2) on {data}, split val: MSE (dimensionless)"
    header = ["system", "windows", "estag", "stay", "constant_velocity", "linear", "file_velocity"]
    assert lines[1].split() == header
    assert lines[2].split()[:2] == ["all", "78"]


def test_predict_and_export(workspace):
    root, data, run, _ = workspace
    output, export = root / "forecast.h5", root / "forecast.xyz"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--system", "traj00003",
        "--start", 20, "--steps", 15, "-o", output, "--export", export,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"wrote {output} and {export}: system traj00003, 10 given frames ending at frame 20 "
        "+ 15 predicted, every stored frame\n"
    )
    (forecast,) = read_h5md(output)
    source = load_systems(data, ["traj00003"])[0]
    assert forecast.positions.shape == (25, 5, 3)
    np.testing.assert_array_equal(forecast.positions[:10], source.positions[11:21])
    np.testing.assert_allclose(forecast.time, source.time[11] + 0.1 * np.arange(25), rtol=1e-9)
    np.testing.assert_array_equal(forecast.step, source.step[11] + 100 * np.arange(25))
    np.testing.assert_array_equal(forecast.charges, source.charges)
    assert read_is_forecast(output, "traj00003").tolist() == [0] * 10 + [1] * 15
    assert np.isfinite(forecast.positions).all()
    lines = export.read_text().splitlines()
    assert lines[0].strip() == "5" and len(lines) == 25 * 7


def test_periodic_data_predicts_with_boxes_and_evaluates_the_same(workspace, tmp_path):
    """Boxes pass through predict (given frames' boxes, then the last one held: constant volume)
    and change nothing the models see: evaluate gives the same report with or without them."""
    from dynforecast.io.readers import read_trajectory

    _, data, run, _ = workspace
    systems = load_systems(data)
    for system in systems:
        edges = 10.0 + 0.01 * np.arange(system.n_frames, dtype=np.float32)  # a breathing cube
        system.box = edges[:, None, None] * np.eye(3, dtype=np.float32)
    boxed = tmp_path / "boxed.h5"
    write_h5md(boxed, systems)
    output, export = tmp_path / "forecast.h5", tmp_path / "forecast.pdb"
    result = invoke(
        "predict", boxed, "--checkpoint", run / "best.pt", "--system", "traj00003",
        "--start", 20, "--steps", 15, "-o", output, "--export", export,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (forecast,) = read_h5md(output)
    source = systems[3]
    np.testing.assert_array_equal(forecast.box[:10], source.box[11:21])
    np.testing.assert_array_equal(forecast.box[10:], np.broadcast_to(source.box[20], (15, 3, 3)))
    models = export.read_text().split("\nMODEL")[1:]
    assert len(models) == 25 and all("\nCRYST1" in model for model in models)
    # Unitless lengths are written to PDB as if in Angstrom; mdtraj reads them back in nm.
    again = read_trajectory(export)
    np.testing.assert_allclose(again.box * 10, forecast.box, atol=5e-4 + 1e-5)

    reports = [
        json.loads(invoke("evaluate", run / "best.pt", path, "--json").stdout)
        for path in (data, boxed)
    ]
    assert reports[0]["mse"] == reports[1]["mse"] and reports[0]["windows"] == 78


def test_rollout_of_the_first_predicted_frame_equals_the_model_on_that_window(workspace):
    """The first rollout step is exactly the model's forecast of the window ending at --start."""
    from dynforecast.data.windows import WindowDataset
    from dynforecast.train.setup import graph_spec, window_spec
    from dynforecast.train.trained import load_trained

    root, data, run, _ = workspace
    output = root / "one.h5"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--start", 30, "--steps", 1, "-o", output
    )
    assert result.exit_code == 0, result.stderr
    trained = load_trained(run / "best.pt")
    system = load_systems(data)[0]
    dataset = WindowDataset([system], window_spec(trained.config), graph_spec(trained.config))
    with torch.no_grad():
        expected = trained.model(dataset.batch(np.array([21])))  # frames 21..30 -> 31
    np.testing.assert_allclose(read_h5md(output)[0].positions[-1], expected.numpy(), atol=1e-5)


# Errors ----------------------------------------------------------------------------------------


def test_missing_checkpoint(workspace, tmp_path):
    _, data, _, _ = workspace
    missing = tmp_path / "none.pt"
    result = invoke("evaluate", missing, data)
    assert (result.exit_code, result.stderr) == (3, f"error: {missing}: checkpoint not found\n")
    result = invoke("predict", data, "--checkpoint", missing, "--steps", 2, "-o", tmp_path / "o.h5")
    assert (result.exit_code, result.stderr) == (3, f"error: {missing}: checkpoint not found\n")


def test_not_a_checkpoint(workspace, tmp_path):
    _, data, _, _ = workspace
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("hello")
    result = invoke("evaluate", bogus, data)
    assert result.exit_code == 3
    assert result.stderr == f"error: {bogus}: not a readable checkpoint (torch.load failed)\n"


def _other_data(path: Path, **changes) -> Path:
    (system,) = load_systems(path.parent / "nbody.h5", ["traj00000"])
    for key, value in changes.items():
        setattr(system, key, value)
    write_h5md(path, [system])
    return path


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"length_unit": "nm", "time_unit": "ps"}, "units nm/ps, trained on 1/1"),
        ({"species": np.full(5, 6, np.int32)}, "species [6] not seen in training (trained on [0])"),
        ({"charges": None}, "no charges/node attributes (trained with 1 per node)"),
        ({"time": np.arange(49) * 0.5}, "frame time step 0.5 1, trained on 0.1 1"),
    ],
)
def test_evaluate_refuses_data_the_checkpoint_cannot_serve(workspace, changes, problem):
    root, _, run, _ = workspace
    other = _other_data(root / f"other-{sorted(changes)[0]}.h5", **changes)
    result = invoke("evaluate", run / "best.pt", other)
    assert result.exit_code == 5
    assert result.stderr == (
        f"error: {other}: does not fit checkpoint {run / 'best.pt'}: {problem}\n"
    )


def test_train_refuses_unknown_key_and_model(workspace, tmp_path):
    _, data, _, _ = workspace
    result = invoke("train", data, "--out", tmp_path / "r", "--set", "optim.lrr=1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown configuration key 'optim.lrr'; valid keys: ")
    result = invoke("train", data, "--out", tmp_path / "r", "--set", "model.hiden=3")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: unknown configuration key 'model.hiden' for model 'estag'; valid: "
        "model.hidden_dim, model.num_layers, "
    )
    result = invoke("train", data, "--out", tmp_path / "r", "--model", "stay")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: model 'stay' has nothing to learn; choose one of ")
    assert not (tmp_path / "r").exists()


def test_resume_refuses_another_configuration(workspace):
    _, data, run, _ = workspace
    result = invoke(
        "train", data, "--out", run, "--epochs", 2, "--seed", 1, "--lr", 0.1, *ONE_FRAME_AHEAD
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {run}: holds a run with optim.lr=0.0005, not 0.1; use the same configuration "
        "to resume, or another --out for a new run\n"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(workspace, tmp_path):
    _, data, run, _ = workspace
    message = (
        f"error: --device cuda: CUDA is not available here (torch {torch.__version__}); "
        "use --device cpu or --device auto\n"
    )
    result = invoke("train", data, "--out", tmp_path / "r", "--device", "cuda")
    assert (result.exit_code, result.stderr) == (2, message)
    result = invoke("evaluate", run / "best.pt", data, "--device", "cuda")
    assert (result.exit_code, result.stderr) == (2, message)


def test_predict_refuses_existing_output_before_any_work(workspace):
    root, data, run, _ = workspace
    existing = root / "existing.h5"
    existing.write_text("keep")
    result = invoke("predict", data, "--checkpoint", run / "best.pt", "--steps", 2, "-o", existing)
    assert result.exit_code == 4
    assert result.stderr == f"error: {existing}: exists (use --overwrite to replace it)\n"
    assert existing.read_text() == "keep"


def test_predict_refuses_a_start_without_enough_given_frames(workspace, tmp_path):
    _, data, run, _ = workspace
    output = tmp_path / "f.h5"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--start", 5, "--steps", 2, "-o", output
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --start 5: the model needs 10 given frames spaced 1 apart ending at --start; "
        "choose a frame in 9..48\n"
    )
    assert not output.exists()


def test_predict_refuses_an_unknown_export_format_before_writing_anything(workspace, tmp_path):
    _, data, run, _ = workspace
    output, export = tmp_path / "f.h5", tmp_path / "f.dcd"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--steps", 2, "-o", output,
        "--export", export,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {export}: unknown export extension '.dcd' (supported: .pdb, .xyz, .extxyz, .bvh, .amc)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_diverging_rollout_writes_frames_then_exits_6(workspace, tmp_path):
    _, data, run, _ = workspace
    state = load_checkpoint(run / "best.pt")
    theta = state["model_state"]["pooling.theta"]
    theta[0] = -30.0  # x_hat = x_last + 30 (x_last - x_first): explodes within a few steps
    broken = tmp_path / "broken.pt"
    save_checkpoint(state, broken)
    output = tmp_path / "f.h5"
    result = invoke(
        "predict", data, "--checkpoint", broken, "--start", 20, "--steps", 50, "-o", output
    )
    assert result.exit_code == 6
    window, message = result.stderr.strip().splitlines()  # the window used, then the error
    assert window.startswith("window T=10 frames 1 apart")
    assert message.startswith(f"error: {output}: rollout diverged: step ")
    assert "from the initial centroid, beyond 10 x the initial extent" in message
    predicted = int(message.split(" given and ")[1].split(" predicted")[0])
    assert message.endswith(f"wrote the 10 given and {predicted} predicted frames before it")
    flags = read_is_forecast(output, "traj00000")
    assert flags.tolist() == [0] * 10 + [1] * predicted
    assert np.isfinite(read_h5md(output)[0].positions).all()


def test_evaluate_table_names_a_physical_unit():
    from dynforecast.evaluate import EvaluationReport

    report = EvaluationReport(
        checkpoint=Path("run/best.pt"), data=Path("adk.h5"), split="test", model="estag",
        epoch=3, windows=2, mse=0.5, unit="nm^2",
        baselines={"stay": 1.0, "constant_velocity": None}, per_system={},
    )  # fmt: skip
    assert (
        report.table().splitlines()[0] == "run/best.pt (epoch 3) on adk.h5, split test: MSE in nm^2"
    )
    assert report.table().splitlines()[2].split() == ["all", "2", "0.5", "1", "n/a"]


def test_train_compile_flag_reaches_the_loop_and_is_recorded(workspace, tmp_path, monkeypatch):
    _, data, _, _ = workspace
    compiled = []
    real_compile = torch.compile

    def recording_compile(module, **options):
        compiled.append(type(module).__name__)
        return real_compile(module, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", recording_compile)
    run = tmp_path / "compiled"
    result = invoke(
        "train", data, "--model", "egnn", "--out", run, "--epochs", 1, "--compile",
        *ONE_FRAME_AHEAD,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert compiled == ["EGNN"]
    saved = json.loads((run / "config.json").read_text())
    assert saved["train_config"]["optim"]["compile"] is True
    evaluated = invoke("evaluate", run / "best.pt", data, "--json")  # the plain model's weights
    assert evaluated.exit_code == 0, evaluated.stderr


def test_predict_checks_the_export_format_on_the_data_before_writing_anything(workspace, tmp_path):
    """N-body data is no skeleton: a BVH export is refused before the -o file is written."""
    _, data, run, _ = workspace
    output, export = tmp_path / "f.h5", tmp_path / "f.bvh"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--steps", 2, "-o", output,
        "--export", export,
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"error: {export}: ")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_predict_refuses_an_amc_export_of_data_without_asf_before_writing(workspace, tmp_path):
    _, data, run, _ = workspace
    output, export = tmp_path / "f.h5", tmp_path / "f.amc"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--steps", 2, "-o", output,
        "--export", export,
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert "has no ASF skeleton" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_predict_pdb_export_numbers_models_from_1_and_names_the_forecasts(workspace, tmp_path):
    _, data, run, _ = workspace
    output, export = tmp_path / "f.h5", tmp_path / "f.pdb"
    result = invoke(
        "predict", data, "--checkpoint", run / "best.pt", "--system", "traj00003",
        "--start", 20, "--steps", 15, "-o", output, "--export", export,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = export.read_text().splitlines()
    models = [line for line in lines if line.startswith("MODEL")]
    assert models == [f"MODEL     {k:4d}" for k in range(1, 26)]
    assert [line for line in lines if line.startswith("REMARK")][1:] == [
        "REMARK   1 MODELs 11-25 are forecasts (predicted by dynforecast)",
        "REMARK   1 MODELs 1-10 are given frames",
    ]
    assert read_is_forecast(output, "traj00003").tolist() == [0] * 10 + [1] * 15


@pytest.mark.parametrize(
    "command",
    ["ingest", "info", "models", "report", "train", "evaluate", "predict", "generate nbody"],
)
def test_help_shows_no_value_type_beside_flags(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
    if command == "train":  # options that take values keep their type
        assert "<int>" in result.output and "<float>" in result.output


def test_evaluate_without_a_data_file_uses_the_file_the_run_was_trained_on(workspace, tmp_path):
    _, data, run, _ = workspace
    given = invoke("evaluate", run, data, "--json")
    recorded = invoke("evaluate", run, "--json")
    assert recorded.exit_code == 0, recorded.stderr
    assert json.loads(recorded.stdout)["mse"] == json.loads(given.stdout)["mse"]
    missing = invoke("evaluate", run, tmp_path / "missing.h5")
    assert missing.exit_code == 3
    assert missing.stderr.strip() == f"error: {tmp_path / 'missing.h5'}: no such file"


def test_evaluate_without_a_data_file_names_the_recorded_file_when_it_is_gone(workspace, tmp_path):
    _, _, run, _ = workspace
    moved = tmp_path / "best.pt"
    state = torch.load(run / "best.pt", weights_only=False)
    state["data_path"] = str(tmp_path / "moved.h5")
    torch.save(state, moved)
    result = invoke("evaluate", moved)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {moved}: no data file given, and the file it was trained on "
        f"({tmp_path / 'moved.h5'}) is not there; give the data file after the checkpoint"
    )
