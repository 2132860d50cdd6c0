"""The interface every forecasting model implements, and the registry of model names.

A model maps a `WindowBatch` to the positions of each window's target frame, [V, 3]. Its
hyperparameters are constructor keyword arguments; `create_model` records the fully resolved
arguments (defaults included) in ``model.config`` so that a checkpoint can rebuild the exact model
even if a default changes in a later version.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from dynforecast.models.batch import WindowBatch

_REGISTRY: dict[str, type[ForecastModel]] = {}

# Layer widths and counts: the constructors of every model use these names for sizes that must be
# at least 1 (torch would otherwise fail deep inside a layer with a message about tensor shapes).
POSITIVE_SIZES = frozenset(
    {"hidden_dim", "num_heads", "num_layers", "num_basis", "num_past_frames"}
)


class ForecastModel(nn.Module):
    """Base class: ``forward(batch) -> Tensor [V, 3]`` (predicted target positions).

    Class attributes tell the data pipeline what a model needs:
        name: registry name.
        learnable: False for the non-learned baselines (training refuses them).
        needs_velocities: True where the model cannot predict without the data's velocities.
    """

    name: ClassVar[str] = ""
    learnable: ClassVar[bool] = True
    needs_velocities: ClassVar[bool] = False
    config: dict[str, Any]

    def forward(self, batch: WindowBatch) -> Tensor:  # pragma: no cover - abstract
        """Every registered model overrides this; the base class only fixes the signature."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch)")

    def cpu_kernels(self) -> list[str]:
        """The fused CPU kernels (`dynforecast.ops`) this model's layers would call on the CPU in
        float32, when the kernels are built; [] for models that run on torch ops only."""
        return []


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
    hints = typing.get_type_hints(cls.__init__)
    hyperparameters = {
        key: _none_literal(value, hints.get(key, Any)) for key, value in hyperparameters.items()
    }
    for key, value in hyperparameters.items():
        check_hyperparameter(key, value, hints.get(key, Any))
    bound = signature.bind_partial(None, **hyperparameters)
    bound.apply_defaults()
    resolved = {k: v for k, v in bound.arguments.items() if k != "self"}
    model = cls(**resolved)
    model.config = {"name": name, **resolved}
    return model


def _none_literal(value: Any, annotation: Any) -> Any:
    """The string "none" (TOML and --set have no null) as None where the annotation allows None
    and is not itself a plain string (EGNN's ``species="none"`` stays a string)."""
    if not (isinstance(value, str) and value.lower() == "none"):
        return value
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in options:
        return None
    return value


def check_hyperparameter(key: str, value: Any, annotation: Any) -> None:
    """Refuse a value of the wrong type for its constructor annotation, or a size below 1.

    Values arrive from TOML, JSON and ``--set``, so a typo becomes a string or a negative number
    long before torch sees it; this turns it into one ValueError naming the hyperparameter.
    """
    if not _matches(value, annotation):
        raise ValueError(f"expected {key} of type {_type_name(annotation)} (got {value!r})")
    if key in POSITIVE_SIZES and value < 1:
        raise ValueError(f"expected {key} >= 1 (got {value})")


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    return True  # annotations this check does not model are left to the constructor


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    if typing.get_origin(annotation) is not None:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"list of {_type_name(item)}"
    return getattr(annotation, "__name__", str(annotation))


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
