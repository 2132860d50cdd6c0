"""A `TrainConfig` as the TOML file `--config` reads back: every key, a comment per section.

TOML has no null, so unset optional values are written as the string ``"none"``, which the
configuration reader (and `dynforecast.models.base.create_model` for model hyperparameters) takes
as None: the printed file round-trips to the same configuration. The writer is own code because
the values are a closed set (strings, numbers, booleans, flat lists) and the standard library only
reads TOML; tomli-w would be one more dependency for thirty lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from dynforecast.train.config import TrainConfig

#: One comment per section: what it decides and where its "auto" values come from.
SECTION_COMMENTS = {
    "": "dynforecast train configuration: pass it back with --config FILE "
    '("none" = unset; keys: dynforecast models, README "Configuration")',
    "model": "the model and its hyperparameters (dynforecast models lists them with meanings)",
    "data": "which systems of the data file to use (none = all)",
    "data.window": "frames per window: past_frames spaced spacing apart, target horizon frames "
    "after the last (a protocol fills unset fields)",
    "data.graph": "edges: bonds (+ hops), radius (cutoff, max_neighbours) or all_pairs",
    "data.split": "train/val/test split of the windows: mode and fractions",
    "optim": "Adam, schedule, clipping, epochs, early stopping (in validations), validation "
    "cadence, weight averaging (ema_decay)",
}


def config_to_toml(config: TrainConfig, notes: Mapping[str, str] | None = None) -> str:
    """TOML text of ``config``; ``notes`` maps dotted keys to an end-of-line comment (e.g. what
    "auto" resolved to). Raises ValueError for a value TOML cannot hold (nested tables in lists)."""
    notes = notes or {}
    lines: list[str] = []
    _table(config.to_dict(), "", lines, notes)
    return "\n".join(lines).strip() + "\n"


def _table(values: Mapping[str, Any], prefix: str, lines: list[str], notes: Mapping[str, str]):
    name = prefix.rstrip(".")
    if lines or name:
        lines.append("")
    if name in SECTION_COMMENTS:
        lines.append(f"# {SECTION_COMMENTS[name]}")
    if name:
        lines.append(f"[{name}]")
    tables = {k: v for k, v in values.items() if isinstance(v, Mapping)}
    for key, value in values.items():
        if key in tables:
            continue
        note = notes.get(prefix + key)
        lines.append(f"{_key(key)} = {_value(value)}" + (f"  # {note}" if note else ""))
    for key, value in tables.items():
        _table(value, f"{prefix}{key}.", lines, notes)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ValueError(f"expected a TOML scalar or list (got {value!r})")
