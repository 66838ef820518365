"""Reference implementation of the worker in Quix Streams 3.28: what a user could pick instead.

Same messages, same per-message logic (:class:`stream.intake.Intake`: decode with
:func:`schemas.codec.decode_frame_batch`, event-time windowing with
:class:`stream.windowing.Windower`), same scoring and outputs
(:class:`stream.pipeline.ScoringPipeline` with :class:`engine.scorer.Scorer`, RiskScore
on ``injury.risk``, Redis through :class:`stream.sinks.redis.RedisSink`, the image
embedding cache), same settings (``INJURY_MONITOR_*``). Only the streaming framework
differs, which is what the benchmark compares.

Quix wiring:

- ``biomech.frames`` is read as raw bytes; one ``apply(expand=True)`` step turns each
  message into the windows it completes (a rejected message goes to the DLQ).
- Micro-batching is Quix's own: the windows go to :class:`ScoringSink`, a sink that
  Quix flushes on every checkpoint (``commit_interval``, the worker's ``max_wait_ms``
  by default), for all partitions at once. The flush scores them in chunks of
  ``max_batch``, writes Redis and produces the scores, and waits for their delivery;
  only then does Quix commit the input offsets (at-least-once, like the worker).
- Silent athletes are expired from the flush, at most once a second (Quix has no timers).
- Settings that Tansu needs (a rebalance takes about half the session timeout): a 10 s session timeout and 1 s heartbeat; no
  state stores (so no changelog topics and no ``retention.ms`` lookups).
- ``fetch.wait.max.ms``: Tansu answers a fetch that finds no new data only after about
  half this wait, even when data arrives meanwhile, so it bounds latency (librdkafka's
  default 500 ms adds ~125 ms at the median). It is ``--fetch-wait-ms``, else the
  worker setting ``fetch_max_wait_ms`` where it exists, else 500 (librdkafka's default).

Scope: one instance on PLAINTEXT (the benchmark's case); it does not drop buffers of
revoked partitions, which the Faust worker does on a rebalance.

Quix Streams pins pydantic < 2.14 and confluent-kafka < 2.13, below this project's, so it
runs from its own virtualenv (``.cache/quix-venv``; see BENCHMARKS.md)::

    INJURY_MONITOR_KAFKA_URL=... INJURY_MONITOR_REDIS_URL=... INJURY_MONITOR_APP_ID=quix \\
    INJURY_MONITOR_WEB_PORT=9100 .cache/quix-venv/bin/python -m stream.bench.quix_ref

It serves the worker's Prometheus metrics (``injury_messages_total``,
``injury_windows_scored_total``, ``injury_end_to_score_seconds``, ...) on ``WEB_PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from typing import Any

from schemas import topics
from schemas.codec import dumps
from stream.exceptions import StreamError
from schemas.rejected import Rejected
from stream.alerting import AlertPolicy
from stream.intake import ClockLimits, Intake
from stream.metrics import WorkerMetrics
from stream.pipeline import Levels, ScoringPipeline
from stream.settings import WorkerSettings
from stream.windowing import Windower

try:
    from quixstreams.sinks import BaseSink
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    raise StreamError("stream.bench.quix_ref needs quixstreams 3.28, which conflicts with this project's "
                      "pydantic; run it with .cache/quix-venv/bin/python (see BENCHMARKS.md)") from exc

log = logging.getLogger(__name__)


class InlineExecutor(Executor):
    """Runs the submitted call at once, in the caller's thread (Quix's loop is synchronous)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting coroutine
            fut.set_exception(exc)
        return fut


class ScoringSink(BaseSink):
    """Collects the windows of one checkpoint and scores them when Quix flushes it."""

    def __init__(self, *, pipeline: ScoringPipeline, windower: Windower, producer, max_batch: int,
                 metrics: WorkerMetrics, expire_every_s: float = 1.0) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.windower = windower
        self.producer = producer
        self.max_batch = max_batch
        self.metrics = metrics
        self.expire_every_s = expire_every_s
        self.loop = asyncio.new_event_loop()
        self._windows: list = []
        self._last_expire = time.time()

    def add(self, value: Any, key: Any, timestamp: int, headers, topic: str, partition: int, offset: int) -> None:
        self._windows.append(value)

    def flush(self) -> None:
        now = time.time()
        if now - self._last_expire >= self.expire_every_s:
            self._last_expire = now
            closed = self.windower.expire(now)
            for sk in closed.skipped:
                self.metrics.skipped.labels(sk.reason).inc(sk.count)
            self._windows.extend(closed.windows)
        windows, self._windows = self._windows, []
        self.metrics.queue.set(len(windows))
        for i in range(0, len(windows), self.max_batch):
            self.loop.run_until_complete(self.pipeline.run_batch(windows[i:i + self.max_batch]))
        self.producer.flush()  # scores delivered before Quix commits the input offsets

    def close(self) -> None:
        self.loop.run_until_complete(self._aclose())
        self.loop.close()

    async def _aclose(self) -> None:
        if self.pipeline.sink is not None:
            await self.pipeline.sink.close()


DEFAULT_FETCH_WAIT_MS = 500


def build(settings: WorkerSettings, scorer, *, commit_interval_s: float | None = None,
          fetch_wait_ms: int | None = None, state_dir: str | None = None):
    """The Quix ``Application`` and its scoring sink (not started)."""
    from quixstreams import Application, message_context

    from stream.imaging import ImageLookup, make_cache
    from stream.sinks.redis import RedisSink, connect

    interval = commit_interval_s if commit_interval_s is not None else max(0.005, settings.max_wait_ms / 1000)
    if fetch_wait_ms is None:
        fetch_wait_ms = getattr(settings, "fetch_max_wait_ms", None) or DEFAULT_FETCH_WAIT_MS
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_interval=interval,
        consumer_poll_timeout=min(0.1, interval),
        consumer_extra_config={"session.timeout.ms": int(settings.session_timeout_s * 1000),
                               "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": int(fetch_wait_ms)},
        producer_extra_config={"linger.ms": 1},
        use_changelog_topics=False,
        auto_create_topics=False,
        state_dir=state_dir or tempfile.mkdtemp(prefix="im-quix-state-"),
        loglevel=settings.log_level.upper(),
    )
    metrics = WorkerMetrics()
    windower = Windower(settings.window_config())
    intake = Intake(windower, hz=settings.hz, clock=ClockLimits(settings.max_clock_skew_s, settings.max_age_s))
    producer = app.get_producer()

    async def publish(scored, alerts) -> None:
        for s in scored:
            producer.produce(topics.RISK, value=s.body, key=s.score.athlete_id.encode(), poll_timeout=0)
        for a in alerts:
            producer.produce(topics.ALERTS, value=dumps(a), key=a.athlete_id.encode(), poll_timeout=0)

    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    pipeline = ScoringPipeline(
        scorer=scorer, sink=RedisSink(connect(settings.redis_url, password), history_cap=settings.history_cap),
        publish=publish,
        policy=AlertPolicy(settings.alert_raise, settings.alert_raise_windows, settings.alert_clear,
                           settings.alert_clear_windows),
        levels=Levels(settings.level_moderate, settings.level_high),
        executor=InlineExecutor(), metrics=metrics,
        images=ImageLookup(make_cache(settings, scorer.encoder_version), metrics),
    )
    sink = ScoringSink(pipeline=pipeline, windower=windower, producer=producer, max_batch=settings.max_batch,
                       metrics=metrics)

    def window_step(value: bytes, key: bytes | None, timestamp: int, headers) -> list:
        metrics.messages.inc()
        batch, offer = intake.handle(value or b"", key, time.time())
        if offer.reason is not None:
            ctx = message_context()
            metrics.rejected.labels(offer.reason.value).inc()
            body = Rejected(reason=offer.reason, detail=offer.detail[:2000], topic=ctx.topic, partition=ctx.partition,
                            offset=ctx.offset, key=key.decode("utf-8", "replace") if key is not None else None,
                            original_b64=base64.b64encode(value or b"").decode(), rejected_at=time.time())
            producer.produce(topics.FRAMES_DLQ, value=dumps(body), key=key, poll_timeout=0)
            return []
        metrics.frames.inc(len(batch.frames))
        for sk in offer.skipped:
            metrics.skipped.labels(sk.reason).inc(sk.count)
        return offer.windows

    frames = app.topic(topics.FRAMES, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(frames).apply(window_step, expand=True, metadata=True)
    sdf.sink(sink)
    return app, sink, metrics


def load_scorer(settings: WorkerSettings):
    """The worker's scorer for ``settings.backend`` (``null``: :class:`NullScorer`)."""
    from stream.bench.null_scorer import NULL_BACKEND, NullScorer

    if settings.backend == NULL_BACKEND:
        return NullScorer.from_artifact(settings.model_dir)
    from engine.scorer import Scorer

    return Scorer(settings.model_dir, backend=settings.backend, threads=settings.inference_threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.bench.quix_ref", description=__doc__.splitlines()[0])
    p.add_argument("--commit-interval", type=float, help="seconds per checkpoint = micro-batch (default max_wait_ms)")
    p.add_argument("--fetch-wait-ms", type=int, help="librdkafka fetch.wait.max.ms (see above)")
    args = p.parse_args(argv)
    settings = WorkerSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from prometheus_client import start_http_server

    scorer = load_scorer(settings)
    app, sink, metrics = build(settings, scorer, commit_interval_s=args.commit_interval,
                               fetch_wait_ms=args.fetch_wait_ms)
    start_http_server(settings.web_port, addr=settings.web_bind, registry=metrics.registry)
    log.info("Quix reference: group %s, model %s", settings.app_id, scorer.model_version)
    try:
        app.run()  # returns on SIGTERM / SIGINT after a final checkpoint
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
