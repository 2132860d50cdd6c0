"""The training configuration: one frozen dataclass tree, read from TOML/JSON plus ``--set`` overrides.

Why one tree: a run directory must record *everything* that decides a run, and a user must be able
to change any of it from the command line with the same dotted name that appears in the saved
file (``--set optim.lr=1e-3`` <-> ``[optim] lr = 1e-3``). Precedence, lowest first: the defaults
below, the ``--config`` file, ``--set`` overrides, then the explicit options of ``dynforecast
train`` (``--epochs`` etc.). Unknown keys are refused with the list of valid ones.

Values given with ``--set`` are parsed as TOML literals (``1e-3``, ``32``, ``true``,
``[0.8, 0.1, 0.1]``, ``"radius"``); a value that is not a TOML literal is taken as a bare string
(``--set data.graph.kind=radius``), and the string ``none`` clears an optional value. The sections
``window``, ``graph`` and ``split`` may be named without their ``data.`` prefix.

"auto" values (graph kind, split mode, window length, node inputs) are resolved against the data
and the model in ONE place, `dynforecast.train.setup`, and the resolved tree is what a run saves.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynforecast.data.splits import SPLIT_MODES as DATA_SPLIT_MODES
from dynforecast.errors import InputError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_MODEL = "estag"
SCHEDULES = ("none", "cosine", "plateau")
DEVICES_HELP = "auto, cpu, cuda or cuda:<index>"
DTYPES = ("float32", "float64")
#: optim.precision: autocast of the forward pass (`dynforecast.train.precision`).
PRECISIONS = ("fp32", "bf16", "fp16")
GRAPH_KINDS = ("auto", "bonds", "radius", "all_pairs")
SPLIT_MODES = ("auto", *DATA_SPLIT_MODES)
_DATA_SECTIONS = ("window", "graph", "split", "systems")
#: The key of a run directory's config.json (and of checkpoints) holding the resolved configuration.
RUN_CONFIG_KEY = "train_config"


@dataclass(frozen=True)
class ModelSection:
    """Which model and its constructor hyperparameters (checked by the model registry)."""

    name: str = DEFAULT_MODEL
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowSection:
    """Window spec (see `dynforecast.data.windows.WindowSpec`).

    protocol: a named spec of `dynforecast.data.windows.PROTOCOLS` (e.g. "md17") that fills the
    fields left unset. Unset past_frames = the model's own (ESTAG: num_past_frames), else 1 with
    velocities in the data and 2 without; unset spacing = 1.
    """

    protocol: str | None = None
    past_frames: int | None = None
    spacing: int | None = None
    horizon: int | None = None
    anchor_frame: int | None = None


@dataclass(frozen=True)
class GraphSection:
    """Graph spec (see `dynforecast.data.graphs.GraphSpec`); kind "auto" = bonds (+ hops) if the
    data has them, else all pairs for tiny systems, else a radius graph with a cutoff derived
    from the data (`dynforecast.data.cutoff`). cutoff: a number in the data's length unit or a
    length with a unit ("6 angstrom", "0.6 nm"), converted by `dynforecast.io.units`."""

    kind: str = "auto"
    hops: int = 2
    cutoff: float | str | None = None
    max_neighbours: int | None = None


@dataclass(frozen=True)
class SplitSection:
    """How windows are split; mode "auto": the split a file records (`generate --recipe`), else
    "systems" for many independent systems (>= 10), else "chronological" (`dynforecast.train.auto`).
    fractions: unset = 80/10/10, or 60/20/20 where 80/10/10 leaves too few val/test windows.
    ignore_recorded: allow a split that puts a file's recorded val/test systems into training."""

    mode: str = "auto"
    fractions: tuple[float, float, float] | None = None
    ignore_recorded: bool = False


@dataclass(frozen=True)
class DataSection:
    window: WindowSection = field(default_factory=WindowSection)
    graph: GraphSection = field(default_factory=GraphSection)
    split: SplitSection = field(default_factory=SplitSection)
    systems: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OptimSection:
    """Adam with coupled weight decay, optional schedule, gradient clipping, early stopping.

    clip: maximum global gradient norm (None = off). early_stopping_patience: validations without
    a better validation MSE before stopping (None = never). batch_size: windows per optimiser
    step of each process (a DDP run of W processes steps on W x batch_size windows); unset = the
    training windows / 10, between 1 and 100 (`dynforecast.train.auto.auto_batch_size`).
    precision: fp32, bf16 or fp16 autocast of the training forward pass
    (`dynforecast.train.precision`; validation runs in fp32); amp: the deprecated spelling of
    precision bf16. compile: train through ``torch.compile`` (fused kernels: SAKE's forward +
    backward on 31-joint skeletons ran 1.46x faster on the CPU), paid for by tens of seconds of
    compilation in the first batches and once more for the smaller last batch; worth it for long
    runs only. val_every: validate every N epochs (and after the last one); best.pt and early
    stopping count validations, so the patience is in validations. ema_decay: keep an
    exponential moving average of the weights with this decay per optimiser step (None = off;
    `dynforecast.train.ema`); the average is what is validated and what best.pt holds.
    workers: DataLoader worker processes that build batches ahead of the step
    (`dynforecast.data.prefetch`; results are the same for any number); unset = 1 when the frames
    are read from the file on demand (out of core) and a CPU is free beyond the training threads
    (one that takes a core from them slows the steps down), else 0 (batches from memory take
    milliseconds; a worker would only add its start-up and the copy of each batch).
    divergence_factor, rollback_lr_factor, max_rollbacks: the divergence guard
    (`dynforecast.train.divergence`): a validation MSE above divergence_factor x min(best so far,
    "stay") goes back to best.pt with the learning rate times rollback_lr_factor, at most
    max_rollbacks times (then training stops); divergence_factor=none turns it off.
    """

    lr: float = 5e-4
    weight_decay: float = 1e-12
    clip: float | None = 10.0
    schedule: str = "none"
    epochs: int = 20
    batch_size: int | None = None
    early_stopping_patience: int | None = 10
    amp: bool = False
    compile: bool = False
    val_every: int = 1
    ema_decay: float | None = None
    precision: str = "fp32"
    divergence_factor: float | None = 100.0
    rollback_lr_factor: float = 0.1
    max_rollbacks: int = 3
    workers: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    #: The `--protocol` preset these keys started from (`dynforecast.train.presets`), if any.
    protocol: str | None = None

    def __post_init__(self) -> None:
        _check_choice("optim.schedule", self.optim.schedule, SCHEDULES)
        _check_choice("optim.precision", self.optim.precision, PRECISIONS)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("data.graph.kind", self.data.graph.kind, GRAPH_KINDS)
        _check_choice("data.split.mode", self.data.split.mode, SPLIT_MODES)
        positive = {
            "optim.lr": self.optim.lr,
            "optim.epochs": self.optim.epochs,
            "optim.batch_size": self.optim.batch_size,
            "data.window.spacing": self.data.window.spacing,
            "data.window.past_frames": self.data.window.past_frames,
            "optim.val_every": self.optim.val_every,
        }
        for key, value in positive.items():
            if value is not None and value <= 0:
                raise UsageError(
                    f"configuration key {key!r}: expected a positive value (got {value})"
                )
        if self.optim.workers is not None and self.optim.workers < 0:
            raise UsageError(
                "configuration key 'optim.workers': expected 0 or more worker processes "
                f"(got {self.optim.workers})"
            )
        _check_divergence_keys(self.optim)
        decay = self.optim.ema_decay
        if decay is not None and not 0.0 < decay < 1.0:
            raise UsageError(
                f"configuration key 'optim.ema_decay': expected a number between 0 and 1, "
                f"exclusive, or none (got {decay})"
            )
        fractions = self.data.split.fractions
        if fractions is not None and (
            len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6
        ):
            raise UsageError(
                "configuration key 'data.split.fractions': expected three non-negative numbers "
                f"summing to 1 (got {list(fractions)})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able); model hyperparameters sit beside ``model.name``."""
        return _section_to_dict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(
            f"configuration key {key!r}: expected one of {list(choices)} (got {value!r})"
        )


def _check_divergence_keys(optim: OptimSection) -> None:
    """The divergence guard's keys (`dynforecast.train.divergence`) in their ranges."""
    factor, lr_factor = optim.divergence_factor, optim.rollback_lr_factor
    if factor is not None and not factor > 1.0:
        raise UsageError(
            f"configuration key 'optim.divergence_factor': expected a number above 1, or none "
            f"to turn the divergence guard off (got {factor})"
        )
    if not 0.0 < lr_factor <= 1.0:
        raise UsageError(
            f"configuration key 'optim.rollback_lr_factor': expected a number in (0, 1] "
            f"(got {lr_factor})"
        )
    if optim.max_rollbacks < 0:
        raise UsageError(
            f"configuration key 'optim.max_rollbacks': expected 0 or more (got {optim.max_rollbacks})"
        )


def _section_to_dict(section: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(section, ModelSection) and f.name == "hyperparameters":
            out.update(dict(value))
        elif dataclasses.is_dataclass(value):
            out[f.name] = _section_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build a `TrainConfig` from nested dicts; unknown keys and wrong types raise UsageError."""
    return _build(TrainConfig, values, prefix="")


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise UsageError(
            f"configuration key {prefix.rstrip('.')!r}: expected a table (got {values!r})"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    if cls is ModelSection:
        kwargs["name"] = _coerce(f"{prefix}name", values.get("name", DEFAULT_MODEL), str)
        kwargs["hyperparameters"] = {k: v for k, v in values.items() if k != "name"}
        return cls(**kwargs)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UsageError(
            f"unknown configuration key {prefix + unknown[0]!r}; valid keys: "
            + ", ".join(valid_keys(cls, prefix))
        )
    for name in names:
        if name not in values:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, values[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, values[name], hint)
    return cls(**kwargs)


def valid_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key the configuration accepts (``model.<hyperparameter>`` stands for the rest)."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if cls is ModelSection and f.name == "hyperparameters":
            keys.append(f"{prefix}<hyperparameter>")
        elif dataclasses.is_dataclass(hint):
            keys.extend(valid_keys(hint, f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's type hint; ints are accepted for floats."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        if isinstance(value, str) and str in inner:
            return value
        return _coerce(key, value, inner[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"configuration key {key!r}: expected a list (got {value!r})")
        item = args[0]
        if len(args) > 1 and args[1] is not Ellipsis and len(value) != len(args):
            raise UsageError(
                f"configuration key {key!r}: expected a list of {len(args)} (got {list(value)})"
            )
        return tuple(_coerce(key, v, item) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"configuration key {key!r}: expected true or false (got {value!r})")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UsageError(f"configuration key {key!r}: expected an integer (got {value!r})")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UsageError(f"configuration key {key!r}: expected a number (got {value!r})")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"configuration key {key!r}: expected a string (got {value!r})")
    raise TypeError(f"expected a supported field type (got {hint!r})")  # pragma: no cover


def read_config_file(path: Path) -> dict[str, Any]:
    """Nested dict from a ``.toml`` or ``.json`` file; InputError names the file and the problem."""
    if not path.is_file():
        raise InputError(f"{path}: configuration file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with path.open("rb") as handle:
                return tomllib.load(handle)
        if suffix == ".json":
            loaded = json.loads(path.read_text())
            if not isinstance(loaded, dict):
                raise InputError(f"{path}: expected a JSON object at the top level")
            # A run directory's config.json: its resolved configuration is the part to reuse.
            if isinstance(loaded.get(RUN_CONFIG_KEY), dict) and "data_checksum" in loaded:
                return loaded[RUN_CONFIG_KEY]
            return loaded
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid {suffix[1:].upper()} file: {exc}") from None
    raise InputError(f"{path}: unknown configuration format {suffix!r}; use .toml or .json")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` -> (["optim", "lr"], 0.001); value as a TOML literal or a bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UsageError(
            f"--set {text!r}: expected key=value with a dotted key, e.g. optim.lr=1e-3"
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = key.split(".")
    if parts[0] in _DATA_SECTIONS:
        parts = ["data", *parts]
    return parts, value


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts (``update`` wins); neither input is modified."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(values: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set key=value`` strings to a nested dict."""
    out = dict(values)
    for text in overrides:
        parts, value = parse_override(text)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        out = merge(out, nested)
    return out


def resolve_config(
    config_file: Path | None = None,
    overrides: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    protocol: str | None = None,
) -> TrainConfig:
    """Defaults < ``protocol`` preset < config file < ``--set`` overrides < explicit options.

    ``options`` maps dotted keys to values (None = not given); ``protocol`` names a preset of
    `dynforecast.train.presets` (UsageError for an unknown one).
    """
    values: dict[str, Any] = {}
    if protocol is not None:
        from dynforecast.train.presets import preset_values

        values = merge(values, preset_values(protocol))
    if config_file is not None:
        values = merge(values, read_config_file(config_file))
    values = apply_overrides(values, overrides)
    for key, value in (options or {}).items():
        if value is None:
            continue
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        values = merge(values, nested)
    return config_from_dict(values)
