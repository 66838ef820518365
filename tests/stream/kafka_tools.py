"""Independent Kafka clients for tests (librdkafka via confluent-kafka): read and write topics."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition


def read_topic(bootstrap: str, topic: str, *, idle_s: float = 1.0, max_s: float = 20.0) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` from the beginning (partitions assigned by hand, no group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10)
        parts = sorted(meta.topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])  # 0 = the first offset
        out, last, start = [], time.monotonic(), time.monotonic()
        while time.monotonic() - last < idle_s and time.monotonic() - start < max_s:
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            out.append((msg.key(), msg.value()))
            last = time.monotonic()
        return out
    finally:
        c.close()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in records:
        p.produce(topic, value=value, key=key)
    assert p.flush(15) == 0
