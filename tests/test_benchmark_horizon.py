"""benchmarks/horizon.py's quick path end to end: tiny data, 1 epoch, results only in the cache."""

from __future__ import annotations

import json

import pytest

from benchmarks import horizon


@pytest.mark.slow
def test_quick_run_writes_summary_and_plots_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    committed = horizon.RESULTS.read_bytes() if horizon.RESULTS.exists() else None
    results = horizon.main(["--quick"])
    root = tmp_path / "horizon-quick"
    saved = json.loads((root / "horizon.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(results))
    assert set(saved) == {"nbody", "adk", "ethanol", "chignolin", "motion"}
    for name, summary in saved.items():
        assert summary["quick"] is True and summary["epochs"] == 1
        assert set(summary["models"]) >= set(horizon.MODELS)
        assert set(summary["baselines"]) == set(horizon.BASELINES)
        steps = summary["rollout"]["steps"]
        for curve in summary["curves"].values():
            assert len(curve) == steps
        for model in summary["models"].values():
            assert 0 <= model["trust_steps"] <= steps
            assert model["trust_time"] == pytest.approx(
                model["trust_steps"] * summary["rollout"]["step_time"]
            )
        png = root / horizon.IMAGE_NAMES[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 200_000
    ensemble = saved["adk"]["ensemble"]
    assert ensemble["members"] == horizon.ENSEMBLE_SEEDS
    assert len(ensemble["inside_2sd"]) == saved["adk"]["rollout"]["steps"]
    assert saved["nbody"]["ensemble"] is None
    # the committed results are left alone
    after = horizon.RESULTS.read_bytes() if horizon.RESULTS.exists() else None
    assert after == committed
    # a second run reuses every cached step (no training): it is fast and gives the same numbers
    again = horizon.main(["--quick", "--datasets", "nbody"])
    assert again["nbody"]["models"] == saved["nbody"]["models"]
