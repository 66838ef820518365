"""The Faust worker: thin wiring of intake -> micro-batcher -> scoring pipeline -> Kafka + Redis.

- Messages are consumed as raw bytes and decoded by :mod:`schemas.codec` (orjson), so a bad
  message reaches the DLQ with its original bytes, topic, partition and offset.
- Inference runs in a one-thread executor; the event loop only decodes, windows and writes,
  so heartbeats and polls never starve (a long batch on the loop would).
- No Faust tables: per-athlete buffers warm up again from the stream after a rebalance and
  the state whose loss matters (alert hysteresis, last scored window) lives in Redis.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import faust
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from schemas import topics
from schemas.alerts import Alert
from schemas.codec import dumps
from schemas.rejected import Reason, Rejected
from stream.alerting import AlertPolicy
from stream.batching import MicroBatcher
from stream.imaging import ImageLookup, listen_for_studies, make_cache
from stream.faust_tuning import set_fetch_max_wait
from stream.intake import ClockLimits, Intake
from stream.kafka import faust_credentials, librdkafka_config
from stream.metrics import WorkerMetrics
from stream.pipeline import Levels, ScoringPipeline
from stream.publisher import ScorePublisher
from stream.settings import WorkerSettings
from stream.sinks.base import Scored
from stream.sinks.redis import RedisSink, connect
from stream.windowing import Offer, Windower

log = logging.getLogger(__name__)

# A DLQ record keeps at most this much of the original value (base64 grows it by 4/3), so a
# rejected message of any accepted size fits the producer's 1 MB request limit.
DLQ_ORIGINAL_MAX = 256 * 1024
FORGET_AFTER_S = 300.0  # per-athlete state of an athlete silent this long is dropped
EXIT_BROKER_RESET = 75  # EX_TEMPFAIL: the broker lost its log; restart the worker (compose/k8s do)


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
    windower = Windower(settings.window_config())
    intake = Intake(windower, hz=settings.hz, clock=ClockLimits(settings.max_clock_skew_s, settings.max_age_s))
    batcher: MicroBatcher = MicroBatcher(settings.max_batch, settings.max_wait_ms / 1000, maxsize=8 * settings.max_batch)
    executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
    partition_of: dict[str, int] = {}
    newest_offset: dict[int, int] = {}  # frames partition -> highest offset ever read (never reset)
    status = {"assigned": False, "resetting": False}
    stall = {"since": None, "until": -float("inf")}  # the agent waiting on a full inference queue (monotonic)

    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    frames_topic = app.topic(topics.FRAMES, **raw)
    dlq_topic = app.topic(topics.FRAMES_DLQ, **raw)

    redis_password = settings.redis_password.get_secret_value() if settings.redis_password else None
    sink = RedisSink(connect(settings.redis_url, redis_password), history_cap=settings.history_cap)
    metrics.registry.register(_SinkCollector(sink))

    publisher = ScorePublisher(librdkafka_config(settings), on_error=metrics.publish_errors.inc)

    async def publish(scored: list[Scored], alerts: list[Alert]) -> None:
        # librdkafka (stream/publisher.py): a produce() call each, no Python futures on the loop
        for s in scored:
            publisher.send(topics.RISK, s.score.athlete_id.encode(), s.body)
        for a in alerts:
            publisher.send(topics.ALERTS, a.athlete_id.encode(), dumps(a))
        publisher.poll()

    pipeline = ScoringPipeline(
        scorer=scorer, sink=sink, publish=publish,
        policy=AlertPolicy(settings.alert_raise, settings.alert_raise_windows, settings.alert_clear,
                           settings.alert_clear_windows),
        levels=Levels(settings.level_moderate, settings.level_high),
        executor=executor, metrics=metrics,
        images=ImageLookup(image_cache, metrics) if image_cache is not None else None,
        hop=settings.window_config().hop,
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
            if batcher.queue.full():  # backpressure: inference is behind, the agent waits
                stall["since"] = time.monotonic()
                try:
                    await batcher.put(w)
                finally:
                    stall["since"], stall["until"] = None, time.monotonic()
            else:
                await batcher.put(w)
        metrics.queue.set(batcher.qsize())

    async def reject(msg, reason: Reason, detail: str) -> None:
        metrics.rejected.labels(reason.value).inc()
        original = msg.value or b""
        body = Rejected(
            reason=reason, detail=detail[:2000], topic=msg.topic, partition=msg.partition, offset=msg.offset,
            key=msg.key.decode("utf-8", "replace")[:256] if msg.key is not None else None,
            original_b64=base64.b64encode(original[:DLQ_ORIGINAL_MAX]).decode(), original_size=len(original),
            original_truncated=len(original) > DLQ_ORIGINAL_MAX, rejected_at=time.time(),
        )
        log.info("rejected %s/%s@%s: %s (%s)", msg.topic, msg.partition, msg.offset, reason.value, detail[:200])
        await dlq_topic.send(key=msg.key, value=dumps(body))

    @app.agent(frames_topic)
    async def consume(stream):
        async for event in stream.events():
            msg = event.message
            metrics.messages.inc()
            if msg.offset > newest_offset.get(msg.partition, -1):
                newest_offset[msg.partition] = msg.offset
            value = msg.value if isinstance(msg.value, bytes | None) else bytes(msg.value)
            batch, offer = intake.handle(value or b"", msg.key, time.time())
            if offer.reason is not None:
                await reject(msg, offer.reason, offer.detail)
                continue
            partition_of[batch.athlete_id] = msg.partition
            metrics.frames.inc(len(batch.frames))
            await release(offer)

    inferred: asyncio.Queue = asyncio.Queue(1)  # scored batches waiting to be written, in order

    @app.task
    async def score_forever() -> None:
        """Stage 1: the model scores batch k+1 (in its thread) while ``emit_forever`` writes batch k."""
        while True:
            batch = await batcher.next_batch()
            metrics.queue.set(batcher.qsize())
            try:
                done = await pipeline.infer(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scoring a batch of %d windows failed; continuing", len(batch))
                continue
            if done is not None:
                await inferred.put(done)

    @app.task
    async def emit_forever() -> None:
        """Stage 2: scores and alerts of each scored batch to Kafka and Redis, in batch order."""
        try:
            while True:
                done = await inferred.get()
                try:
                    await pipeline.emit(done)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("writing a batch of %d scores failed; continuing", len(done.windows))
        finally:  # shutdown: what was published is delivered before the process ends
            publisher.flush(10.0)

    @app.timer(interval=1.0)
    async def expire_silent() -> None:
        # Silence is measured by arrival time, which stops while the agent waits for inference:
        # no athlete is closed during such a stall, nor until idle_timeout_s after it, by when
        # the agent has caught up (otherwise a slow model would discard every partial window).
        if stall["since"] is not None or time.monotonic() - stall["until"] < settings.idle_timeout_s:
            return
        await release(windower.expire(time.time()))

    @app.timer(interval=30.0)
    async def forget_silent() -> None:
        """Bounded memory: an athlete whose buffer expired and whose newest window is older than
        FORGET_AFTER_S loses its cached hysteresis and partition entry (reloaded from Redis if it returns)."""
        now = time.time()
        silent = {a for a, st in pipeline.states.items()
                  if a not in windower.buffers and now - st.last_end > FORGET_AFTER_S}
        silent |= {a for a in partition_of if a not in windower.buffers and a not in pipeline.states}
        if silent:
            pipeline.forget(silent)
            sink.forget(silent)
            for a in silent:
                partition_of.pop(a, None)
            log.info("forgot %d silent athletes' state", len(silent))

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

    @app.timer(interval=1.0)
    async def watch_broker() -> None:
        """A partition's end never moves back: if it does, the broker lost its log (the embedded
        Tansu restarted without storage, or the topic was deleted and re-created). Faust would go
        on committing offsets of the old log, which can land inside the new one and skip it. So:
        commit the start of the new log for every frames partition we hold (replays are dropped
        by the last scored window kept in Redis), then exit at once, without the shutdown commit,
        with code 75; the supervisor restarts the worker on the new log (docs/reliability.md)."""
        if status["resetting"]:
            return
        consumer = app.consumer
        mine = [tp for tp in consumer.assignment() if tp.topic == topics.FRAMES]
        lost = []
        for tp in mine:
            try:
                hw = consumer.highwater(tp)
            except Exception:
                continue
            seen = newest_offset.get(tp.partition)
            if hw is not None and seen is not None and hw <= seen:
                lost.append(f"{tp.partition}: end {hw} <= read {seen}")
        if not lost:
            return
        status["resetting"] = True
        log.error("broker lost its data (%s); committing offset 0 of %d partitions and exiting with code %d "
                  "so the worker restarts on the new log", "; ".join(lost), len(mine), EXIT_BROKER_RESET)
        try:
            # Faust's thread-safe commit of explicit offsets (a member commit, current generation)
            await asyncio.wait_for(consumer._commit({tp: 0 for tp in mine}), 10)
        except Exception as exc:  # the restarted worker's reset_stale_offsets is the second line
            log.error("could not commit the new log's start (%s)", exc)
        for h in logging.getLogger().handlers:
            h.flush()
        os._exit(EXIT_BROKER_RESET)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        await asyncio.get_running_loop().run_in_executor(None, publisher.flush, 2.0)  # before the new owner starts
        gone = {tp.partition for tp in revoked if tp.topic == topics.FRAMES}
        athletes = {a for a, p in partition_of.items() if p in gone}
        windower.drop(athletes)
        pipeline.forget(athletes)
        sink.forget(athletes)
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


class _SinkCollector:
    """Prometheus view of the Redis sink's outage handling (read at scrape time)."""

    def __init__(self, sink: RedisSink) -> None:
        self.sink = sink

    def collect(self):
        s = self.sink
        yield GaugeMetricFamily("injury_redis_backlog", "Scores waiting for Redis (outage backlog)", value=s.backlog)
        yield CounterMetricFamily("injury_redis_dropped", "Scores dropped from a full Redis backlog (still on Kafka)",
                                  value=s.dropped)
        yield CounterMetricFamily("injury_redis_write_failures", "Failed Redis write attempts", value=s.failures)
        yield CounterMetricFamily("injury_redis_restarts", "Redis restarts seen (states and raised alerts written again)",
                                  value=s.restarts)


def run_worker(settings: WorkerSettings, *, wrap_scorer: Callable | None = None) -> None:
    """Create topics, load (or train) the model, then run the Faust worker until stopped.

    ``wrap_scorer`` (fault injection, tests only): called with the loaded scorer, returns the
    scorer the worker uses (e.g. one that sleeps, see tests/reliability/slow_worker.py).
    """
    from engine.scorer import Scorer
    from engine.train import ensure_default_model
    from stream.admin import ensure_topics, reset_stale_offsets

    asyncio.run(ensure_topics(settings, settings.partitions, settings.replication_factor))
    asyncio.run(reset_stale_offsets(settings, settings.app_id))
    model_dir = ensure_default_model(settings.model_dir, progress=True)
    set_fetch_max_wait(settings.fetch_max_wait_ms)
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))  # no per-send debug records
    if settings.backend == "null":  # streaming cost without inference (stream benchmark)
        from stream.bench.null_scorer import NullScorer

        scorer, cache = NullScorer.from_artifact(model_dir), None
    else:
        options = {}
        if settings.backend.startswith(("tensorrt", "auto")):
            options = {"engine_path": settings.engine_path, "rebuild": settings.engine_rebuild}
        scorer = Scorer(model_dir, backend=settings.backend, threads=settings.inference_threads,
                        max_batch=settings.max_batch, backend_options=options or None)
        scorer.backend.warmup((1, settings.max_batch))  # the first micro-batch must not pay start-up costs
        log.info("model %s on %s (image encoder %s)", scorer.model_version, scorer.backend.label,
                 scorer.encoder_version)
        cache = make_cache(settings, scorer.encoder_version)
    if wrap_scorer is not None:
        scorer = wrap_scorer(scorer)
        log.warning("fault injection: the scorer is wrapped by %r", scorer)
    app = create_app(settings, scorer, image_cache=cache)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
