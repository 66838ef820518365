"""Topic creation: Faust does not create its input topics, and Tansu auto-creates with 4
partitions, so every service that produces or consumes creates them first."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import topics
from stream.exceptions import ServiceError
from stream.kafka import client_kwargs
from stream.settings import ServiceSettings

log = logging.getLogger(__name__)

RETENTION_MS = str(24 * 3600 * 1000)


async def ensure_topics(settings: ServiceSettings, partitions: int, replication: int = 1,
                        names: tuple[str, ...] = topics.ALL) -> dict[str, int]:
    """Create missing topics; return name -> partition count. Warns when an existing count differs."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=15000)
    await admin.start()
    try:
        new = [NewTopic(n, partitions, replication, topic_configs={"retention.ms": RETENTION_MS}) for n in names]
        try:
            resp = await admin.create_topics(new)
            for name, code, *_ in getattr(resp, "topic_errors", []) or getattr(resp, "topics", []):
                if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS
                    raise ServiceError(f"could not create topic {name}: error code {code}")
        except TopicAlreadyExistsError:
            pass
        meta = await admin.describe_topics(list(names))
        counts = {t["topic"]: len(t["partitions"]) for t in meta}
        for name, n in counts.items():
            if n != partitions:
                log.warning("topic %s has %d partitions, settings say %d", name, n, partitions)
        return counts
    finally:
        await admin.close()


async def reset_stale_offsets(settings: ServiceSettings, group: str, topic: str = topics.FRAMES,
                              timeout_s: float = 2.0) -> dict[int, tuple[int, int]]:
    """Reset the group's committed offsets that lie past their partition's end to its start.

    That happens when the broker lost its log (the embedded Tansu restarted: memory storage)
    or the topic was deleted and re-created: the old offsets would make the consumer wait
    until the new log grows past them, skipping everything before. The end comes from one
    fetch at the committed offset (its high watermark), not ListOffsets, which Tansu
    under-reports. Returns ``{partition: (stale offset, end)}``; best effort: a group with
    live members refuses the commit, which is logged.
    """
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=15000)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        candidates = {tp: off for tp, off in committed.items() if off}
        if not candidates:
            return {}
        for tp, off in candidates.items():
            consumer.seek(tp, off)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and any(consumer.highwater(tp) is None for tp in candidates):
            await consumer.getmany(*candidates, timeout_ms=100)  # a fetch response carries the high watermark
        stale = {tp: (off, hw) for tp, off in candidates.items()
                 if (hw := consumer.highwater(tp)) is not None and off > hw}
        if stale:
            start = await consumer.beginning_offsets(list(stale))
            log.warning("group %s: committed offsets past the end of %s (the broker lost its log): %s; "
                        "starting those partitions from the beginning",
                        group, topic, {tp.partition: f"{off} > end {hw}" for tp, (off, hw) in stale.items()})
            try:
                await consumer.commit({tp: start[tp] for tp in stale})
            except Exception as exc:
                log.warning("could not reset the offsets of group %s (%s)", group, exc)
        return {tp.partition: v for tp, v in stale.items()}
    finally:
        await consumer.stop()
