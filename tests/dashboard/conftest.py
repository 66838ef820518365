"""Factories for the dashboard tests: scores and alerts written through the worker's real RedisSink."""

from __future__ import annotations

import asyncio
import time

import pytest

from dashboard import sample
from schemas.alerts import Alert
from schemas.risk import RiskScore, score_id
from stream.alerting import level_of
from stream.sinks.base import Scored


@pytest.fixture
def make_score():
    """Factory: a RiskScore with sensible defaults (window of 2 s ending at ``end``)."""

    def make(athlete_id: str = "ath-01", end: float = 1_000.0, risk: float = 0.2, *, session_id: str = "s1",
             image: bool = False, scored_at: float | None = None) -> RiskScore:
        return RiskScore(score_id=score_id(athlete_id, end), athlete_id=athlete_id, session_id=session_id,
                         window_start=end - 2.0, window_end=end, risk=risk, level=level_of(risk, 0.35, 0.6),
                         model_version="m1", encoder_version="enc1" if image else None, image_used=image,
                         modalities=["sensor", "image"] if image else ["sensor"], processing_ms=1.0,
                         latency_ms=50.0, scored_at=time.time() if scored_at is None else scored_at)

    return make


@pytest.fixture
def make_alert():
    def make(athlete_id: str = "ath-01", at: float = 1_000.0, state: str = "raised", *, session_id: str = "s1",
             risk: float = 0.7, raised_at: float | None = None) -> Alert:
        return Alert(alert_id=score_id(athlete_id, raised_at if raised_at is not None else at),
                     athlete_id=athlete_id, session_id=session_id, state=state, at=at, risk=risk,
                     raise_threshold=0.6, clear_threshold=0.45, windows=[at - 0.5, at], emitted_at=at + 0.1)

    return make


@pytest.fixture
def write(redis_url):
    """Factory: write one micro-batch (scores, optional traces, alerts) through ``stream.sinks.redis.RedisSink``."""

    def write(scores: list[RiskScore] = (), alerts: list[Alert] = (), traces: dict | None = None) -> None:
        scored = [Scored(s, traces.get(s.athlete_id) if traces else None) for s in scores]
        asyncio.run(sample.write_async(redis_url, [(scored, list(alerts), {})]))

    return write


@pytest.fixture
def fill_squad(redis_url):
    """Factory: a synthetic session (scores, traces, hysteresis alerts) written through the worker's sink."""

    def fill(athletes: int = 6, windows: int = 30, **kwargs) -> sample.SampleSquad:
        return sample.fill(redis_url, athletes, windows, **kwargs)

    return fill
