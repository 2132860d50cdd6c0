"""dynforecast: forecast physical trajectories with E(3)-equivariant spatio-temporal graph networks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dynforecast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
