"""Topic creation: Faust does not create its input topics, and Tansu auto-creates with 4
partitions, so every service that produces or consumes creates them first."""

from __future__ import annotations

import logging

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
