"""Non-learned baselines: every reported error comes with these two beside it."""

from __future__ import annotations

from torch import Tensor

from dynforecast.models.base import ForecastModel, register
from dynforecast.models.batch import WindowBatch


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
