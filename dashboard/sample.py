"""Synthetic squads written through the worker's own Redis sink (benchmark, tests, screenshots).

Nothing here is imported by the page. Scores, alerts and traces are built with the worker's
code (``stream.pipeline.traces_of``, ``stream.alerting.AlertPolicy``, ``stream.sinks.redis``),
so what lands in Redis has exactly the layout the live worker writes.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dashboard.exceptions import DashboardError
from schemas.channels import CHANNEL_INDEX, N_CHANNELS
from schemas.risk import RiskScore, score_id
from stream.alerting import AlertPolicy, AlertState, level_of
from stream.pipeline import top_attention, top_regions, traces_of
from stream.sinks.base import Scored
from stream.windowing import Window

HZ = 100.0
WINDOW = 200
ATTN_STEPS = 50
MODEL_VERSION = "sample-model-1"
ENCODER_VERSION = "resnet50-sample"

RiskCurve = Callable[[int, int], float]  # (athlete index, window index) -> risk


def default_curve(i: int, k: int) -> float:
    """Athlete ``i`` at window ``k``: a steady level with a slow wave; every 5th climbs high, others peak and recover."""
    base = 0.1 + 0.5 * ((i * 37) % 11) / 11
    if i % 5 == 0:
        base = min(0.95, 0.2 + 0.03 * k)
    elif i % 5 == 3:  # a spell of high risk around window 12 that passes (raised, then cleared)
        base = 0.15 + 0.7 * math.exp(-(((k - 12) / 5) ** 2))
    return float(min(1.0, max(0.0, base + 0.05 * math.sin(k / 4 + i))))


def window_data(i: int, k: int) -> np.ndarray:
    """A plausible 200 x C window: strides at ~1.4 Hz, valgus growing with athlete index."""
    t = (np.arange(WINDOW) + k * 50) / HZ
    rng = np.random.default_rng(i * 1000 + k)
    data = rng.normal(0, 0.5, (WINDOW, N_CHANNELS)).astype(np.float32)
    phase = 2 * np.pi * 1.4 * t
    for side, shift in (("l", 0.0), ("r", np.pi)):
        data[:, CHANNEL_INDEX[f"knee_flexion_{side}"]] = 40 + 30 * np.sin(phase + shift)
        data[:, CHANNEL_INDEX[f"knee_valgus_{side}"]] = 2 + (1 + i % 7) * np.clip(np.sin(phase + shift), 0, None)
        data[:, CHANNEL_INDEX[f"hip_flexion_{side}"]] = 30 + 20 * np.sin(phase + shift + 0.4)
        data[:, CHANNEL_INDEX[f"grf_vertical_{side}"]] = np.clip(2.4 * np.sin(phase + shift), 0, None)
    return data


@dataclass
class SampleSquad:
    """What :func:`fill` wrote: for the assertions of tests and the numbers of benchmarks."""

    session_id: str
    athletes: list[str]
    end: float  # window end of the last window written
    scores: dict[str, list[RiskScore]] = field(default_factory=dict)
    alerts: list = field(default_factory=list)


def _attention(k: int) -> np.ndarray:
    w = np.exp(-0.5 * ((np.arange(ATTN_STEPS) - (k * 7) % ATTN_STEPS) / 3.0) ** 2) + 0.05
    return (w / w.sum()).astype(np.float32)


def build(athletes: int = 12, windows: int = 40, *, session_id: str = "sample-session", end: float | None = None,
          hop_s: float = 0.5, curve: RiskCurve = default_curve, prefix: str = "ath",
          image_every: int = 2, policy: AlertPolicy | None = None, scored_at: float | None = None,
          traces: str = "last") -> tuple[list[tuple[list[Scored], list, dict[str, AlertState]]], SampleSquad]:
    """Micro-batches as the worker's pipeline would hand them to the sink (one per hop, all athletes).

    ``traces``: "last" (only the final window carries traces), "all" or "none".
    """
    if traces not in ("last", "all", "none"):
        raise DashboardError(f"traces must be 'last', 'all' or 'none', not {traces!r}")
    policy = policy or AlertPolicy()
    end = time.time() if end is None else end
    wall = time.time() if scored_at is None else scored_at
    ids = [f"{prefix}-{i + 1:02d}" for i in range(athletes)]
    squad = SampleSquad(session_id=session_id, athletes=ids, end=end, scores={a: [] for a in ids})
    states = {a: AlertState() for a in ids}
    batches = []
    for k in range(windows):
        w_end = end - (windows - 1 - k) * hop_s
        scored, alerts, touched = [], [], {}
        for i, a in enumerate(ids):
            risk = curve(i, k)
            image = image_every > 0 and i % image_every == 0
            attn = _attention(k)
            regions = np.linspace(1.0, 0.0, 49) if image else None
            sc = RiskScore(
                score_id=score_id(a, w_end), athlete_id=a, session_id=session_id, window_start=w_end - WINDOW / HZ,
                window_end=w_end, risk=risk, level=level_of(risk, 0.35, 0.6), model_version=MODEL_VERSION,
                encoder_version=ENCODER_VERSION if image else None, image_used=image,
                modalities=["sensor", "image"] if image else ["sensor"],
                attention=top_attention(attn, WINDOW / HZ / ATTN_STEPS),
                regions=top_regions(regions / regions.sum() if regions is not None else None),
                processing_ms=4.0, latency_ms=120.0, scored_at=wall - (windows - 1 - k) * hop_s,
            )
            tr = None
            # The worker stores traces with every window (each overwrites the last); "last" saves memory
            # when everything is written at once, "all" suits a live Feeder.
            if traces == "all" or (traces == "last" and k == windows - 1):
                win = Window(athlete_id=a, session_id=session_id, end_index=round(w_end * HZ), hz=HZ,
                             data=window_data(i, k), missing_fraction=0.0, absent=(), ready_at=wall)
                tr = traces_of(win, attn, WINDOW / HZ / ATTN_STEPS)
            scored.append(Scored(sc, tr))
            squad.scores[a].append(sc)
            alert = policy.step(states[a], athlete_id=a, session_id=session_id, window_end=w_end, risk=risk,
                                now=sc.scored_at)
            touched[a] = AlertState(**states[a].to_dict())
            if alert is not None:
                alerts.append(alert)
                squad.alerts.append(alert)
        batches.append((scored, alerts, touched))
    return batches, squad


async def write_async(url: str, batches: list, *, history_cap: int = 3600) -> None:
    from stream.sinks.redis import RedisSink, connect

    sink = RedisSink(connect(url), history_cap=history_cap)
    try:
        for scored, alerts, states in batches:
            await sink.write(scored, alerts, states)
    finally:
        await sink.close()


def fill(url: str, athletes: int = 12, windows: int = 40, **kwargs) -> SampleSquad:
    """Write a synthetic session into Redis at ``url`` through the worker's RedisSink."""
    batches, squad = build(athletes, windows, **kwargs)
    asyncio.run(write_async(url, batches))
    return squad


class Feeder:
    """Writes pre-built batches in real time (each once its window end has passed), in a thread.

    With ``build(..., end=now + T, scored_at=now + T)`` the first batches are written at once
    and the rest arrive live for ``T`` seconds, like a running worker. Use as a context manager.
    """

    def __init__(self, url: str, batches: list) -> None:
        self.url = url
        self.batches = batches
        self.written = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-feeder", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _feed(self) -> None:
        from stream.sinks.redis import RedisSink, connect

        sink = RedisSink(connect(self.url))
        try:
            for scored, alerts, states in self.batches:
                due = max(s.score.window_end for s in scored)
                while time.time() < due:
                    if self._stop.is_set():
                        return
                    await asyncio.sleep(min(0.05, due - time.time()))
                await sink.write(scored, alerts, states)
                self.written += 1
        finally:
            await sink.close()

    def start(self) -> "Feeder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.error is not None:
            raise DashboardError(f"sample feeder writing to {self.url} failed: {self.error!r}") from self.error

    def __enter__(self) -> "Feeder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
