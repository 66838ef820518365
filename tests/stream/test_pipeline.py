"""ScoringPipeline: windows in, scores/alerts out, replays dropped, inference off the loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

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
