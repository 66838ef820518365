from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.artifact import META_FILE, ModelArtifact
from engine.train import (
    TrainConfig,
    classification_metrics,
    ensure_default_model,
    fit_temperature,
    split_by_athlete,
    train,
)


def test_tiny_training_writes_a_valid_artifact(make_artifact) -> None:
    a = ModelArtifact.load(make_artifact("tiny"))
    t = a.meta.training
    assert t["epochs_run"] >= 1 and t["best_epoch"] >= 1
    assert t["stopped_by"] in ("epochs", "early_stopping", "time_budget")
    assert 0.0 <= t["test"]["auroc"] <= 1.0 and 0.5 < t["test"]["bayes_auroc"] <= 1.0
    for key in ("auprc", "brier", "ece", "sens_at_90spec", "sensor_only_auroc", "bayes_auroc_sensor_only"):
        assert key in t["test"]
    assert set(t["n_windows"]) == {"train", "val", "test"}
    assert a.meta.temperature == pytest.approx(t["temperature"], rel=1e-3)
    assert a.meta.hop == 50 and a.meta.window == 200
    mean = a.norm_mean
    assert mean.shape == (32,) and np.isfinite(mean).all()
    a.build_model()


def test_training_is_reproducible(make_artifact, tmp_path: Path) -> None:
    cfg = replace(TrainConfig.tiny(), n_windows=160, epochs=1)
    a = train(tmp_path / "a", config=cfg, seed=3, progress=False)
    b = train(tmp_path / "b", config=cfg, seed=3, progress=False)
    assert ModelArtifact.load(a).meta.model_version == ModelArtifact.load(b).meta.model_version


def test_time_budget_stops_training(tmp_path: Path) -> None:
    cfg = replace(TrainConfig.tiny(), n_windows=160, epochs=50)
    out = train(tmp_path / "m", config=cfg, time_budget_s=0.0, progress=False)
    t = ModelArtifact.load(out).meta.training
    assert t["stopped_by"] == "time_budget" and t["epochs_run"] == 1
    out = train(tmp_path / "n", config=replace(cfg, epochs=2, patience=5), time_budget_s=math.inf, progress=False)
    t = ModelArtifact.load(out).meta.training
    assert t["epochs_run"] == 2 and t["config"]["time_budget_s"] is None


def test_ensure_default_model_keeps_a_valid_artifact(make_artifact, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(make_artifact(), d)
    before = (d / META_FILE).read_bytes()
    assert ensure_default_model(d, progress=False, config=TrainConfig.tiny()) == d
    assert (d / META_FILE).read_bytes() == before


def test_ensure_default_model_trains_when_missing_or_invalid(make_artifact, tmp_path: Path) -> None:
    cfg = replace(TrainConfig.tiny(), n_windows=160, epochs=1)
    d = tmp_path / "new"
    assert ensure_default_model(d, progress=False, config=cfg) == d
    version = ModelArtifact.load(d).meta.model_version
    meta = json.loads((d / META_FILE).read_text())
    meta["channels"] = meta["channels"][::-1]
    (d / META_FILE).write_text(json.dumps(meta))
    ensure_default_model(d, progress=False, config=replace(cfg, lr=1e-3))
    assert ModelArtifact.load(d).meta.model_version != version


def test_split_by_athlete_is_disjoint_and_complete() -> None:
    athlete = np.repeat(np.arange(20), 5)
    tr, va, te = split_by_athlete(athlete, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert sorted(np.concatenate([tr, va, te])) == list(range(100))
    sets = [set(athlete[i]) for i in (tr, va, te)]
    assert all(s for s in sets)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_fit_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z[:0], y[:0]) == 1.0


def test_classification_metrics() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    perfect = classification_metrics(np.array([0.1, 0.1, 0.2, 0.2, 0.9, 0.9]), y)
    assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0 and perfect["sens_at_90spec"] == 1.0
    assert perfect["brier"] == pytest.approx(np.mean([0.01, 0.01, 0.04, 0.04, 0.01, 0.01]), abs=1e-4)
    flat = classification_metrics(np.full(6, 0.5), y)
    assert flat["auroc"] == 0.5 and flat["ece"] == pytest.approx(abs(0.5 - 2 / 6), abs=1e-4)
