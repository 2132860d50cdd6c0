"""`--protocol` presets: the papers' protocols as one word (window, graph, split, optimiser).

A preset is a set of configuration keys applied below everything the user gives (preset <
``--config`` < ``--set`` < explicit options), and its name is recorded as ``protocol`` in the run's
config.json. The keys are the ones benchmarks/suite.py runs the papers' tables with:

* md17: ESTAG's MD17 protocol (estag.md section 6.1): T=10 frames 10 apart, target 100 frames
  after the first (horizon 10), bonds + 2 hops, the ``md17_reference`` split.
* adk: ESTAG's AdK protocol (section 6.2): T=10, D=5, a radius graph of 10 Angstrom (given
  with its unit, so it fits nm and Angstrom files), ``adk_reference`` split, batch 8.
* motion: ESTAG's motion protocol (section 6.3): T=10, D=5, skeleton bones + 2 hops,
  chronological 60/20/20 within each clip.
* nbody: EGNN's N-body recipe (nbody.md section 4.1): frame 30 -> 40 with velocities, all
  pairs, whole trajectories in stored order as 3000/2000/2000 (fractions 3/7, 2/7, 2/7),
  lr 5e-4, batch 100.

The optimiser keys are the papers' where they give them (ESTAG: Adam lr 5e-4; EGNN: lr 5e-4,
weight decay 1e-12, batch 100); epochs are left to the user.
"""

from __future__ import annotations

from typing import Any

from dynforecast.errors import UsageError

#: Flat dotted keys of each preset (the same names ``--set`` takes).
PRESETS: dict[str, dict[str, Any]] = {
    "md17": {
        "data.window.protocol": "md17",
        "data.graph.kind": "bonds",
        "data.graph.hops": 2,
        "data.split.mode": "md17_reference",
        "optim.lr": 5e-4,
    },
    "adk": {
        "data.window.protocol": "adk",
        "data.graph.kind": "radius",
        "data.graph.cutoff": "10 angstrom",
        "data.split.mode": "adk_reference",
        "optim.lr": 5e-4,
        "optim.batch_size": 8,
    },
    "motion": {
        "data.window.protocol": "motion",
        "data.graph.kind": "bonds",
        "data.graph.hops": 2,
        "data.split.mode": "chronological",
        "data.split.fractions": [0.6, 0.2, 0.2],
        "optim.lr": 5e-4,
    },
    "nbody": {
        "data.window.protocol": "nbody-standard",
        "data.graph.kind": "all_pairs",
        "data.split.mode": "systems",
        "data.split.fractions": [3 / 7, 2 / 7, 2 / 7],
        "optim.lr": 5e-4,
        "optim.weight_decay": 1e-12,
        "optim.batch_size": 100,
    },
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_values(name: str) -> dict[str, Any]:
    """The preset's keys as the nested dict `config.resolve_config` merges, with ``protocol``.

    Raises UsageError naming the presets for an unknown name.
    """
    if name not in PRESETS:
        raise UsageError(f"--protocol {name!r}: expected one of {', '.join(preset_names())}")
    nested: dict[str, Any] = {"protocol": name}
    for key, value in PRESETS[name].items():
        *sections, leaf = key.split(".")
        level = nested
        for section in sections:
            level = level.setdefault(section, {})
        level[leaf] = value
    return nested
