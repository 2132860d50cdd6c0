"""``dynforecast train DATA --print-config``: the configuration a run would use, as TOML.

The configuration is resolved against the data exactly as `dynforecast.train.run.train` does
(`resolve_for_data`), so every "auto" or unset value shows what it becomes, with an end-of-line
comment saying so; ``device`` stays as given (a file that says "auto" moves between machines) with
its resolution in the comment. The text is accepted unchanged by ``--config`` and resolves to the
same configuration again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynforecast.models.base import create_model
from dynforecast.train.config import TrainConfig
from dynforecast.train.config_toml import config_to_toml

_UNSET = object()


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def resolved_toml(data: Path | None, config: TrainConfig) -> str:
    """TOML text of ``config`` resolved for ``data`` (None = the built-in N-body set)."""
    from dynforecast.train.run import _flatten, resolve_for_data
    from dynforecast.train.setup import resolve_device

    resolved = resolve_for_data(data, config)
    given = _flatten(config.to_dict())
    constructor = create_model(resolved.model.name).config
    notes: dict[str, str] = {}
    for key, value in _flatten(resolved.to_dict()).items():
        before: Any = given.get(key, _UNSET)
        if before == value:
            continue
        if before == "auto":
            notes[key] = "auto"
        elif key.startswith("model.") and before is _UNSET:
            default = constructor.get(key.removeprefix("model."))
            if _plain(default) != _plain(value):
                notes[key] = f"auto for this data (model default {_plain(default)!r})"
        elif before is None or before is _UNSET:
            notes[key] = "auto (was unset)"
    if config.device == "auto":
        notes["device"] = f"auto = {resolve_device('auto').type} on this machine"
    return config_to_toml(resolved, notes)
