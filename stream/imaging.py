"""Worker side of imaging: per-batch embedding lookup and cache invalidation from ``imaging.studies``.

Every worker must see every study event (its cache may hold any athlete), so the listener
is a group-less consumer assigned all partitions from the end, not a Faust agent in the
scoring consumer group.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics
from stream.kafka import client_kwargs
from stream.metrics import WorkerMetrics
from stream.settings import WorkerSettings

log = logging.getLogger(__name__)


class ImageLookup:
    """``await lookup(athlete_ids) -> {athlete: ImageFeatures | None}`` with cache metrics."""

    def __init__(self, cache, metrics: WorkerMetrics) -> None:
        self.cache = cache
        self.metrics = metrics

    async def __call__(self, athlete_ids: list[str]) -> dict:
        before = (self.cache.stats.hits, self.cache.stats.misses, self.cache.stats.redis_errors)
        got = await self.cache.get_many(athlete_ids)
        s = self.cache.stats
        m = self.metrics.embedding
        m.labels("hit").inc(s.hits - before[0])
        m.labels("miss").inc(s.misses - before[1])
        m.labels("error").inc(s.redis_errors - before[2])
        m.labels("none").inc(sum(1 for v in got.values() if v is None))
        return got


def make_cache(settings: WorkerSettings, encoder_version: str):
    import redis.asyncio as aioredis

    from engine.imaging.cache import EmbeddingCache

    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    kwargs = {"password": password} if password else {}
    return EmbeddingCache(lambda: aioredis.Redis.from_url(settings.redis_url, **kwargs), encoder_version,
                          ttl_s=settings.embedding_ttl_s)


async def listen_for_studies(settings: WorkerSettings, cache, stop: asyncio.Event | None = None) -> None:
    """Invalidate cached embeddings whenever a study is ingested. Runs until cancelled."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.IMAGING) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topics.IMAGING) or set()
        tps = [TopicPartition(topics.IMAGING, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    event = cache.handle_message(rec.value or b"")
                    if event is not None:
                        log.info("new study for %s: embedding cache invalidated", event.athlete_id)
    finally:
        await consumer.stop()
