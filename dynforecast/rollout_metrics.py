"""Per-step errors of R rollouts against the true frames: MSE, RMSD, superposed RMSD, bonds, Rg.

Everything is computed one step at a time (memory O(V)), vectorised over all rollouts and nodes
by segment sums over ``node_rollout`` (rollouts of systems of different sizes mix freely).
Per-rollout values are returned as [K, R] arrays so that the caller can take means, medians and
combine batches of rollouts exactly.

Definitions (per step k and rollout r, N_r particles):
    sse[k, r]          sum over particles and xyz of (predicted - true)^2; MSE = sse / (3 N_r)
    rmsd[k, r]         sqrt(sse / N_r), in the data's length unit
    rmsd_superposed    the RMSD after the optimal rotation and translation of the prediction
                       onto the truth (Kabsch 1976, via the SVD of the 3x3 covariance, with the
                       reflection correction d = sign det); NaN unless requested (molecules)
    bond_error[k, r]   RMS over the rollout's bonds of (l_pred - l_ref) / l_ref, l_ref = the
                       bond's mean length over the given frames (bones for skeletons); NaN
                       without bonds
    rg_drift[k, r]     (Rg_pred - Rg_true) / Rg_true, signed: > 0 the forecast expands
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dynforecast.ops.scatter import scatter_sum


@dataclass
class StepErrors:
    """Per-rollout values [K, R] (float64 NumPy), see the module docstring."""

    sse: np.ndarray
    coords: np.ndarray
    rmsd: np.ndarray
    rmsd_superposed: np.ndarray
    bond_error: np.ndarray
    rg_drift: np.ndarray

    @classmethod
    def concatenate(cls, parts: list[StepErrors]) -> StepErrors:
        """Join batches of rollouts along R."""
        return cls(
            **{
                name: np.concatenate([getattr(p, name) for p in parts], axis=1)
                for name in cls.__dataclass_fields__
            }
        )

    @property
    def mse(self) -> np.ndarray:
        """[K, R] MSE of each rollout."""
        return self.sse / self.coords


class RolloutGeometry:
    """What the metrics need about the rollouts' nodes: segments, bonds and their given lengths.

    Shapes: node_rollout [V] (torch long), bonds [B, 2] in the V numbering, given [G, V, 3].
    """

    def __init__(
        self,
        node_rollout: torch.Tensor,
        n_rollouts: int,
        bonds: np.ndarray,
        given: torch.Tensor,
        *,
        superpose: bool,
    ) -> None:
        self.node_rollout, self.n_rollouts, self.superpose = node_rollout, n_rollouts, superpose
        device = node_rollout.device
        self.count = scatter_sum(
            torch.ones(node_rollout.shape[0], dtype=torch.float64, device=device),
            node_rollout,
            n_rollouts,
        )
        bonds = torch.as_tensor(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), device=device)
        self.bonds = bonds
        self.bond_rollout = node_rollout[bonds[:, 0]]
        self.bond_count = scatter_sum(
            torch.ones(bonds.shape[0], dtype=torch.float64, device=device),
            self.bond_rollout,
            n_rollouts,
        )
        self.reference = _bond_lengths(given.double(), bonds).mean(dim=0)  # [B]

    def step(self, predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-rollout values [R] of one step; predicted, truth [V, 3]."""
        p, q = predicted.double(), truth.double()
        segment, size = self.node_rollout, self.n_rollouts
        sse = scatter_sum((p - q).pow(2).sum(dim=1), segment, size)
        out = {"sse": sse, "coords": 3.0 * self.count, "rmsd": (sse / self.count).sqrt()}
        p_centred = p - (scatter_sum(p, segment, size) / self.count[:, None])[segment]
        q_centred = q - (scatter_sum(q, segment, size) / self.count[:, None])[segment]
        if self.superpose:
            out["rmsd_superposed"] = self._superposed(p_centred, q_centred)
        else:
            out["rmsd_superposed"] = torch.full_like(sse, float("nan"))
        if self.bonds.shape[0]:
            relative = _bond_lengths(p[None], self.bonds)[0] / self.reference - 1.0
            squared = scatter_sum(relative.pow(2), self.bond_rollout, size)
            bond_error = (squared / self.bond_count).sqrt()
            out["bond_error"] = torch.where(self.bond_count > 0, bond_error, float("nan"))
        else:
            out["bond_error"] = torch.full_like(sse, float("nan"))
        rg_p = (scatter_sum(p_centred.pow(2).sum(dim=1), segment, size) / self.count).sqrt()
        rg_q = (scatter_sum(q_centred.pow(2).sum(dim=1), segment, size) / self.count).sqrt()
        out["rg_drift"] = rg_p / rg_q - 1.0
        return out

    def _superposed(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Kabsch RMSD of centred p onto centred q per rollout: min_R sum |R p - q|^2 / N."""
        covariance = scatter_sum(
            (p[:, :, None] * q[:, None, :]).reshape(-1, 9), self.node_rollout, self.n_rollouts
        ).view(-1, 3, 3)
        u, s, vh = torch.linalg.svd(covariance)
        d = torch.sign(torch.linalg.det(vh.transpose(1, 2) @ u.transpose(1, 2)))
        trace = s[:, 0] + s[:, 1] + d * s[:, 2]
        norms = scatter_sum(
            p.pow(2).sum(dim=1) + q.pow(2).sum(dim=1), self.node_rollout, self.n_rollouts
        )
        return ((norms - 2.0 * trace).clamp_min(0.0) / self.count).sqrt()


def _bond_lengths(frames: torch.Tensor, bonds: torch.Tensor) -> torch.Tensor:
    """[F, B] lengths of ``bonds`` [B, 2] in ``frames`` [F, V, 3]."""
    return (frames[:, bonds[:, 0]] - frames[:, bonds[:, 1]]).norm(dim=-1)


def step_errors(
    geometry: RolloutGeometry, predicted: torch.Tensor, truth: torch.Tensor
) -> StepErrors:
    """[K, R] values of every step; predicted, truth [K, V, 3] (one loop over steps, not starts)."""
    rows = [geometry.step(predicted[k], truth[k]) for k in range(predicted.shape[0])]
    return StepErrors(
        **{
            name: torch.stack([row[name] for row in rows]).cpu().numpy()
            for name in StepErrors.__dataclass_fields__
        }
    )


def calibration_step(
    mean: torch.Tensor, spread: torch.Tensor, truth: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums for the spread's calibration at one step (combined over batches by the caller).

    Shapes: mean, truth [V, 3]; spread [V] (per-particle standard deviation across members);
    returns per-node (spread, error distance |mean - truth|) [V] and the per-node count of
    coordinates inside mean +- 2 spread [V] (0..3).
    """
    error = (mean.double() - truth.double()).norm(dim=1)
    inside = ((mean.double() - truth.double()).abs() <= 2.0 * spread.double()[:, None]).sum(dim=1)
    return spread.double().cpu().numpy(), error.cpu().numpy(), inside.double().cpu().numpy()


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation of two 1-D arrays; None when either is constant (zero spread)."""
    if x.size < 2:
        return None
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else None


def median_with_stops(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[K] median over rollouts, a stopped rollout counting as an infinite error."""
    return np.median(np.where(valid, values, np.inf), axis=1)


def mean_over_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[K] mean over the rollouts still running at each step (NaN values are skipped too)."""
    use = valid & np.isfinite(values)
    total = np.where(use, values, 0.0).sum(axis=1)
    count = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def trust_horizon(median: np.ndarray, threshold: float) -> int:
    """Steps from 1 during which the median error stays below ``threshold`` (0 if step 1 is not)."""
    above = ~(median < threshold)
    return int(np.argmax(above)) if above.any() else int(median.size)


def stops_beating(model: np.ndarray, baseline: np.ndarray) -> int | None:
    """First step (1-based) at which the model's median error is not below the baseline's."""
    worse = ~(model < baseline)
    return int(np.argmax(worse)) + 1 if worse.any() else None
