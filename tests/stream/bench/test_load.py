"""The bench producer: exact wire bytes, the absolute frame grid, backlog and paced sending."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.codec import decode_frame_batch, encode_frames
from stream.bench.load import LoadSpec, MessageFactory, preload, run_paced
from stream.exceptions import StreamError
from stream.windowing import WindowConfig

from ..kafka_tools import read_topic


def small_factory(athletes: int = 3, **kw) -> MessageFactory:
    return MessageFactory(LoadSpec(athletes=athletes, pool_s=1.0, **kw))


@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_messages_are_what_encode_frames_writes(encoding):
    f = small_factory(encoding=encoding, session_id="sess-1", prefix="ath")
    k = 17_956_778_812
    raw = f.message(2, k)
    got = decode_frame_batch(raw, f.key(2), expected_hz=100.0)
    assert (got.athlete_id, got.sensor_id, got.session_id, got.seq) == ("ath-00003", "ath-00003-imu", "sess-1", k)
    assert got.t0 == pytest.approx(k / 10) and round(got.t0 * 100) == k * 10
    ref = encode_frames(athlete_id="ath-00003", session_id="sess-1", sensor_id="ath-00003-imu", seq=k, t0=f.t0(2, k),
                        hz=100.0, frames=got.frames, encoding=encoding)
    assert len(raw) == len(ref)
    assert np.array_equal(decode_frame_batch(ref, f.key(2), expected_hz=100.0).frames, got.frames)
    assert got.frames.shape == (10, 32) and np.isfinite(got.frames).all()


def test_athletes_and_batches_get_different_frames():
    f = small_factory(athletes=2)
    a0, a1, a0_next = (decode_frame_batch(f.message(i, k), f.key(i)).frames for i, k in [(0, 5), (1, 5), (0, 6)])
    assert not np.array_equal(a0, a1) and not np.array_equal(a0, a0_next)


@pytest.mark.parametrize("frames", [50, 10])
def test_staggered_messages_end_on_each_athletes_window_ends(frames):
    """phase_hop shifts athlete i's messages by its window phase (modulo the message length),
    so with the worker's staggered grid every window end is a message end."""
    cfg = WindowConfig()
    f = small_factory(athletes=40, frames_per_message=frames, phase_hop=cfg.hop, encoding="binary")
    for i in range(40):
        b = decode_frame_batch(f.message(i, 1000), f.key(i))
        first = round(b.t0 * 100)
        assert first - 1000 * frames == f.spec.shift(i) < frames
        ends = {first + j for j in range(0, 6 * frames + 1, frames)}  # the next message ends
        assert (first + frames) % frames == f.spec.shift(i) % frames
        assert any(e % cfg.hop == cfg.phase(b.athlete_id) for e in ends)
    assert len({f.spec.shift(i) for i in range(40)}) > 5
    assert {small_factory(athletes=40).spec.shift(i) for i in range(40)} == {0}


def test_spec_rejects_nonsense():
    with pytest.raises(StreamError):
        LoadSpec(athletes=0)
    with pytest.raises(StreamError):
        LoadSpec(athletes=1, encoding="xml")


def test_preload_writes_every_message_and_knows_each_partition_end(broker):
    import asyncio

    from stream.admin import ensure_topics
    from stream.settings import ServiceSettings

    asyncio.run(ensure_topics(ServiceSettings(kafka_url=broker.url), 3))
    f = small_factory(athletes=4)
    stats = preload(broker.bootstrap, f, batches=5, first_k=1000)
    assert (stats.messages, stats.frames, stats.acked, stats.errors) == (20, 200, 20, 0)
    assert sum(stats.high_water.values()) == 20
    records = read_topic(broker.bootstrap, "biomech.frames")
    seqs = sorted((k.decode(), decode_frame_batch(v, k).seq) for k, v in records)
    assert seqs == sorted((f"bench-{i:05d}", k) for i in range(1, 5) for k in range(1000, 1005))

    reports: list[dict] = []
    paced = run_paced(broker.bootstrap, small_factory(athletes=2, prefix="live"), duration_s=0.45,
                      on_report=reports.append, report_every_s=0.1)
    assert paced.messages >= 4 and paced.acked == paced.messages and paced.max_behind_s < 0.5
    assert reports[-1]["done"] and reports[-1]["sent"] == paced.messages
    live = [decode_frame_batch(v, k) for k, v in read_topic(broker.bootstrap, "biomech.frames") if k.startswith(b"live")]
    t_sent = {b.seq for b in live}
    assert len(live) == paced.messages and len(t_sent) == paced.messages // 2  # one batch per athlete per tick

    staggered = small_factory(athletes=6, prefix="stag", frames_per_message=50, phase_hop=50)
    paced = run_paced(broker.bootstrap, staggered, duration_s=1.6)
    assert paced.messages >= 6 and paced.acked == paced.messages and paced.max_behind_s < 0.5
    got = [decode_frame_batch(v, k) for k, v in read_topic(broker.bootstrap, "biomech.frames") if k.startswith(b"stag")]
    assert len(got) == paced.messages
    assert {round(b.t0 * 100) % 50 for b in got} == {staggered.spec.shift(i) for i in range(6)}
