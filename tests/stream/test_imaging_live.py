"""Imaging in the live system: a study ingested mid-stream is used by that athlete's next scores.

Two models: the demo's default (DICOM radiographs through the seeded random-init ResNet50,
whose embeddings do not show the rendered lesions: docs/imaging.md, "Lesion-specific risk"),
and one trained on stand-in embeddings that do show the lesion (``--data stand-in``), which
checks that the live join carries a finding into the risk in the right direction."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time

import numpy as np
import pytest
import redis

from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION, AthleteProfile, GaitStream, synthetic_image_features
from engine.features import ImageFeatures
from engine.imaging.synthetic import random_lesion, render_radiograph
from schemas import keys
from stream.ingest_service import embed, publish_events
from stream.settings import ImagingSettings, SimulatorSettings
from stream.simulator import SimAthlete, simulate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory):
    """The demo's default model (image branch trained on real ResNet50 embeddings): about 2 minutes."""
    from engine.train import ensure_default_model

    return ensure_default_model(tmp_path_factory.mktemp("demo-model") / "default", progress=False)


@pytest.fixture(scope="session")
def stand_in_model_dir(tmp_path_factory):
    """A small model trained on stand-in image embeddings that show the lesion (about 30 s)."""
    from dataclasses import replace

    from engine.model_config import ModelConfig
    from engine.train import TrainConfig, train

    cfg = replace(TrainConfig.demo(), data="stand-in", n_windows=3000, time_budget_s=30.0, total_budget_s=None,
                  batch_size=32, n_boot=50, model=ModelConfig(conv_dim=16, hidden=16, attn_dim=16))
    return train(tmp_path_factory.mktemp("stand-in-model") / "m", config=cfg, progress=False)


def _stream_three(broker, redis_server, start_worker, model_dir, prefix: str, ingest) -> dict[str, dict[float, dict]]:
    """Stream three athletes with the very same sensor frames ({prefix}-lesion, -none, -normal);
    once all are scored, ``ingest(athlete, lesion)`` gives -lesion and -normal a study. Returns
    each athlete's scores made after the ingest, by window end."""
    # one window grid for all three (no stagger), so their windows hold the same frames and end together
    worker = start_worker(broker.url, redis_server.url, extra_env={"INJURY_MONITOR_MODEL_DIR": str(model_dir),
                                                                   "INJURY_MONITOR_WINDOW_STAGGER": "false"})
    profile = AthleteProfile(valgus_bias=0.4, asymmetry=0.08, stiffness=0.4, fatigue_rate=0.5)
    names = {k: f"{prefix}-{k}" for k in ("lesion", "none", "normal")}
    athletes = [SimAthlete(a, GaitStream(profile, seed=11)) for a in names.values()]
    stop = asyncio.Event()
    sim = SimulatorSettings(kafka_url=broker.url, duration_s=45.0, phase_hop_s=0)
    thread = threading.Thread(target=lambda: asyncio.run(simulate(sim, athletes=athletes, stop=stop)), daemon=True)
    thread.start()

    r = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 30
    while not all(r.hexists(keys.RISK_LATEST, a) for a in names.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    before = json.loads(r.hget(keys.RISK_LATEST, names["lesion"]))
    assert before["modalities"] == ["sensor"] and not before["image_used"]
    ingest(names["lesion"], True)
    ingest(names["normal"], False)
    t_ingest = time.time()

    def after(athlete: str) -> dict[float, dict]:
        out = {}
        for _, fields in r.xrange(keys.risk_history(athlete)):
            s = json.loads(fields[b"v"])
            if s["scored_at"] > t_ingest:
                out[s["window_end"]] = s
        return out

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(after(names["lesion"])) & set(after(names["none"]))) < 12:
        time.sleep(0.5)
    stop.set()
    thread.join(20)
    assert worker.proc.poll() is None
    scores = {k: after(a) for k, a in names.items()}
    common = sorted(set(scores["lesion"]) & set(scores["none"]) & set(scores["normal"]))
    assert len(common) >= 10, "too few windows scored after the ingest"
    # the scores right after the study arrived use it and say so; the athlete without one does not
    for k in ("lesion", "normal"):
        assert all(scores[k][e]["image_used"] and scores[k][e]["modalities"] == ["sensor", "image"] for e in common[2:])
        assert all(scores[k][e]["encoder_version"] and scores[k][e]["regions"] for e in common[2:])
    assert all(not scores["none"][e]["image_used"] for e in common)
    return {k: {e: v[e] for e in common[2:]} for k, v in scores.items()}


def _risk_diff(scores: dict[str, dict[float, dict]], k: str) -> np.ndarray:
    return np.array([scores[k][e]["risk"] - scores["none"][e]["risk"] for e in scores["none"]])


def test_a_dicom_study_ingested_mid_stream_is_used_by_that_athletes_next_scores(
    broker, redis_server, start_worker, demo_model_dir, tmp_path
):
    settings = ImagingSettings(kafka_url=broker.url, redis_url=redis_server.url, model_dir=demo_model_dir)

    def ingest(athlete: str, lesion: bool) -> None:
        les = random_lesion(np.random.default_rng(3)) if lesion else None
        path = render_radiograph(tmp_path / f"{athlete}.dcm", lesion=les, seed=3 if lesion else 4)
        assert embed(settings, athlete, [path]).ok

    scores = _stream_three(broker, redis_server, start_worker, demo_model_dir, "dcm", ingest)
    # same frames, different images: the image moves the score away from sensor-only. Whether a
    # lesion moves it UP is not asserted here: this encoder does not see the rendered lesions
    # (docs/imaging.md); the stand-in test below checks the direction.
    lesion, normal = _risk_diff(scores, "lesion"), _risk_diff(scores, "normal")
    print(f"\nDICOM: risk lesion - none: mean {lesion.mean():+.3f}; normal - none: mean {normal.mean():+.3f}")
    assert np.abs(lesion).mean() > 0.005 and np.abs(normal).mean() > 0.005


def test_a_study_that_shows_a_lesion_raises_that_athletes_live_risk(
    broker, redis_server, start_worker, stand_in_model_dir
):
    """Stand-in embeddings stored and announced exactly as the ingest does it (RedisEmbeddingStore,
    a StudyEvent on imaging.studies): the lesion raises the athlete's risk, a normal study lowers it."""
    from engine.imaging.events import build_study_event
    from engine.imaging.meta import StudyMeta
    from engine.imaging.store import RedisEmbeddingStore

    settings = ImagingSettings(kafka_url=broker.url, redis_url=redis_server.url)
    store = RedisEmbeddingStore(redis.Redis.from_url(redis_server.url))

    def ingest(athlete: str, lesion: bool) -> None:
        pooled, regions = synthetic_image_features(np.array([lesion]), seed=500 + int(lesion))
        uid = hashlib.sha256(athlete.encode()).hexdigest()
        meta = StudyMeta(study_uid_sha256=uid, sop_uid_sha256=uid, body_part="KNEE", modality="CR", n_instances=1,
                         n_images=1, slice_policy="single", encoder_version=SYNTHETIC_ENCODER_VERSION,
                         ingested_at=time.time())
        feats = ImageFeatures(pooled=pooled[0], regions=regions[0], encoder_version=SYNTHETIC_ENCODER_VERSION)
        stored = store.put(athlete, feats, meta)
        asyncio.run(publish_events(settings, [build_study_event(athlete, meta, primary=stored.primary)]))

    scores = _stream_three(broker, redis_server, start_worker, stand_in_model_dir, "standin", ingest)
    lesion, normal = _risk_diff(scores, "lesion"), _risk_diff(scores, "normal")
    print(f"\nstand-in: risk lesion - none: mean {lesion.mean():+.3f}; normal - none: mean {normal.mean():+.3f}")
    assert lesion.mean() > 0.0, "a study showing a lesion should raise the athlete's risk"
    assert (lesion - normal).mean() > 0.01 and (lesion > normal).all(), "the lesion study should score above the normal one"
