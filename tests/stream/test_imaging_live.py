"""Imaging in the live system: a study ingested mid-stream is used by that athlete's next scores."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
import redis

from engine.data.synthetic import AthleteProfile, GaitStream
from engine.imaging.synthetic import random_lesion, render_radiograph
from schemas import keys
from stream.ingest_service import embed
from stream.settings import ImagingSettings, SimulatorSettings
from stream.simulator import SimAthlete, simulate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory):
    """The demo's default model (image branch trained on real ResNet50 embeddings): about 2 minutes."""
    from engine.train import ensure_default_model

    return ensure_default_model(tmp_path_factory.mktemp("demo-model") / "default", progress=False)


def test_a_study_ingested_mid_stream_is_used_by_that_athletes_next_scores(
    broker, redis_server, start_worker, demo_model_dir, tmp_path
):
    worker = start_worker(broker.url, redis_server.url, extra_env={"INJURY_MONITOR_MODEL_DIR": str(demo_model_dir)})
    profile = AthleteProfile(valgus_bias=0.4, asymmetry=0.08, stiffness=0.4, fatigue_rate=0.5)
    # three athletes with the very same sensor stream: only their images differ
    athletes = [SimAthlete(a, GaitStream(profile, seed=11)) for a in ("ath-lesion", "ath-none", "ath-normal")]
    stop = asyncio.Event()
    sim = SimulatorSettings(kafka_url=broker.url, duration_s=45.0)
    thread = threading.Thread(target=lambda: asyncio.run(simulate(sim, athletes=athletes, stop=stop)), daemon=True)
    thread.start()

    r = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 30
    while r.hlen(keys.RISK_LATEST) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    before = json.loads(r.hget(keys.RISK_LATEST, "ath-lesion"))
    assert before["modalities"] == ["sensor"] and not before["image_used"]

    settings = ImagingSettings(kafka_url=broker.url, redis_url=redis_server.url, model_dir=demo_model_dir)
    lesion = render_radiograph(tmp_path / "lesion.dcm", lesion=random_lesion(np.random.default_rng(3)), seed=3)
    normal = render_radiograph(tmp_path / "normal.dcm", seed=4)
    assert embed(settings, "ath-lesion", [lesion]).ok and embed(settings, "ath-normal", [normal]).ok
    t_ingest = time.time()

    def after(athlete: str) -> dict[float, dict]:
        out = {}
        for _, fields in r.xrange(keys.risk_history(athlete)):
            s = json.loads(fields[b"v"])
            if s["scored_at"] > t_ingest:
                out[s["window_end"]] = s
        return out

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(after("ath-lesion")) & set(after("ath-none"))) < 12:
        time.sleep(0.5)
    stop.set()
    thread.join(20)
    lesion_s, none_s, normal_s = after("ath-lesion"), after("ath-none"), after("ath-normal")
    common = sorted(set(lesion_s) & set(none_s) & set(normal_s))
    assert len(common) >= 10, "too few windows scored after the ingest"
    # the scores right after the study arrived use it and say so
    assert all(lesion_s[e]["image_used"] and lesion_s[e]["modalities"] == ["sensor", "image"] for e in common[2:])
    assert all(lesion_s[e]["encoder_version"] and lesion_s[e]["regions"] for e in common[2:])
    assert all(not none_s[e]["image_used"] for e in common)
    # same frames, different images: the image moves the score away from sensor-only. Whether a lesion
    # moves it UP is not reliable yet with the seeded random-init ResNet50 (issue 5 stays open; numbers
    # in docs/imaging.md), so the direction is printed, not asserted.
    diff = np.array([lesion_s[e]["risk"] - none_s[e]["risk"] for e in common[2:]])
    diff_normal = np.array([normal_s[e]["risk"] - none_s[e]["risk"] for e in common[2:]])
    print(f"\nrisk lesion - none: mean {diff.mean():+.3f}; normal - none: mean {diff_normal.mean():+.3f}")
    assert np.abs(diff).mean() > 0.005 and np.abs(diff_normal).mean() > 0.005
    assert worker.proc.poll() is None
