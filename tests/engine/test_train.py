from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.artifact import META_FILE, ModelArtifact
from engine.data.image_bank import PARTS, synthetic_bank
from engine.exceptions import EngineError
from engine.train import (
    CONFIG_FILE,
    METRICS_FILE,
    TrainConfig,
    augment_sensors,
    channel_dropout,
    ensure_default_model,
    fit_temperature,
    prepare_data,
    split_by_athlete,
    time_shift,
    train,
)

QUICK = replace(TrainConfig.tiny(), n_windows=160, epochs=1, n_boot=20)


def test_tiny_training_writes_a_run_folder_with_a_valid_artifact(make_artifact) -> None:
    from engine.imaging.encoder import ResNet50Encoder

    d = make_artifact("tiny")
    a = ModelArtifact.load(d)
    t = a.meta.training
    assert t["epochs_run"] >= 1 and t["best_epoch"] >= 1
    assert t["stopped_by"] in ("epochs", "early_stopping", "time_budget")
    assert 0.0 <= t["test"]["auroc"] <= 1.0 and 0.5 < t["test"]["bayes_auroc"] <= 1.0
    for key in ("auprc", "brier", "ece", "sens_at_90spec", "sensor_only_auroc", "bayes_auroc_sensor_only"):
        assert key in t["test"]
    assert set(t["n_windows"]) == {"train", "val", "test"}
    assert set(t["splits"]) == {"train", "val", "test"} and all("bayes_auroc" in s for s in t["splits"].values())
    iv = t["test_intervals"]["auroc"]
    assert iv["lo"] <= iv["value"] <= iv["hi"]
    assert 0.0 < t["alert_threshold"] < 1.0
    assert a.meta.temperature == pytest.approx(t["temperature"], rel=1e-3)
    assert a.meta.hop == 50 and a.meta.window == 200
    # the image path is the real ResNet50: an ingested study's embedding is accepted by the scorer
    assert a.meta.encoder_version == ResNet50Encoder().version == t["image_bank"]["encoder_version"]
    assert t["image_bank"]["images"] == 8 and "probe_auroc" in t["image_bank"]
    model = a.build_model()
    assert float(model.img_std.min()) > 0 and not torch.all(model.img_mean == 0)  # bank statistics are in the weights
    cfg = json.loads((d / CONFIG_FILE).read_text())
    assert cfg["seed"] == 0 and cfg["bank_images"] == 8 and cfg["model"]["hidden"] == 16
    assert json.loads((d / METRICS_FILE).read_text())["test"]["auroc"] == t["test"]["auroc"]


def test_training_is_reproducible(tmp_path: Path) -> None:
    a = train(tmp_path / "a", config=QUICK, seed=3, progress=False)
    b = train(tmp_path / "b", config=QUICK, seed=3, progress=False)
    assert ModelArtifact.load(a).meta.model_version == ModelArtifact.load(b).meta.model_version


def test_time_budget_stops_training(tmp_path: Path) -> None:
    cfg = replace(QUICK, epochs=50)
    out = train(tmp_path / "m", config=cfg, time_budget_s=0.0, progress=False)
    t = ModelArtifact.load(out).meta.training
    assert t["stopped_by"] == "time_budget" and t["epochs_run"] == 1
    out = train(tmp_path / "n", config=replace(cfg, epochs=2, patience=5), time_budget_s=math.inf, progress=False)
    t = ModelArtifact.load(out).meta.training
    assert t["epochs_run"] == 2 and t["config"]["time_budget_s"] is None


def test_total_budget_leaves_the_epoch_loop_what_is_left(tmp_path: Path) -> None:
    cfg = replace(QUICK, epochs=1, total_budget_s=1.0, time_budget_s=None)
    t = ModelArtifact.load(train(tmp_path / "m", config=cfg, progress=False)).meta.training
    assert t["fit_budget_s"] == 5.0  # nothing was left: the floor
    t = ModelArtifact.load(train(tmp_path / "n", config=replace(cfg, total_budget_s=1000.0, time_budget_s=30.0),
                                 progress=False)).meta.training
    assert t["fit_budget_s"] == 30.0  # the loop's own budget when the total leaves more


def test_ensure_default_model_keeps_a_valid_artifact(make_artifact, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(make_artifact(), d)
    before = (d / META_FILE).read_bytes()
    assert ensure_default_model(d, progress=False, config=TrainConfig.tiny()) == d
    assert (d / META_FILE).read_bytes() == before


def test_ensure_default_model_trains_when_missing_or_invalid(tmp_path: Path) -> None:
    d = tmp_path / "new"
    assert ensure_default_model(d, progress=False, config=QUICK) == d
    version = ModelArtifact.load(d).meta.model_version
    meta = json.loads((d / META_FILE).read_text())
    meta["channels"] = meta["channels"][::-1]
    (d / META_FILE).write_text(json.dumps(meta))
    ensure_default_model(d, progress=False, config=replace(QUICK, lr=1e-3))
    assert ModelArtifact.load(d).meta.model_version != version


def test_presets() -> None:
    full, demo, tiny = TrainConfig.preset("full"), TrainConfig.preset("demo"), TrainConfig.preset("tiny")
    assert full == TrainConfig()
    assert demo.total_budget_s is not None and demo.total_budget_s < 120 and demo.bank_images < full.bank_images
    assert full.total_budget_s is not None and full.total_budget_s < 600  # the whole run under 10 minutes
    assert tiny.n_windows < demo.n_windows < full.n_windows
    with pytest.raises(EngineError, match="preset"):
        TrainConfig.preset("huge")


def test_split_by_athlete_is_disjoint_and_complete() -> None:
    athlete = np.repeat(np.arange(20), 5)
    tr, va, te = split_by_athlete(athlete, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert sorted(np.concatenate([tr, va, te])) == list(range(100))
    sets = [set(athlete[i]) for i in (tr, va, te)]
    assert all(s for s in sets)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    with pytest.raises(EngineError):
        split_by_athlete(np.array([0, 1, 1]), val_fraction=0.2, test_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def bank():
    return synthetic_bank(8)


def test_prepare_data_gives_each_split_its_own_athletes_and_images(bank) -> None:
    cfg = replace(TrainConfig.tiny(), n_windows=400)
    d = prepare_data(cfg, seed=1, bank=bank)
    w = d.windows
    athletes = {k: set(w.athlete[v].tolist()) for k, v in d.split.items()}
    assert not (athletes["train"] & athletes["val"]) and not (athletes["train"] & athletes["test"])
    for k, name in enumerate(PARTS):
        for a in athletes[name]:
            img = d.athlete_image[a]
            assert d.athlete_part[a] == k and bank.part[img] == k  # test athletes get unseen images
            assert bank.lesion[img] == w.profiles[a].image_lesion  # the image shows the athlete's lesion
    tr = d.split["train"]
    raw = d.raw(tr)
    np.testing.assert_allclose(raw.mean(axis=(0, 1)), d.norm_mean, rtol=1e-3, atol=1e-3)  # statistics of train only
    np.testing.assert_allclose(d.x[torch.from_numpy(tr)].numpy().mean(axis=(0, 1)), 0.0, atol=1e-3)
    x, img, reg, has = d.batch(tr[:5], np.array([1, 0, 1, 0, 1]))
    assert x.shape == (5, 200, 32) and img.shape == (5, 2048) and reg.shape == (5, 49, 64)
    assert has.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_time_shift_repeats_the_edge() -> None:
    x = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1).repeat(50, 1, 2)
    y = time_shift(x, 3, np.random.default_rng(0))
    assert y.shape == x.shape
    for row in y[:, :, 0]:
        d = np.diff(row.numpy())
        assert set(np.unique(d)) <= {0.0, 1.0}  # still a ramp, clamped at an edge
        assert row[0] in range(0, 4) or row[-1] in range(6, 10)
    assert not torch.equal(y, x)
    assert torch.equal(time_shift(x, 0, np.random.default_rng(0)), x)


def test_channel_dropout_and_augment() -> None:
    x = torch.ones(200, 20, 32)
    y = channel_dropout(x, 0.5, np.random.default_rng(0))
    zeroed = (y == 0).all(dim=1)  # (B, C) whole channels zeroed
    per = zeroed.sum(dim=1)
    assert 0.3 < (per > 0).float().mean() < 0.7 and per.max() <= 4
    assert torch.equal(x, torch.ones(200, 20, 32))  # the input is not modified
    cfg = replace(TrainConfig.tiny(), time_shift=0, channel_dropout=0.0, jitter=0.1)
    z = augment_sensors(x, cfg, np.random.default_rng(1))
    assert 0.08 < float((z - x).std()) < 0.12


def test_fit_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z[:0], y[:0]) == 1.0


def _mura(root: Path, patients: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    base = root / "MURA-v1.1"
    for p in range(patients):
        result = "positive" if p % 2 else "negative"
        d = base / "train" / "XR_KNEE" / f"patient{p:05d}" / f"study1_{result}"
        d.mkdir(parents=True)
        img = rng.integers(0, 120, (48, 40), dtype=np.uint8)
        if p % 2:
            img[10:20, 10:20] = 255  # an obvious "finding"
        Image.fromarray(img, "L").save(d / "image1.png")
    (base / "valid").mkdir(parents=True)
    return base


def test_train_on_a_real_format_image_data_set(tmp_path: Path) -> None:
    """`--data mura:PATH`: the image bank is the data set (label 1 = lesion), the rest as usual."""
    root = _mura(tmp_path, 20)
    spec = f"mura:{root}?split=train"
    out = train(tmp_path / "run", config=QUICK, data=spec, bank_cache_dir=tmp_path / "cache", progress=False)
    t = ModelArtifact.load(out).meta.training
    assert t["image_bank"]["data"] == spec and t["image_bank"]["images"] == 20
    assert t["image_bank"]["source"] == spec
    assert json.loads((out / CONFIG_FILE).read_text())["data"] == spec


def test_train_names_a_missing_data_set(tmp_path: Path) -> None:
    from engine.data.exceptions import DatasetError

    with pytest.raises(DatasetError, match="nowhere"):
        train(tmp_path / "run", config=QUICK, data=f"mura:{tmp_path / 'nowhere'}", progress=False)
