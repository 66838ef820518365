"""The Faust worker: thin wiring of intake -> micro-batcher -> scoring pipeline -> Kafka + Redis.

- Messages are consumed as raw bytes and decoded by :mod:`schemas.codec` (orjson), so a bad
  message reaches the DLQ with its original bytes, topic, partition and offset.
- Inference runs in a one-thread executor; the event loop only decodes, windows and writes,
  so heartbeats and polls never starve (see DESIGN.md).
- No Faust tables: per-athlete buffers warm up again from the stream after a rebalance and
  the state whose loss matters (alert hysteresis, last scored window) lives in Redis.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import faust
from prometheus_client import generate_latest

from schemas import topics
from schemas.alerts import Alert
from schemas.codec import dumps
from schemas.rejected import Reason, Rejected
from schemas.risk import RiskScore
from stream.alerting import AlertPolicy
from stream.batching import MicroBatcher
from stream.imaging import ImageLookup, listen_for_studies, make_cache
from stream.intake import ClockLimits, Intake
from stream.kafka import faust_credentials
from stream.metrics import WorkerMetrics
from stream.pipeline import Levels, ScoringPipeline
from stream.settings import WorkerSettings
from stream.sinks.redis import RedisSink, connect
from stream.windowing import Offer, WindowConfig, Windower

log = logging.getLogger(__name__)


def window_config(s: WorkerSettings) -> WindowConfig:
    return WindowConfig(hz=s.hz, window_s=s.window_s, hop_s=s.hop_s, grace_s=s.grace_s,
                        max_missing_fraction=s.max_missing_fraction, max_gap_s=s.max_gap_s,
                        idle_timeout_s=s.idle_timeout_s)


def create_app(settings: WorkerSettings, scorer, *, image_cache=None) -> faust.App:
    """Build the Faust app. ``scorer`` has ``score(windows, images)`` and ``model_version``;
    ``image_cache`` (an ``EmbeddingCache``) adds the image branch, kept fresh by ``imaging.studies``."""
    brokers = [f"kafka://{hp}" for hp in settings.bootstrap_servers.split(",")]
    app = faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        loghandlers=[],
    )
    metrics = WorkerMetrics()
    windower = Windower(window_config(settings))
    intake = Intake(windower, hz=settings.hz, clock=ClockLimits(settings.max_clock_skew_s, settings.max_age_s))
    batcher: MicroBatcher = MicroBatcher(settings.max_batch, settings.max_wait_ms / 1000, maxsize=8 * settings.max_batch)
    executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
    partition_of: dict[str, int] = {}
    status = {"assigned": False}

    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    frames_topic = app.topic(topics.FRAMES, **raw)
    dlq_topic = app.topic(topics.FRAMES_DLQ, **raw)
    risk_topic = app.topic(topics.RISK, **raw)
    alerts_topic = app.topic(topics.ALERTS, **raw)

    redis_password = settings.redis_password.get_secret_value() if settings.redis_password else None
    sink = RedisSink(connect(settings.redis_url, redis_password), history_cap=settings.history_cap)

    async def publish(scores: list[RiskScore], alerts: list[Alert]) -> None:
        for s in scores:
            await risk_topic.send(key=s.athlete_id.encode(), value=dumps(s))
        for a in alerts:
            await alerts_topic.send(key=a.athlete_id.encode(), value=dumps(a))

    pipeline = ScoringPipeline(
        scorer=scorer, sink=sink, publish=publish,
        policy=AlertPolicy(settings.alert_raise, settings.alert_raise_windows, settings.alert_clear,
                           settings.alert_clear_windows),
        levels=Levels(settings.level_moderate, settings.level_high),
        executor=executor, metrics=metrics,
        images=ImageLookup(image_cache, metrics) if image_cache is not None else None,
    )

    if image_cache is not None:
        @app.task
        async def studies() -> None:
            while True:  # keep listening through broker hiccups
                try:
                    await listen_for_studies(settings, image_cache)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("imaging.studies listener failed (%s); retrying in 5 s", exc)
                    await asyncio.sleep(5)

    async def release(offer: Offer) -> None:
        for sk in offer.skipped:
            metrics.skipped.labels(sk.reason).inc(sk.count)
        for w in offer.windows:
            await batcher.put(w)
        metrics.queue.set(batcher.qsize())

    async def reject(msg, reason: Reason, detail: str) -> None:
        metrics.rejected.labels(reason.value).inc()
        body = Rejected(
            reason=reason, detail=detail[:2000], topic=msg.topic, partition=msg.partition, offset=msg.offset,
            key=msg.key.decode("utf-8", "replace") if msg.key is not None else None,
            original_b64=base64.b64encode(msg.value or b"").decode(), rejected_at=time.time(),
        )
        log.info("rejected %s/%s@%s: %s (%s)", msg.topic, msg.partition, msg.offset, reason.value, detail[:200])
        await dlq_topic.send(key=msg.key, value=dumps(body))

    @app.agent(frames_topic)
    async def consume(stream):
        async for event in stream.events():
            msg = event.message
            metrics.messages.inc()
            value = msg.value if isinstance(msg.value, bytes | None) else bytes(msg.value)
            batch, offer = intake.handle(value or b"", msg.key, time.time())
            if offer.reason is not None:
                await reject(msg, offer.reason, offer.detail)
                continue
            partition_of[batch.athlete_id] = msg.partition
            metrics.frames.inc(len(batch.frames))
            await release(offer)

    @app.task
    async def score_forever() -> None:
        while True:
            batch = await batcher.next_batch()
            metrics.queue.set(batcher.qsize())
            try:
                await pipeline.run_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scoring a batch of %d windows failed; continuing", len(batch))

    @app.timer(interval=1.0)
    async def expire_silent() -> None:
        await release(windower.expire(time.time()))

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        consumer = app.consumer
        read = getattr(consumer, "_read_offset", {})
        for tp in consumer.assignment():
            if tp.topic != topics.FRAMES:
                continue
            try:
                hw = consumer.highwater(tp)
            except Exception:
                continue
            if hw is None:
                continue
            last = read.get(tp)
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - (last + 1 if last is not None else 0)))

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == topics.FRAMES}
        athletes = {a for a, p in partition_of.items() if p in gone}
        windower.drop(athletes)
        pipeline.forget(athletes)
        for a in athletes:
            partition_of.pop(a, None)
        if athletes:
            log.info("partitions %s revoked: dropped %d athletes' buffers", sorted(gone), len(athletes))

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs) -> None:
        status["assigned"] = True
        log.info("assigned %s", sorted(tp.partition for tp in assigned if tp.topic == topics.FRAMES))

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health(web, request):
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web, request):
        ok = status["assigned"]
        return web.json({"ready": ok, "model": scorer.model_version}, status=200 if ok else 503)

    app.im_metrics = metrics  # for tests and benchmarks
    return app


def run_worker(settings: WorkerSettings) -> None:
    """Create topics, load (or train) the model, then run the Faust worker until stopped."""
    from engine.scorer import Scorer
    from engine.train import ensure_default_model
    from stream.admin import ensure_topics

    asyncio.run(ensure_topics(settings, settings.partitions, settings.replication_factor))
    model_dir = ensure_default_model(settings.model_dir, progress=True)
    scorer = Scorer(model_dir, backend=settings.backend, threads=settings.inference_threads)
    log.info("model %s on %s (image encoder %s)", scorer.model_version, settings.backend, scorer.encoder_version)
    app = create_app(settings, scorer, image_cache=make_cache(settings, scorer.encoder_version))
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
