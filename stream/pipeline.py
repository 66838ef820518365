"""From ready windows to published scores and alerts. No Faust here: the agent is thin wiring.

``ScoringPipeline.run_batch`` is called by the batcher task for each micro-batch:
1. hysteresis states of athletes first seen are loaded from the sink (Redis);
2. windows not newer than the athlete's last scored window are dropped (replay after a
   crash or rebalance: outputs stay idempotent per (athlete_id, window_end));
3. image features are looked up (one MGET per batch) when a lookup is configured;
4. the model scores the batch in a worker thread, never on the event loop;
5. scores and alerts go to Kafka (``publish``) and to the sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from schemas.alerts import Alert
from schemas.channels import CHANNEL_INDEX
from schemas.risk import AttentionPoint, RegionPoint, RiskScore, score_id
from stream.alerting import AlertPolicy, AlertState, level_of
from stream.metrics import WorkerMetrics
from stream.sinks.base import Scored, Sink
from stream.windowing import Window

log = logging.getLogger(__name__)

TRACE_CHANNELS = ("knee_flexion_l", "knee_flexion_r", "knee_valgus_l", "knee_valgus_r",
                  "hip_flexion_l", "hip_flexion_r", "grf_vertical_l", "grf_vertical_r")
TRACE_DECIMATE = 2
TOP_K = 5

Publish = Callable[[list[RiskScore], list[Alert]], Awaitable[None]]
ImageLookup = Callable[[list[str]], Awaitable[dict]]


@dataclass(frozen=True)
class Levels:
    moderate: float = 0.35
    high: float = 0.6


def top_attention(weights: np.ndarray, step_s: float, k: int = TOP_K) -> list[AttentionPoint]:
    idx = np.argsort(weights)[::-1][:k]
    return [AttentionPoint(t=round(float(i) * step_s, 3), weight=round(float(weights[i]), 4)) for i in sorted(idx)]


def top_regions(weights: np.ndarray | None, k: int = TOP_K) -> list[RegionPoint]:
    if weights is None:
        return []
    idx = np.argsort(weights)[::-1][:k]
    return [RegionPoint(region=int(i), weight=round(float(weights[i]), 4)) for i in idx]


G = 9.80665
_ACC = np.array([[CHANNEL_INDEX[f"{seg}_acc_{a}"] for a in "xyz"]
                 for seg in ("thigh_l", "thigh_r", "shank_l", "shank_r")]).ravel()  # 4 IMUs x (x, y, z)
_TRACE_COLS = np.array([CHANNEL_INDEX[name] for name in TRACE_CHANNELS])


def player_load(window: Window, hop: int) -> float:
    """PlayerLoad (AU) of the window's newest ``hop`` frames: sum of sqrt(dax^2 + day^2 + daz^2) / 100
    with accelerations in g, averaged over the IMUs present (Catapult's definition at 100 Hz)."""
    tail = window.data[-(hop + 1):, _ACC].astype(np.float64) / G                # (hop + 1, 12)
    steps = np.diff(tail, axis=0) ** 2
    per_imu = np.sqrt(steps.reshape(len(steps), 4, 3).sum(axis=2)).sum(axis=0) / 100.0  # (4,)
    present = ~np.isnan(tail.reshape(len(tail), 4, 3)).any(axis=(0, 2))
    return float(per_imu[present].mean()) if present.any() else 0.0


def traces_of(window: Window, attn: np.ndarray, step_s: float) -> dict:
    """Decimated channel traces of a window plus attention resampled onto the same time axis."""
    data = window.data[::TRACE_DECIMATE, _TRACE_COLS].astype(np.float64)       # (T / 2, channels)
    t = np.arange(len(data)) * TRACE_DECIMATE / window.hz
    attention = np.interp(t, np.arange(len(attn)) * step_s, attn)
    columns = np.round(data, 3).T.tolist()
    empty = np.isnan(data).all(axis=0)
    chans = {name: None if empty[j] else columns[j] for j, name in enumerate(TRACE_CHANNELS)}
    return {"window_start": window.start, "window_end": window.end, "t": np.round(t, 3).tolist(),
            "channels": chans, "attention": np.round(attention, 5).tolist()}


class ScoringPipeline:
    def __init__(self, *, scorer, sink: Sink | None, publish: Publish, policy: AlertPolicy, levels: Levels,
                 executor: Executor, metrics: WorkerMetrics, images: ImageLookup | None = None,
                 hop: int = 50) -> None:
        self.scorer = scorer
        self.sink = sink
        self.publish = publish
        self.policy = policy
        self.levels = levels
        self.executor = executor
        self.metrics = metrics
        self.images = images
        self.hop = hop  # frames between windows: each window adds its newest hop to the workload
        self.states: dict[str, AlertState] = {}

    def forget(self, athlete_ids: set[str]) -> None:
        """Drop cached hysteresis of athletes whose partitions moved away (reloaded if they return)."""
        for a in athlete_ids:
            self.states.pop(a, None)

    async def _ensure_states(self, athlete_ids: set[str]) -> None:
        new = [a for a in athlete_ids if a not in self.states]
        if not new:
            return
        if self.sink is not None:
            try:
                self.states.update(await self.sink.load_states(new))
                return
            except Exception as exc:  # Redis down: start fresh, say so
                self.metrics.sink_errors.labels("redis").inc()
                log.warning("could not load alert state for %d athletes (%s); starting fresh", len(new), exc)
        self.states.update({a: AlertState() for a in new})

    async def run_batch(self, windows: list[Window]) -> list[Scored]:
        await self._ensure_states({w.athlete_id for w in windows})
        fresh = [w for w in windows if w.end > self.states[w.athlete_id].last_end]
        if len(fresh) < len(windows):
            self.metrics.skipped.labels("replayed").inc(len(windows) - len(fresh))
        if not fresh:
            return []
        images: dict = {}
        if self.images is not None:
            images = await self.images(sorted({w.athlete_id for w in fresh}))
        feats = [images.get(w.athlete_id) for w in fresh]
        stacked = np.stack([w.data for w in fresh])
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        results = await loop.run_in_executor(self.executor, self.scorer.score, stacked, feats)
        self.metrics.inference.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(fresh))

        now = time.time()
        scored: list[Scored] = []
        alerts: list[Alert] = []
        touched: dict[str, AlertState] = {}
        newest = {w.athlete_id: i for i, w in enumerate(fresh)}  # the dashboard shows only the newest traces
        for i, (w, res, feat) in enumerate(zip(fresh, results, feats)):
            risk = float(min(1.0, max(0.0, res.prob)))
            modalities = ["sensor", "image"] if res.image_used else ["sensor"]
            score = RiskScore(
                score_id=score_id(w.athlete_id, w.end), athlete_id=w.athlete_id, session_id=w.session_id,
                window_start=w.start, window_end=w.end, risk=risk,
                level=level_of(risk, self.levels.moderate, self.levels.high),
                model_version=self.scorer.model_version,
                encoder_version=feat.encoder_version if (res.image_used and feat is not None) else None,
                image_used=res.image_used, modalities=modalities,
                attention=top_attention(res.time_attn, res.attn_step_s),
                regions=top_regions(res.region_attn if res.image_used else None),
                missing_fraction=round(w.missing_fraction, 4), absent_channels=list(w.absent),
                processing_ms=round((now - w.ready_at) * 1000, 2), latency_ms=round((now - w.end) * 1000, 2),
                scored_at=now,
            )
            traces = traces_of(w, res.time_attn, res.attn_step_s) if newest[w.athlete_id] == i else None
            hop = min(self.hop, len(w.data) - 1)
            scored.append(Scored(score, traces, load=player_load(w, hop), load_s=hop / w.hz))
            state = self.states[w.athlete_id]
            alert = self.policy.step(state, athlete_id=w.athlete_id, session_id=w.session_id,
                                     window_end=w.end, risk=risk, now=now)
            touched[w.athlete_id] = state
            if alert is not None:
                alerts.append(alert)
                self.metrics.alerts.labels(alert.state).inc()

        await self.publish([s.score for s in scored], alerts)
        if self.sink is not None:
            try:
                await self.sink.write(scored, alerts, touched)
            except Exception as exc:
                self.metrics.sink_errors.labels("redis").inc()
                log.warning("Redis write of %d scores failed (%s); Kafka has them", len(scored), exc)
        done = time.time()
        for s in scored:
            self.metrics.end_to_score.observe(done - s.score.window_end)
        self.metrics.scored.inc(len(scored))
        return scored
