"""``--precision fp32|bf16|fp16`` (train/precision.py).

Tolerances, stated in train/precision.py and checked here on the symmetry suite's batches (mixed
sizes 5, 3, 7; all pairs with velocities and charges, and bonds) for every learned model: under
autocast the predicted displacement from the last past frame is within `TOLERANCE` of its float32
value, relative to the largest float32 displacement, and every E(3) and permutation error is
within the same bound (plus float32's own 1e-5 of the output scale). (Relative to the positions themselves the errors are far smaller: the
displacement is what the model computes.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_batches import collate, learnable_model_names, small_model, window_list
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.errors import UsageError
from dynforecast.io.h5md import write_h5md
from dynforecast.models.symmetry import assert_equivariant
from dynforecast.train.checkpoint import load_checkpoint
from dynforecast.train.precision import TOLERANCE, Precision, choose_precision

CPU = torch.device("cpu")
BATCH_KINDS = {
    "all_pairs+velocities+charges": {"graph": "all_pairs", "velocities": True, "charges": True},
    "bonds": {"graph": "bonds", "velocities": False, "charges": False},
}
#: float32's own equivariance error relative to the output scale (tests/test_model_symmetry.py),
#: which translations of the positions bring about whatever the precision of the model.
FP32_RTOL = 1e-5
runner = CliRunner()


def _batch(kind: str):
    return collate(window_list([5, 3, 7], num_frames=5, seed=0, dtype=torch.float32,
                               **BATCH_KINDS[kind]))  # fmt: skip


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", list(BATCH_KINDS))
@pytest.mark.parametrize("name", learnable_model_names())
def test_low_precision_predictions_and_symmetries_stay_within_tolerance(name, kind, precision):
    chosen = choose_precision(precision, False, CPU, "float32")
    batch = _batch(kind)
    torch.manual_seed(0)
    model = small_model(name, batch).eval()

    def autocast_model(b):
        with chosen.autocast():
            return model(b).float()

    with torch.no_grad():
        reference = model(batch)
        low = autocast_model(batch)
        displacement = (reference - batch.positions[:, -1]).abs().max().item()
        error = (low - reference).abs().max().item()
        assert 0 < error <= TOLERANCE[precision] * displacement  # autocast did change something
        assert_equivariant(
            autocast_model, batch, atol=TOLERANCE[precision] * displacement, rtol=FP32_RTOL,
            generator=torch.Generator().manual_seed(1),
        )  # fmt: skip


def test_fp16_trains_through_a_gradient_scaler_and_bf16_without_one():
    assert choose_precision("fp16", False, CPU, "float32").scaler() is not None
    assert choose_precision("bf16", False, CPU, "float32").scaler() is None
    assert choose_precision("fp32", True, CPU, "float32") == Precision("bf16", "cpu")  # --amp


def test_impossible_combinations_are_one_line_usage_errors():
    with pytest.raises(UsageError) as amp:
        choose_precision("fp16", True, CPU, "float32")
    assert str(amp.value) == (
        "configuration keys 'optim.amp' and 'optim.precision': amp means bf16, not fp16; "
        "drop optim.amp (it is deprecated) and keep --precision fp16"
    )
    with pytest.raises(UsageError) as wide:
        choose_precision("bf16", False, CPU, "float64")
    assert str(wide.value) == (
        "--precision bf16: needs dtype float32 parameters (got dtype float64); "
        "use --precision fp32 with float64"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("precision") / "nbody.h5"
    write_h5md(path, nbody_trajectories(simulate_nbody(12, seed=43, mode="fast")))
    return path


def _train(data: Path, out: Path, *extra: str):
    args = ["train", str(data), "--model", "egnn", "--epochs", "2", "--device", "cpu"]
    args += ["--set", "model.hidden_dim=8", "--set", "model.num_layers=1", "--out", str(out)]
    return runner.invoke(app, [*args, *extra])


def test_train_with_each_precision_through_the_cli(data, tmp_path):
    mse = {}
    for precision in ("fp32", "bf16", "fp16"):
        result = _train(data, tmp_path / precision, "--precision", precision)
        assert result.exit_code == 0, result.stderr
        assert f"device     cpu, 1 thread (OMP_NUM_THREADS), precision {precision}" in (
            result.stderr
        )
        last = load_checkpoint(tmp_path / precision / "last.pt")
        assert last["train_config"]["optim"]["precision"] == precision
        assert (last["grad_scaler_state"] is not None) == (precision == "fp16")
        mse[precision] = last["best_val"]
    assert mse["bf16"] == pytest.approx(mse["fp32"], rel=0.05)
    assert mse["fp16"] == pytest.approx(mse["fp32"], rel=0.02)
    # a run resumes under another precision (precision is a resumable change)
    result = _train(data, tmp_path / "bf16", "--precision", "fp32", "--epochs", "3")
    assert result.exit_code == 0, result.stderr


def test_a_precision_torch_cannot_run_is_refused_before_training(data, tmp_path, monkeypatch):
    def unsupported(device_type, dtype=None, **kwargs):
        raise RuntimeError(
            "Current CPU Autocast only supports dtype of torch.bfloat16 right now.\nmore"
        )

    monkeypatch.setattr(torch, "autocast", unsupported)
    result = _train(data, tmp_path / "run", "--precision", "fp16")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: --precision fp16: torch {torch.__version__} cannot run it on cpu (Current CPU "
        "Autocast only supports dtype of torch.bfloat16 right now.); use --precision fp32 or bf16"
    )
    assert not (tmp_path / "run").exists()
    result = _train(data, tmp_path / "run", "--precision", "fp8")
    assert result.exit_code == 2
    assert "'optim.precision': expected one of ['fp32', 'bf16', 'fp16'] (got 'fp8')" in (
        result.stderr
    )
