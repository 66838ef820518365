"""ScoringPipeline: windows in, scores/alerts out, replays dropped, inference off the loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from schemas.channels import N_CHANNELS
from stream.alerting import AlertPolicy
from stream.metrics import WorkerMetrics
from stream.pipeline import Levels, ScoringPipeline
from stream.sinks.memory import MemorySink
from stream.windowing import Window


@dataclass
class Result:
    prob: float
    time_attn: np.ndarray
    attn_step_s: float
    region_attn: np.ndarray | None
    image_used: bool


class ConstantScorer:
    """Pure stand-in for the model: risk = the window's first value; records its thread."""

    model_version = "const-1"

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def score(self, x, images):
        self.threads.add(threading.current_thread().name)
        attn = np.full(100, 0.01)
        return [Result(float(w[0, 0]), attn, 0.02, None, False) for w in x]


def window(athlete: str, end_index: int, risk: float) -> Window:
    data = np.full((200, N_CHANNELS), risk, dtype=np.float32)
    return Window(athlete, "s1", end_index, 100.0, data, 0.0, (), ready_at=0.0)


def make(sink, published):
    async def publish(scores, alerts):
        published.append((scores, alerts))

    return ScoringPipeline(scorer=ConstantScorer(), sink=sink, publish=publish, policy=AlertPolicy(0.6, 2, 0.45, 2),
                           levels=Levels(), executor=ThreadPoolExecutor(1, thread_name_prefix="inference"),
                           metrics=WorkerMetrics())


def test_scores_alerts_and_idempotent_replay():
    sink, published = MemorySink(), []
    pipe = make(sink, published)
    wins = [window("a", 1000 + 50 * i, r) for i, r in enumerate([0.2, 0.7, 0.8, 0.3, 0.1])]
    scored = asyncio.run(pipe.run_batch(wins))
    assert [s.score.level for s in scored] == ["low", "high", "high", "low", "low"]
    assert [a.state for a in sink.alerts["a"]] == ["raised", "cleared"]
    assert pipe.scorer.threads == {"inference_0"}  # never the event loop's thread
    assert [s.traces is not None for s in scored] == [False] * 4 + [True]  # only the newest is drawn
    assert scored[-1].traces["channels"]["grf_vertical_l"][0] == 0.1
    # a new process (empty cache) replaying the same windows publishes nothing new
    pipe2 = make(sink, published)
    again = asyncio.run(pipe2.run_batch(wins))
    assert again == [] and len(published) == 1 and len(sink.history["a"]) == 5


def test_player_load_counts_only_the_newest_hop_and_skips_absent_imus():
    from schemas.channels import CHANNEL_INDEX
    from stream.pipeline import G, player_load

    w = window("a", 1000, 0.1)
    data = w.data.copy()
    data[:, CHANNEL_INDEX["shank_l_acc_z"]] = np.arange(200) * G  # +1 g per frame on one IMU
    data[:, [CHANNEL_INDEX[f"thigh_r_acc_{a}"] for a in "xyz"]] = np.nan  # an absent IMU
    w2 = Window("a", "s1", 1000, 100.0, data, 0.0, (), ready_at=0.0)
    # shank_l: 50 steps of 1 g / 100 = 0.5 AU; the other two present IMUs are flat; thigh_r is skipped
    assert abs(player_load(w2, 50) - 0.5 / 3) < 1e-6


def test_redis_sink_accumulates_workload_per_session(redis_url):
    import redis as sync_redis

    from schemas import keys
    from stream.pipeline import G
    from stream.sinks.redis import RedisSink, connect

    sink_calls = []

    async def go():
        sink = RedisSink(connect(redis_url))
        pipe = make(sink, sink_calls)
        for i, session in enumerate(["s1", "s1", "s2"]):
            win = window("a", 1000 + 50 * i, 0.1)
            data = win.data.copy()
            data[:, :] = 0.0
            data[:, 0] = np.arange(200) * G  # thigh_l_acc_x ramps: 0.5/4 AU per hop
            await pipe.run_batch([Window("a", session, win.end_index, 100.0, data, 0.0, (), 0.0)])
        await sink.close()

    asyncio.run(go())
    r = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    load = r.hgetall(keys.workload("a"))
    assert load["session_id"] == "s2" and abs(float(load["player_load"]) - 0.125) < 1e-6
    assert abs(float(load["seconds"]) - 0.5) < 1e-6
    sessions = r.hgetall(keys.workload_sessions("a"))
    assert abs(float(sessions["s1"]) - 0.25) < 1e-6 and abs(float(sessions["s2"]) - 0.125) < 1e-6


def test_batched_player_load_and_attention_match_one_window_at_a_time():
    from stream.pipeline import player_load, player_load_batch, top_attention, top_attention_batch

    rng = np.random.default_rng(3)
    data = rng.normal(size=(6, 200, N_CHANNELS)).astype(np.float32) * 9.8
    data[1, :, :3] = np.nan   # an absent IMU (thigh_l)
    data[2, :, :] = np.nan    # nothing present: 0
    wins = [Window("a", "s1", 1000, 100.0, d, 0.0, (), 0.0) for d in data]
    assert player_load_batch(data, 50) == pytest.approx([player_load(w, 50) for w in wins])
    assert player_load_batch(data, 50)[2] == 0.0
    attn = rng.random((6, 50))
    assert top_attention_batch(attn, 0.04) == [top_attention(a, 0.04) for a in attn]
    assert [p.t for p in top_attention(attn[0], 0.04)] == sorted(p.t for p in top_attention(attn[0], 0.04))


def test_the_next_batch_is_scored_before_the_previous_is_emitted_without_duplicates():
    """infer (k+1) before emit (k), as the worker's two stages run: a replay of a window taken
    by batch k is dropped, emits keep batch order, and an athlete revoked in between is skipped."""
    sink, published = MemorySink(), []
    pipe = make(sink, published)

    async def go():
        first = await pipe.infer([window("a", 1000, 0.7), window("b", 1000, 0.2)])
        second = await pipe.infer([window("a", 1000, 0.7), window("a", 1050, 0.8), window("b", 1050, 0.1)])
        assert [w.end_index for w in second.windows] == [1050, 1050]  # a@1000 already taken
        out1 = await pipe.emit(first)
        pipe.forget({"b"})  # b's partition moved away while batch 2 was being scored
        out2 = await pipe.emit(second)
        return out1, out2

    out1, out2 = asyncio.run(go())
    assert [(s.score.athlete_id, s.score.window_end) for s in out1] == [("a", 10.0), ("b", 10.0)]
    assert [(s.score.athlete_id, s.score.window_end) for s in out2] == [("a", 10.5)]
    assert [a.state for a in sink.alerts["a"]] == ["raised"]
    assert pipe.metrics.skipped.labels("revoked")._value.get() == 1
    assert pipe.metrics.skipped.labels("replayed")._value.get() == 1
    assert pipe.taken == {}  # nothing left waiting
