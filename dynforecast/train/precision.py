"""Mixed precision for training: ``optim.precision`` = fp32 | bf16 | fp16 (``--precision``).

bf16 and fp16 run the forward pass under `torch.autocast` on the model's device (CUDA or the
CPU): matrix products and the layers autocast lists run in the low precision, reductions and
the loss in float32; parameters, optimiser state and checkpoints stay float32. fp16's narrow
exponent range needs a gradient scaler (`torch.amp.GradScaler`: the loss is multiplied before
backward and steps with inf/NaN gradients are skipped while the scale shrinks); bf16 has
float32's range and needs none. The old ``optim.amp = true`` (``--amp``) means bf16.

Accuracy (tests/test_precision.py, on the symmetry suite's batches, untrained ESTAG, SAKE and
EGNN): the predicted displacement from the last past frame stays within `TOLERANCE` of its
float32 value, relative to the largest float32 displacement, and so do all E(3) and permutation
errors, beyond float32's own 1e-5 of the output scale (measured on the CPU, torch 2.13: bf16 up to 1.4e-2, fp16 up to 1.8e-3). Two epochs of
a small EGNN on N-body data reach a validation MSE within 5% (bf16) and 2% (fp16) of fp32.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from dynforecast.errors import UsageError
from dynforecast.train.config import PRECISIONS

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Largest deviation from float32 accepted for a precision, relative to the displacement scale.
TOLERANCE = {"fp32": 0.0, "bf16": 3e-2, "fp16": 5e-3}


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: ``name`` in PRECISIONS on ``device``."""

    name: str
    device_type: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST_DTYPES.get(self.name)

    def autocast(self) -> Any:
        """The context the forward pass runs in (a no-op for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for fp16, None otherwise."""
        if self.name != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type)


def choose_precision(precision: str, amp: bool, device: torch.device, dtype: str) -> Precision:
    """The precision a run uses: ``precision``, or bf16 where only the old ``amp`` flag is set.

    Raises UsageError for an unknown name, ``amp`` with fp16, a low precision with float64
    parameters (autocast leaves float64 alone: it would silently run in float64), or a
    precision this torch cannot run on ``device`` (checked with one small product).
    """
    if precision not in PRECISIONS:
        raise UsageError(
            f"configuration key 'optim.precision': expected one of {list(PRECISIONS)} "
            f"(got {precision!r})"
        )
    if amp and precision == "fp16":
        raise UsageError(
            "configuration keys 'optim.amp' and 'optim.precision': amp means bf16, not fp16; "
            "drop optim.amp (it is deprecated) and keep --precision fp16"
        )
    name = "bf16" if amp and precision == "fp32" else precision
    if name != "fp32" and dtype != "float32":
        raise UsageError(
            f"--precision {name}: needs dtype float32 parameters (got dtype {dtype}); "
            "use --precision fp32 with float64"
        )
    chosen = Precision(name, device.type)
    if name != "fp32":
        _check_supported(chosen, device)
    return chosen


def _check_supported(precision: Precision, device: torch.device) -> None:
    where = f"on {device.type}" + (
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    )
    problem = None
    if device.type == "cuda" and precision.name == "bf16" and not torch.cuda.is_bf16_supported():
        problem = "this GPU has no bfloat16 support"
    else:
        try:
            with precision.autocast():
                probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
            if probe.dtype != precision.autocast_dtype:
                problem = f"autocast produced {probe.dtype}"
            precision.scaler()
        except (RuntimeError, ValueError, TypeError) as exc:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem is not None:
        raise UsageError(
            f"--precision {precision.name}: torch {torch.__version__} cannot run it {where} "
            f"({problem}); use --precision fp32" + (" or bf16" if precision.name == "fp16" else "")
        )


def backward(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """loss.backward(); under fp16 the scaled loss's, then the gradients are unscaled in place
    so that clipping sees their true norm."""
    if scaler is None:
        loss.backward()
        return
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """optimizer.step(), through the scaler under fp16 (which skips steps with inf gradients)."""
    if scaler is None:
        optimizer.step()
        return
    scaler.step(optimizer)
    scaler.update()
