"""Non-learned baselines: stay, constant velocity and the fitted linear extrapolation.

Every reported error comes with these beside it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from dynforecast.models.base import ForecastModel, register
from dynforecast.models.batch import WindowBatch


class BatchSource(Protocol):
    """What `fit_linear` needs: `dynforecast.data.windows.WindowDataset.batch`."""

    def batch(self, window_ids: Any) -> WindowBatch: ...


@register("stay")
class Stay(ForecastModel):
    """Predict the last past frame: the error of a model that learned nothing about motion."""

    learnable = False

    def __init__(self) -> None:
        super().__init__()

    def forward(self, batch: WindowBatch) -> Tensor:
        return batch.positions[:, -1]


@register("constant_velocity")
class ConstantVelocity(ForecastModel):
    """Linear extrapolation to the target time.

    With two or more past frames the velocity is the difference of the last two frames, scaled by
    target_dt / past_dt; with a single past frame it is the data's velocity at that frame times
    target_dt (the N-body frame-to-frame task). Without either it cannot predict and says so.
    """

    learnable = False

    def __init__(self) -> None:
        super().__init__()

    def forward(self, batch: WindowBatch) -> Tensor:
        last = batch.positions[:, -1]
        if batch.num_frames >= 2:
            step = last - batch.positions[:, -2]
            return last + step * (batch.target_dt / batch.past_dt)
        if batch.velocities is not None:
            return last + batch.velocities[:, -1] * batch.target_dt
        raise ValueError(
            "expected at least 2 past frames or velocities for constant_velocity (got 1 frame, no velocities)"
        )


@register("file_velocity")
class FileVelocity(ForecastModel):
    """The last past frame moved on by the velocities the file stores for it.

    prediction = x_{T-1} + v_{T-1} * target_dt, v read from the data file (an MD code's own
    velocities, e.g. ase's momenta in an extended XYZ), not differenced from positions: it shows
    how much of a forecast the file's instantaneous velocities already give, the baseline
    issue 12 asks for on MD17-style data. Data without velocities cannot use it (ValueError).
    """

    learnable = False
    needs_velocities = True

    def __init__(self) -> None:
        super().__init__()

    def forward(self, batch: WindowBatch) -> Tensor:
        if batch.velocities is None:
            raise ValueError("expected velocities in the data for file_velocity (got none)")
        return batch.positions[:, -1] + batch.velocities[:, -1] * batch.target_dt


@register("linear")
class LinearExtrapolation(ForecastModel):
    """The last past frame plus a fitted linear combination of the past frames' differences.

    prediction = x_{T-1} + sum_j w_j (x_j - x_{j-1}) + w_v v_{T-1} target_dt, j = 1..T-1, one
    weight per past difference (and one for the data's velocity where it has one). Differences
    of positions translate to nothing and rotate with the frame, and the weights are scalars, so
    the model is E(3)- and permutation-equivariant by construction. `fit_linear` finds the
    weights in closed form (least squares) on training windows; unfitted (``weights=None``) it is
    constant velocity. On ESTAG's MD17 protocol such a fit lies between constant velocity and a
    trained ESTAG: a learned model that does not beat it has learned little.
    """

    learnable = False

    def __init__(self, weights: list[float] | None = None, velocity_weight: float = 0.0) -> None:
        super().__init__()
        self.weights = None if weights is None else [float(w) for w in weights]
        self.velocity_weight = float(velocity_weight)

    def forward(self, batch: WindowBatch) -> Tensor:
        if self.weights is None:
            return ConstantVelocity()(batch)
        frames = batch.num_frames
        if len(self.weights) != frames - 1:
            raise ValueError(
                f"expected {len(self.weights) + 1} past frames for the fitted linear model "
                f"(got {frames})"
            )
        features = linear_features(batch, use_velocity=self.velocity_weight != 0.0)
        coefficients = list(self.weights) + ([self.velocity_weight] if self.velocity_weight else [])
        last = batch.positions[:, -1]
        if not coefficients:
            return last
        weights = torch.tensor(coefficients, dtype=last.dtype, device=last.device)
        return last + torch.einsum("vkc,k->vc", features, weights)


def linear_features(batch: WindowBatch, *, use_velocity: bool) -> Tensor:
    """[V, K, 3]: the T-1 past differences x_j - x_{j-1}, then v_{T-1} target_dt if asked."""
    differences = batch.positions[:, 1:] - batch.positions[:, :-1]
    if use_velocity:
        if batch.velocities is None:
            raise ValueError("expected velocities for the linear model's velocity term (got none)")
        velocity = batch.velocities[:, -1:] * batch.target_dt
        differences = torch.cat([differences, velocity], dim=1)
    return differences


@torch.no_grad()
def fit_linear(
    dataset: BatchSource,
    window_ids: np.ndarray,
    *,
    batch_size: int = 1000,
    use_velocity: bool = False,
) -> LinearExtrapolation:
    """Least-squares weights of `LinearExtrapolation` on ``window_ids`` of ``dataset``.

    Normal equations G w = b with G_kl = sum <f_k, f_l>, b_k = sum <f_k, target - x_{T-1}> over
    all nodes and coordinates (float64, accumulated per batch, so memory is one batch); solved
    with lstsq so that collinear features (e.g. a still system) give the minimum-norm weights.
    With no features (one past frame, no velocities) the model is `stay`.
    """
    from dynforecast.models.base import create_model

    ids = np.asarray(window_ids, dtype=np.int64)
    if ids.size == 0:
        raise ValueError("expected training windows to fit the linear baseline (got none)")
    gram = rhs = None
    for start in range(0, ids.size, batch_size):
        batch = dataset.batch(ids[start : start + batch_size]).to(
            torch.device("cpu"), torch.float64
        )
        features = linear_features(batch, use_velocity=use_velocity)  # [V, K, 3]
        assert batch.target is not None
        residual = batch.target - batch.positions[:, -1]
        if batch.node_mask is not None:
            keep = batch.node_mask.to(features.dtype)
            features, residual = features * keep[:, None, None], residual * keep[:, None]
        g = torch.einsum("vkc,vlc->kl", features, features)
        r = torch.einsum("vkc,vc->k", features, residual)
        gram, rhs = (g, r) if gram is None else (gram + g, rhs + r)
    assert gram is not None and rhs is not None
    past = int(dataset.batch(ids[:1]).num_frames) - 1
    if gram.shape[0] == 0:
        return create_model("linear", weights=[0.0] * past)  # type: ignore[return-value]
    solution = torch.linalg.lstsq(gram, rhs[:, None], driver="gelsd").solution[:, 0].tolist()
    weights, velocity = solution[:past], (solution[past] if use_velocity else 0.0)
    return create_model("linear", weights=weights, velocity_weight=velocity)  # type: ignore[return-value]
