"""From ready windows to published scores and alerts. No Faust here: the agent is thin wiring.

A micro-batch goes through two stages. The worker runs them as two tasks, so the model
scores batch k+1 in its thread while the event loop writes batch k (both cores busy during a
burst); ``run_batch`` runs both in turn.

``infer``:
1. hysteresis states of athletes first seen are loaded from the sink (Redis);
2. windows not newer than the athlete's newest window already taken are dropped (replay
   after a crash or rebalance: outputs stay idempotent per (athlete_id, window_end));
3. image features are looked up (one MGET per batch) when a lookup is configured;
4. the model scores the batch in a worker thread, never on the event loop.

``emit`` (in batch order): scores and alert steps are built, and go to Kafka (``publish``)
and to the sink.
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

Publish = Callable[[list[Scored], list[Alert]], Awaitable[None]]
ImageLookup = Callable[[list[str]], Awaitable[dict]]


@dataclass(frozen=True)
class Inferred:
    """A micro-batch scored by the model, waiting for ``emit``."""

    windows: list[Window]
    results: list
    feats: list


@dataclass(frozen=True)
class Levels:
    moderate: float = 0.35
    high: float = 0.6


def top_attention(weights: np.ndarray, step_s: float, k: int = TOP_K) -> list[AttentionPoint]:
    return top_attention_batch(np.asarray(weights)[None], step_s, k)[0]


def top_attention_batch(weights: np.ndarray, step_s: float, k: int = TOP_K) -> list[list[AttentionPoint]]:
    """The ``k`` heaviest time steps of each row of ``weights`` (windows, steps), in time order."""
    k = min(k, weights.shape[1])
    idx = np.sort(np.argsort(-weights, axis=1, kind="stable")[:, :k], axis=1)
    ts = np.round(idx * step_s, 3).tolist()
    ws = np.round(np.take_along_axis(weights, idx, axis=1).astype(np.float64), 4).tolist()
    return [[AttentionPoint(t=t, weight=w) for t, w in zip(tr, wr)] for tr, wr in zip(ts, ws)]


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
    return float(player_load_batch(window.data[None], hop)[0])


def player_load_batch(data: np.ndarray, hop: int) -> np.ndarray:
    """:func:`player_load` of each window of ``data`` (windows, frames, channels) at once."""
    tail = data[:, -(hop + 1):, _ACC].astype(np.float64) / G                    # (B, hop + 1, 12)
    b, n = tail.shape[:2]
    steps = np.diff(tail, axis=1) ** 2
    per_imu = np.sqrt(steps.reshape(b, n - 1, 4, 3).sum(axis=3)).sum(axis=1) / 100.0  # (B, 4)
    present = ~np.isnan(tail.reshape(b, n, 4, 3)).any(axis=(1, 3))
    total = np.where(present, per_imu, 0.0).sum(axis=1)
    count = present.sum(axis=1)
    return np.divide(total, count, out=np.zeros(b), where=count > 0)


def traces_of(window: Window, attn: np.ndarray, step_s: float) -> dict:
    """Decimated channel traces of a window plus attention resampled onto the same time axis.

    Values are float32 numpy arrays (rounded to 3 and 5 decimals), to be written with
    ``orjson.OPT_SERIALIZE_NUMPY`` (~2x faster than lists); NaN becomes null."""
    data = window.data[::TRACE_DECIMATE, _TRACE_COLS]                            # (T / 2, channels)
    t = np.arange(len(data)) * TRACE_DECIMATE / window.hz
    attention = np.interp(t, np.arange(len(attn)) * step_s, attn)
    columns = np.round(data.astype(np.float64), 3).astype(np.float32).T
    empty = np.isnan(data).all(axis=0)
    chans = {name: None if empty[j] else columns[j] for j, name in enumerate(TRACE_CHANNELS)}
    return {"window_start": window.start, "window_end": window.end, "t": np.round(t, 3).astype(np.float32),
            "channels": chans, "attention": np.round(attention, 5).astype(np.float32)}


def _attention_points(results: list) -> list[list[AttentionPoint]]:
    """Top time-attention points of each result; one numpy pass when the batch shares a shape."""
    if len({(len(r.time_attn), r.attn_step_s) for r in results}) == 1:
        return top_attention_batch(np.stack([r.time_attn for r in results]), results[0].attn_step_s)
    return [top_attention(r.time_attn, r.attn_step_s) for r in results]


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
        self.taken: dict[str, float] = {}  # newest window end per athlete sent to the model, not yet emitted

    def forget(self, athlete_ids: set[str]) -> None:
        """Drop cached hysteresis of athletes whose partitions moved away (reloaded if they return)."""
        for a in athlete_ids:
            self.states.pop(a, None)
            self.taken.pop(a, None)

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
        inferred = await self.infer(windows)
        return await self.emit(inferred) if inferred is not None else []

    async def infer(self, windows: list[Window]) -> Inferred | None:
        await self._ensure_states({w.athlete_id for w in windows})
        fresh = []
        for w in windows:
            if w.end > max(self.states[w.athlete_id].last_end, self.taken.get(w.athlete_id, -1.0)):
                fresh.append(w)
                self.taken[w.athlete_id] = w.end
        if len(fresh) < len(windows):
            self.metrics.skipped.labels("replayed").inc(len(windows) - len(fresh))
        if not fresh:
            return None
        images: dict = {}
        if self.images is not None:
            images = await self.images(sorted({w.athlete_id for w in fresh}))
        feats = [images.get(w.athlete_id) for w in fresh]
        stacked = np.stack([w.data for w in fresh])
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.scorer.score, stacked, feats)
        except BaseException:
            self._untake(fresh)
            raise
        self.metrics.inference.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(fresh))
        return Inferred(fresh, results, feats)

    def _untake(self, windows: list[Window]) -> None:
        for w in windows:
            if self.taken.get(w.athlete_id) == w.end:
                del self.taken[w.athlete_id]

    async def emit(self, inferred: Inferred) -> list[Scored]:
        self._untake(inferred.windows)
        # an athlete whose partition was revoked while its window was being scored is the new
        # owner's now (its hysteresis state went with it): that window is not emitted here
        rows = [r for r in zip(inferred.windows, inferred.results, inferred.feats) if r[0].athlete_id in self.states]
        if len(rows) < len(inferred.windows):
            self.metrics.skipped.labels("revoked").inc(len(inferred.windows) - len(rows))
        if not rows:
            return []
        fresh = [w for w, _, _ in rows]
        hop = min(self.hop, len(fresh[0].data) - 1)
        loads = player_load_batch(np.stack([w.data for w in fresh]), hop)
        attention = _attention_points([r for _, r, _ in rows])
        now = time.time()
        scored: list[Scored] = []
        alerts: list[Alert] = []
        touched: dict[str, AlertState] = {}
        newest = {w.athlete_id: i for i, w in enumerate(fresh)}  # the dashboard shows only the newest traces
        for i, (w, res, feat) in enumerate(rows):
            risk = float(min(1.0, max(0.0, res.prob)))
            modalities = ["sensor", "image"] if res.image_used else ["sensor"]
            score = RiskScore(
                score_id=score_id(w.athlete_id, w.end), athlete_id=w.athlete_id, session_id=w.session_id,
                window_start=w.start, window_end=w.end, risk=risk,
                level=level_of(risk, self.levels.moderate, self.levels.high),
                model_version=self.scorer.model_version,
                encoder_version=feat.encoder_version if (res.image_used and feat is not None) else None,
                image_used=res.image_used, modalities=modalities,
                attention=attention[i],
                regions=top_regions(res.region_attn if res.image_used else None),
                missing_fraction=round(w.missing_fraction, 4), absent_channels=list(w.absent),
                processing_ms=round((now - w.ready_at) * 1000, 2), latency_ms=round((now - w.end) * 1000, 2),
                scored_at=now,
            )
            traces = traces_of(w, res.time_attn, res.attn_step_s) if newest[w.athlete_id] == i else None
            scored.append(Scored(score, traces, load=float(loads[i]), load_s=hop / w.hz))
            state = self.states[w.athlete_id]
            alert = self.policy.step(state, athlete_id=w.athlete_id, session_id=w.session_id,
                                     window_end=w.end, risk=risk, now=now)
            touched[w.athlete_id] = state
            if alert is not None:
                alerts.append(alert)
                self.metrics.alerts.labels(alert.state).inc()

        await self.publish(scored, alerts)
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
