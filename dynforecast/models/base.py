"""The interface every forecasting model implements, and the registry of model names.

A model maps a `WindowBatch` to the positions of each window's target frame, [V, 3]. Its
hyperparameters are constructor keyword arguments; `create_model` records the fully resolved
arguments (defaults included) in ``model.config`` so that a checkpoint can rebuild the exact model
even if a default changes in a later version.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from dynforecast.models.batch import WindowBatch

_REGISTRY: dict[str, type[ForecastModel]] = {}


class ForecastModel(nn.Module):
    """Base class: ``forward(batch) -> Tensor [V, 3]`` (predicted target positions).

    Class attributes tell the data pipeline what a model needs:
        name: registry name.
        learnable: False for the non-learned baselines (training refuses them).
    """

    name: ClassVar[str] = ""
    learnable: ClassVar[bool] = True
    config: dict[str, Any]

    def forward(self, batch: WindowBatch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def register(name: str) -> Callable[[type[ForecastModel]], type[ForecastModel]]:
    """Class decorator adding a model to the registry under ``name``."""

    def decorate(cls: type[ForecastModel]) -> type[ForecastModel]:
        if name in _REGISTRY:
            raise ValueError(f"expected a new model name (got {name!r}, already registered)")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def model_names() -> list[str]:
    """Registered model names, sorted."""
    _import_builtin_models()
    return sorted(_REGISTRY)


def create_model(name: str, **hyperparameters: Any) -> ForecastModel:
    """Build a registered model; unknown names or unknown hyperparameters raise ValueError."""
    _import_builtin_models()
    if name not in _REGISTRY:
        raise ValueError(f"expected a model name in {sorted(_REGISTRY)} (got {name!r})")
    cls = _REGISTRY[name]
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters if p != "self"]
    unknown = sorted(set(hyperparameters) - set(accepted))
    if unknown:
        raise ValueError(
            f"expected hyperparameters of {name!r} among {accepted} (got unknown {unknown})"
        )
    bound = signature.bind_partial(None, **hyperparameters)
    bound.apply_defaults()
    resolved = {k: v for k, v in bound.arguments.items() if k != "self"}
    model = cls(**resolved)
    model.config = {"name": name, **resolved}
    return model


def model_from_config(config: dict[str, Any]) -> ForecastModel:
    """Rebuild a model from the ``config`` dict a checkpoint stored."""
    options = dict(config)
    name = options.pop("name", None)
    if name is None:
        raise ValueError("expected a model config with a 'name' key (got none)")
    return create_model(name, **options)


def _import_builtin_models() -> None:
    """Import the modules that register the built-in models (kept lazy: no import side effects)."""
    import dynforecast.models.baselines
    import dynforecast.models.egnn
    import dynforecast.models.estag
    import dynforecast.models.sake  # noqa: F401
