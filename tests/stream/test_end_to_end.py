"""The whole stream on the embedded default: simulator -> Tansu -> Faust worker -> Kafka + Redis."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import jsonschema
import orjson
import pytest
import redis

from schemas import keys, topics
from schemas.generate import OUT
from stream.settings import SimulatorSettings
from stream.simulator import simulate

from .kafka_tools import produce, read_topic

pytestmark = pytest.mark.integration
ATHLETES = 12


def run_simulator(kafka_url: str, duration: float) -> threading.Thread:
    s = SimulatorSettings(kafka_url=kafka_url, athletes=ATHLETES, duration_s=duration, fatigue_tau_s=30)
    t = threading.Thread(target=lambda: asyncio.run(simulate(s)), daemon=True)
    t.start()
    return t


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def third_party_messages(athlete: str, seconds: float) -> list[tuple[bytes, bytes]]:
    """Built from schemas/json alone, the way an outside gateway would: stdlib json, schema-checked."""
    schema = json.loads((OUT / "frame_batch.schema.json").read_text())
    chans = json.loads((OUT / "channels.json").read_text())["channels"]
    hz, n = 100, 10
    start = round(time.time() * hz)
    out = []
    for k in range(int(seconds * hz / n)):
        frames = []
        for i in range(n):
            t = (k * n + i) / hz
            frames.append([round((c["min"] + c["max"]) / 2 + 0.1 * (c["max"] - c["min"]) * 0.2 *
                                 math.sin(2 * math.pi * 1.5 * t + c["index"]), 4) for c in chans])
        doc = {"schema_version": 1, "channels_version": 1, "athlete_id": athlete, "session_id": "ext-session",
               "sensor_id": "gw-7", "seq": k, "t0": (start + k * n) / hz, "hz": hz, "frames": frames}
        jsonschema.validate(doc, schema)
        out.append((athlete.encode(), json.dumps(doc).encode()))
    return out


def test_simulated_squad_is_scored_bad_input_goes_to_dlq_and_replays_are_idempotent(
    broker, redis_server, start_worker
):
    r = redis.Redis.from_url(redis_server.url)
    worker = start_worker(broker.url, redis_server.url)
    t_start = time.monotonic()
    sim = run_simulator(broker.url, duration=12.0)

    # every athlete scored, soon after its first full window (2 s + 1 s grace)
    latest = wait_for(lambda: (h := r.hgetall(keys.RISK_LATEST)) and len(h) >= ATHLETES and h, 30,
                      "all athletes in im:risk:latest")
    assert time.monotonic() - t_start < 30
    for raw in latest.values():
        score = json.loads(raw)
        assert 0.0 <= score["risk"] <= 1.0 and score["modalities"] == ["sensor"]

    m1 = worker.metrics()

    # bad messages, and an outside producer, while the stream runs
    good = third_party_messages("ext-01", 4.0)
    produce(broker.bootstrap, topics.FRAMES, [
        (b"ath-01", b"{not json"),
        (b"ath-02", orjson.dumps({"schema_version": 1, "athlete_id": "ath-02", "frames": "lots"})),
        (b"ath-03", orjson.dumps({"schema_version": 1, "channels_version": 1, "athlete_id": "ath-03",
                                  "session_id": "s", "sensor_id": "x", "seq": 1, "t0": time.time(), "hz": 100.0,
                                  "frames": [[0.0] * 7] * 10})),
        *good,
    ])
    ext = wait_for(lambda: r.hget(keys.RISK_LATEST, "ext-01"), 20, "the third-party athlete's score")
    assert 0.0 <= json.loads(ext)["risk"] <= 1.0
    before = r.xlen(keys.risk_history("ath-04"))
    wait_for(lambda: r.xlen(keys.risk_history("ath-04")) > before, 10, "scoring to continue after bad input")

    dlq = [json.loads(v) for _, v in read_topic(broker.bootstrap, topics.FRAMES_DLQ)]
    reasons = {d["reason"] for d in dlq}
    assert {"not_json", "missing_field", "channel_count"} <= reasons, reasons
    assert all(d["topic"] == topics.FRAMES and d["offset"] >= 0 for d in dlq)

    m2 = worker.metrics()  # the operator's key series move while the stream runs
    for series in ("injury_messages_total", "injury_frames_total", "injury_windows_scored_total",
                   "injury_inference_seconds_count", "injury_batch_size_count", "injury_end_to_score_seconds_count"):
        assert m2[series] > m1[series], series
    for reason in ("not_json", "missing_field", "channel_count"):
        assert m2[f'injury_rejected_total{{reason="{reason}"}}'] >= 1
    assert any(k.startswith("injury_consumer_lag{") for k in m2)
    assert m2['injury_embedding_cache_total{result="none"}'] > 0  # no study ingested: sensor-only

    sim.join(30)
    time.sleep(2.0)  # let the last windows land
    hist = {a: r.xlen(keys.risk_history(a)) for a in [f"ath-{i:02d}" for i in range(1, ATHLETES + 1)]}
    assert all(n >= 10 for n in hist.values()), hist
    risk_events = read_topic(broker.bootstrap, topics.RISK)
    ids = [json.loads(v)["score_id"] for _, v in risk_events]
    assert len(ids) == len(set(ids)), "a window was published twice"

    # re-deliver ath-01's frames to the running worker: rejected as duplicates, no new history
    frames = [(k, v) for k, v in read_topic(broker.bootstrap, topics.FRAMES) if k == b"ath-01"]
    produce(broker.bootstrap, topics.FRAMES, frames[:30])
    # and a second consumer group re-reads the whole topic from the start (a replay after a crash)
    start_worker(broker.url, redis_server.url, app_id="im-test-replay")
    time.sleep(6.0)
    assert {a: r.xlen(keys.risk_history(a)) for a in hist} == hist
    ids2 = [json.loads(v)["score_id"] for _, v in read_topic(broker.bootstrap, topics.RISK)]
    assert len(ids2) == len(set(ids2)), "a replay published a window twice"
    assert worker.proc.poll() is None, "the worker died"
