"""reset_stale_offsets against a real broker that is restarted empty (Tansu, memory storage)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics
from stream.admin import ensure_topics, reset_stale_offsets
from stream.embedded import EmbeddedBroker
from stream.kafka import client_kwargs
from stream.settings import ServiceSettings

from .harness import produce

pytestmark = pytest.mark.integration
TP = TopicPartition(topics.FRAMES, 0)


async def commit(settings: ServiceSettings, group: str, offset: int) -> None:
    c = AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([TP])
        await c.commit({TP: offset})
    finally:
        await c.stop()


async def committed(settings: ServiceSettings, group: str) -> int | None:
    c = AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([TP])
        return await c.committed(TP)
    finally:
        await c.stop()


def test_offsets_past_the_end_of_a_new_log_are_reset_and_valid_ones_kept():
    broker = EmbeddedBroker().start()
    try:
        s = ServiceSettings(kafka_url=broker.url)
        asyncio.run(ensure_topics(s, 1, names=(topics.FRAMES,)))
        produce(broker.bootstrap, topics.FRAMES, [(b"k", b"x%d" % i) for i in range(50)])
        asyncio.run(commit(s, "g-valid", 30))
        assert asyncio.run(reset_stale_offsets(s, "g-valid")) == {}  # 30 <= end: kept
        assert asyncio.run(committed(s, "g-valid")) == 30

        port = broker.port
        broker.stop()
        broker = EmbeddedBroker(port=port).start()  # empty again
        asyncio.run(ensure_topics(s, 1, names=(topics.FRAMES,)))
        produce(broker.bootstrap, topics.FRAMES, [(b"k", b"y%d" % i) for i in range(10)])
        asyncio.run(commit(s, "g-stale", 40))  # what the old worker committed to the new broker
        assert asyncio.run(reset_stale_offsets(s, "g-stale")) == {0: (40, 10)}
        assert asyncio.run(committed(s, "g-stale")) == 0
        assert asyncio.run(reset_stale_offsets(s, "g-none")) == {}  # no committed offsets: nothing to do
    finally:
        broker.stop()
