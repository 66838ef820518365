"""The bad-input catalogue, sent by an independent client to ONE running worker.

Every case is produced to ``biomech.frames`` with confluent-kafka; the module fixture then
reads ``biomech.frames.dlq`` and ``/metrics`` once, and each test checks one case: the
Rejected record that points at the case's own source offset carries the expected reason
and the original bytes, and the worker keeps scoring. docs/reliability.md lists the same
catalogue (case, reason, outcome, test).
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import psutil
import pytest
import redis
from confluent_kafka import Producer

from schemas import keys, topics
from schemas.channels import N_CHANNELS
from schemas.codec import BINARY_MAGIC, MAX_MESSAGE_BYTES, encode_frames
from stream.windowing import WindowConfig

from .harness import PasswordRedis, frames_of, history_ends, read_topic, same_phase_id, valid_batch, wait_for

pytestmark = pytest.mark.integration
HZ = 100.0
SHUFFLED = same_phase_id("cat-shuffled", "cat-inorder")  # the same window ends as cat-inorder


def doc(athlete: str, **over) -> dict:
    d = {"schema_version": 1, "channels_version": 1, "athlete_id": athlete, "session_id": "cat", "sensor_id": "imu",
         "seq": 0, "t0": round(time.time() * HZ) / HZ - 5, "hz": HZ,
         "frames": frames_of(10).astype(float).round(3).tolist()}
    d.update(over)
    return d


def jraw(athlete: str, **over) -> bytes:
    return orjson.dumps(doc(athlete, **over))


def binary(athlete: str, n_header: int | bool, payload_frames: int) -> bytes:
    head = orjson.dumps({"schema_version": 1, "channels_version": 1, "athlete_id": athlete, "session_id": "cat",
                         "sensor_id": "imu", "seq": 0, "t0": round(time.time() * HZ) / HZ - 5, "hz": HZ,
                         "absent": [], "n": n_header})
    body = frames_of(payload_frames).astype("<f4").tobytes()
    return BINARY_MAGIC + len(head).to_bytes(4, "little") + head + body


@dataclass(frozen=True)
class Case:
    name: str
    key: bytes | None
    value: bytes | None
    reason: str


def single_message_cases() -> list[Case]:
    """One message each, every one must land on the DLQ with ``reason``."""
    nan_doc = json.dumps(doc("cat-nan"))  # the first value becomes a NaN literal (JavaScript, not JSON)
    first = nan_doc.index("[[") + 2
    nan_doc = (nan_doc[:first] + "NaN" + nan_doc[nan_doc.index(",", first):]).encode()
    inf_doc = json.dumps(doc("cat-inf"))
    first = inf_doc.index("[[") + 2
    inf_doc = (inf_doc[:first] + "1e999" + inf_doc[inf_doc.index(",", first):]).encode()
    big = frames_of(10)
    big[3, 24] = 1e4  # knee_flexion_l: degrees
    return [
        Case("garbage bytes", b"cat-garbage", b"\x00\x01\x02 not json at all", "not_json"),
        Case("truncated JSON", b"cat-trunc", jraw("cat-trunc")[:-40], "not_json"),
        Case("JSON in UTF-16 (not the UTF-8 JSON requires)", b"cat-utf16",
             json.dumps(doc("cat-utf16")).encode("utf-16"), "not_json"),
        Case("JSON nested 100000 deep", b"cat-deep", b"[" * 100_000 + b"]" * 100_000, "not_json"),
        Case("empty value", b"cat-empty", b"", "not_json"),
        Case("tombstone (null value)", b"cat-null", None, "not_json"),
        Case("binary prefix, message shorter than its header", b"cat-bin-short", BINARY_MAGIC + b"\x05", "bad_encoding"),
        Case("binary prefix, header is not a JSON object", b"cat-bin-head",
             BINARY_MAGIC + (3).to_bytes(4, "little") + b"{x]" + b"\0" * 128, "bad_encoding"),
        Case("binary header length past the end", b"cat-bin-len",
             BINARY_MAGIC + (10**6).to_bytes(4, "little") + b"{}", "bad_encoding"),
        Case("top level is a JSON array", b"cat-array", b"[1, 2, 3]", "schema_invalid"),
        Case("wrong type: seq is text", b"cat-type-seq", jraw("cat-type-seq", seq="seven"), "schema_invalid"),
        Case("wrong type: numbers sent as strings", b"cat-type-str",
             jraw("cat-type-str", frames=[["0.5"] * N_CHANNELS] * 10), "schema_invalid"),
        Case("wrong type: t0 as the string 'NaN'", b"cat-type-t0", jraw("cat-type-t0", t0="NaN"), "schema_invalid"),
        Case("wrong type: frames is an object", b"cat-type-obj", jraw("cat-type-obj", frames={"a": 1}),
             "schema_invalid"),
        Case("unknown extra field", b"cat-extra", jraw("cat-extra", firmware="2.1"), "schema_invalid"),
        Case("invalid athlete id (path characters)", b"../etc", jraw("../etc"), "schema_invalid"),
        Case("binary header 'n' is true, not an integer", b"cat-bin-bool", binary("cat-bin-bool", True, 1),
             "schema_invalid"),
        Case("missing field (session_id)", b"cat-missing",
             orjson.dumps({k: v for k, v in doc("cat-missing").items() if k != "session_id"}), "missing_field"),
        Case("unknown schema_version", b"cat-ver", jraw("cat-ver", schema_version=2), "unsupported_version"),
        Case("unknown channels_version", b"cat-chver", jraw("cat-chver", channels_version=7), "unsupported_version"),
        Case("absent names an unknown channel", b"cat-unkch", jraw("cat-unkch", absent=["elbow_flexion"]),
             "unknown_channel"),
        Case("frames with 31 of 32 channels", b"cat-31ch",
             jraw("cat-31ch", frames=[[0.1] * (N_CHANNELS - 1)] * 10), "channel_count"),
        Case("ragged frames (one row short)", b"cat-ragged",
             jraw("cat-ragged", frames=[[0.1] * N_CHANNELS] * 9 + [[0.1] * (N_CHANNELS - 1)]), "channel_count"),
        Case("binary payload holds fewer frames than header 'n'", b"cat-bin-shape", binary("cat-bin-shape", 10, 9),
             "shape_mismatch"),
        Case("null in a channel not declared absent", b"cat-null-ch",
             jraw("cat-null-ch", frames=[[None] + [0.1] * (N_CHANNELS - 1)] * 10), "missing_values"),
        Case("NaN literal", b"cat-nan", nan_doc, "non_finite"),
        Case("Infinity (1e999)", b"cat-inf", inf_doc, "non_finite"),
        Case("binary frame holding +Inf", b"cat-bin-inf",
             encode_frames(athlete_id="cat-bin-inf", session_id="cat", sensor_id="imu", seq=0,
                           t0=round(time.time()) - 5.0, hz=HZ, frames=np.full((10, N_CHANNELS), np.inf),
                           encoding="binary"), "non_finite"),
        Case("knee flexion of 10000 degrees", b"cat-range", jraw("cat-range", frames=big.astype(float).tolist()),
             "out_of_range"),
        Case("hz 120 on a 100 Hz stream", b"cat-hz", jraw("cat-hz", hz=120.0), "unsupported_rate"),
        Case("empty batch (no frames)", b"cat-nofr", jraw("cat-nofr", frames=[]), "empty_batch"),
        Case("1001 frames in one batch", b"cat-1001",
             jraw("cat-1001", frames=[[0.1] * N_CHANNELS] * 1001), "too_large"),
        Case("message over 1 MB", b"cat-huge",
             b'{"pad": "' + b"x" * (MAX_MESSAGE_BYTES + 100) + b'"}', "too_large"),
        Case("t0 one hour in the future", b"cat-future", jraw("cat-future", t0=time.time() + 3600), "clock_skew"),
        Case("t0 thirty days in the past", b"cat-past", jraw("cat-past", t0=time.time() - 30 * 86400), "clock_skew"),
        Case("key differs from athlete_id", b"someone-else", jraw("cat-key"), "key_mismatch"),
        Case("no key", None, jraw("cat-nokey"), "key_mismatch"),
    ]


def sequence_cases(base: float) -> tuple[list[tuple[bytes, bytes]], list[Case]]:
    """Athletes with a valid stream first, then one bad batch each (same partition: order holds)."""
    pre: list[tuple[bytes, bytes]] = []
    for a in ("cat-dup", "cat-reuse", "cat-late"):
        pre += [(a.encode(), valid_batch(a, i, base + i / 10)) for i in range(30)]
    pre += [(b"cat-seq", valid_batch("cat-seq", 10 * i, base + i / 10)) for i in range(30)]  # seq 0, 10, 20 ...
    cases = [
        Case("duplicate (sensor_id, seq): a producer retry", b"cat-dup", valid_batch("cat-dup", 25, base + 2.5),
             "duplicate"),
        Case("seq lower than the sensor's newest, t0 newer (non-monotonic seq)", b"cat-seq",
             valid_batch("cat-seq", 15, base + 3.1), "seq_regression"),
        Case("seq reused for other frames", b"cat-reuse", valid_batch("cat-reuse", 12, base + 3.0), "seq_regression"),
        Case("late beyond the 1 s grace (second sensor, 2.5 s old)", b"cat-late",
             valid_batch("cat-late", 0, base + 0.5, sensor="cat-late-imu2"), "late"),
    ]
    return pre, cases


def order_cases(base: float) -> list[tuple[bytes, bytes]]:
    """The same 4 s of frames for two athletes: in order, and shuffled within the grace period."""
    out = [(b"cat-inorder", valid_batch("cat-inorder", i, base + i / 10, sensor="imu")) for i in range(40)]
    shuffled = list(range(40))
    rng = np.random.default_rng(3)
    for start in range(0, 40, 8):  # reverse / permute blocks of 8 batches (0.8 s < 1 s grace)
        block = shuffled[start:start + 8]
        rng.shuffle(block)
        shuffled[start:start + 8] = block
    out += [(SHUFFLED.encode(), valid_batch(SHUFFLED, i, base + i / 10, sensor="imu")) for i in shuffled]
    out.append((b"cat-bin", valid_batch("cat-bin", 0, base, encoding="binary")))
    out += [(b"cat-bin", valid_batch("cat-bin", i, base + i / 10, encoding="binary")) for i in range(1, 35)]
    return out


@dataclass
class Sent:
    case: Case
    partition: int
    offset: int


REDIS_SECRET = "redis-Pa55-" + "x7Qm"  # the worker gets it from settings (SecretStr), never in a URL
SASL_SECRET = "sasl-Pa55-" + "k2Vb"


@pytest.fixture(scope="module")
def secured_redis():
    with PasswordRedis(REDIS_SECRET) as srv:
        yield srv


@pytest.fixture(scope="module")
def mod_r(secured_redis) -> redis.Redis:
    return redis.Redis.from_url(secured_redis.url, password=REDIS_SECRET)


@pytest.fixture(scope="module")
def catalogue(mod_broker, secured_redis, mod_r, mod_workers):
    worker = mod_workers(mod_broker.url, secured_redis.url, app_id="im-catalogue",
                         extra_env={"INJURY_MONITOR_REDIS_PASSWORD": REDIS_SECRET,
                                    "INJURY_MONITOR_KAFKA_SASL_PASSWORD": SASL_SECRET,
                                    "INJURY_MONITOR_LOG_LEVEL": "DEBUG"})
    base = math.floor(time.time()) - 8.0
    pre, seq_cases = sequence_cases(base)
    cases = single_message_cases() + seq_cases
    p = Producer({"bootstrap.servers": mod_broker.bootstrap, "linger.ms": 5, "message.max.bytes": 4_000_000})
    for k, v in order_cases(base) + pre:
        p.produce(topics.FRAMES, key=k, value=v)
    assert p.flush(20) == 0
    sent: list[Sent] = []

    def report(case):
        def cb(err, msg):
            assert err is None, (case.name, err)
            sent.append(Sent(case, msg.partition(), msg.offset()))
        return cb

    m0 = worker.metrics()
    for c in cases:
        p.produce(topics.FRAMES, key=c.key, value=c.value, on_delivery=report(c))
    assert p.flush(20) == 0 and len(sent) == len(cases)
    want = len(cases)
    dlq = wait_for(lambda: (d := [json.loads(v) for _, v in read_topic(mod_broker.bootstrap, topics.FRAMES_DLQ,
                                                                         idle_s=0.5)]) and len(d) >= want and d,
                   60, f"{want} records on the DLQ")
    by_source = {(d["partition"], d["offset"]): d for d in dlq}
    return {"worker": worker, "sent": {s.case.name: s for s in sent}, "dlq": by_source, "m0": m0,
            "m1": worker.metrics(), "cases": cases, "base": base}


ALL_CASES = single_message_cases() + sequence_cases(0.0)[1]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_lands_on_the_dlq_with_its_reason(catalogue, case):
    sent = catalogue["sent"][case.name]
    rec = catalogue["dlq"].get((sent.partition, sent.offset))
    assert rec is not None, f"no DLQ record for {case.name} ({sent.partition}@{sent.offset})"
    assert rec["reason"] == case.reason, (rec["reason"], rec["detail"])
    assert rec["topic"] == topics.FRAMES and rec["detail"]
    original = next(c for c in catalogue["cases"] if c.name == case.name).value or b""
    kept = base64.b64decode(rec["original_b64"])
    assert rec["original_size"] == len(original)
    assert kept == original[:len(kept)] and (len(kept) == len(original)) != rec["original_truncated"]


def test_every_rejection_is_counted_by_reason(catalogue):
    expected: dict[str, int] = {}
    for c in catalogue["cases"]:
        expected[c.reason] = expected.get(c.reason, 0) + 1
    m0, m1 = catalogue["m0"], catalogue["m1"]
    got = {r: m1.get(f'injury_rejected_total{{reason="{r}"}}', 0) - m0.get(f'injury_rejected_total{{reason="{r}"}}', 0)
           for r in expected}
    assert got == expected
    assert len(catalogue["dlq"]) == len(catalogue["cases"]), "a valid message was rejected, or a case twice"


def test_out_of_order_within_grace_is_accepted_and_reordered(catalogue, mod_r):
    """The shuffled athlete gets exactly the in-order athlete's windows, with the same risks."""
    # 4 s of frames from a whole second: window ends 2.0 .. 4.0 s on the plain grid (5), or the
    # 4 ends of the athlete's phase within them
    n = 5 if WindowConfig().phase("cat-inorder") == 0 else 4

    def both():
        a = history_ends(mod_r, "cat-inorder")
        b = history_ends(mod_r, SHUFFLED)
        return len(a) >= n and len(b) >= n and (a, b)

    ino, shuf = wait_for(both, 30, "both athletes' windows (flushed after 10 s of silence)")
    assert ino == shuf
    ra = [json.loads(f[b"v"])["risk"] for _, f in mod_r.xrange(keys.risk_history("cat-inorder"))]
    rb = [json.loads(f[b"v"])["risk"] for _, f in mod_r.xrange(keys.risk_history(SHUFFLED))]
    assert np.allclose(ra, rb, atol=1e-5)


def assert_scored_now(broker, r, athlete: str, what: str) -> None:
    """Send 4 s of valid frames for ``athlete`` ending now and wait for its first score."""
    base = math.floor(time.time()) - 4.0
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(40):
        p.produce(topics.FRAMES, key=athlete.encode(), value=valid_batch(athlete, i, base + i / 10))
    assert p.flush(10) == 0
    wait_for(lambda: len(history_ends(r, athlete)) >= 1, 30, what)


def test_worker_keeps_scoring_after_the_catalogue(catalogue, mod_broker, mod_r):
    worker = catalogue["worker"]
    assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
    assert wait_for(lambda: len(history_ends(mod_r, "cat-bin")) >= 3, 30, "the binary athlete's scores")
    assert_scored_now(mod_broker, mod_r, "cat-after", "a score after the bad inputs")
    assert worker.proc.poll() is None


def test_flooding_one_athlete_keeps_memory_bounded(catalogue, mod_broker, mod_r):
    """3000 batches of 100 frames (50 min of data) for one athlete, as fast as the client can send:
    memory stays bounded (one ring buffer per athlete, bounded queue, capped history) and other
    athletes are still scored afterwards."""
    worker = catalogue["worker"]
    proc = psutil.Process(worker.proc.pid)
    rss0 = proc.memory_info().rss
    n_batches, n = 3000, 100
    start = math.floor(time.time()) - n_batches * n / HZ - 5
    frames = frames_of(n)
    p = Producer({"bootstrap.servers": mod_broker.bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 100000})
    for i in range(n_batches):
        p.produce(topics.FRAMES, key=b"cat-flood", value=encode_frames(
            athlete_id="cat-flood", session_id="flood", sensor_id="flood-imu", seq=i, t0=start + i * n / HZ, hz=HZ,
            frames=frames, encoding="binary"))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    peak = rss0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        peak = max(peak, proc.memory_info().rss)
        hist = mod_r.xlen(keys.risk_history("cat-flood"))
        if hist >= 3500:
            break
        time.sleep(0.5)
    growth_mb = (peak - rss0) / 2**20
    print(f"\nflood: worker RSS {rss0 / 2**20:.0f} MB -> peak {peak / 2**20:.0f} MB (+{growth_mb:.0f} MB), "
          f"{mod_r.xlen(keys.risk_history('cat-flood'))} history entries")
    assert hist >= 3500, f"the flood was not scored ({hist} entries)"
    assert mod_r.xlen(keys.risk_history("cat-flood")) <= 3600 + 200  # history_cap (approximate trim)
    assert growth_mb < 150, f"worker memory grew by {growth_mb:.0f} MB during the flood"
    assert_scored_now(mod_broker, mod_r, "cat-neighbour", "another athlete scored after the flood")
    assert worker.proc.poll() is None


def test_credentials_never_reach_the_log_the_dlq_or_the_metrics(catalogue, mod_broker, mod_r):
    """The worker authenticated to Redis (it scored) with a password from settings, logged at DEBUG
    through the whole catalogue, and wrote neither secret anywhere a reader could see it."""
    worker = catalogue["worker"]
    assert mod_r.hlen(keys.RISK_LATEST) > 0  # it did authenticate
    places = {"worker log": worker.log.read_bytes(), "metrics": worker.get("/metrics")[1],
              "dlq": b"".join(v for _, v in read_topic(mod_broker.bootstrap, topics.FRAMES_DLQ, idle_s=0.5))}
    for secret in (REDIS_SECRET, SASL_SECRET):
        for where, blob in places.items():
            assert secret.encode() not in blob, f"{secret[:6]}... appears in the {where}"


def test_the_catalogue_table_in_the_docs_lists_every_case():
    """docs/reliability.md shows this catalogue; a case added here must be added there."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    missing = [f"{c.name} ({c.reason})" for c in ALL_CASES if f"| {c.name} | `{c.reason}` |" not in doc]
    assert not missing, "missing from the table in docs/reliability.md: " + "; ".join(missing)
