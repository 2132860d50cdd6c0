"""Vectorised graph operations shared by every model (scatter, segment softmax)."""

from dynforecast.ops.scatter import scatter_mean, scatter_softmax, scatter_sum

__all__ = ["scatter_mean", "scatter_softmax", "scatter_sum"]
