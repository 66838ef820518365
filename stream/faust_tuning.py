"""Faust consumer settings that Faust does not expose.

Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its consumer. Tansu answers a fetch
that found no data only after about half that wait, even when data arrives meanwhile,
which put a 0.7 s floor under window-end-to-score latency on the embedded default
(BENCHMARKS.md: median 656 ms -> 78 ms at 20 athletes with a 10 ms wait). The wait is
applied after Faust builds the consumer and before it starts (aiokafka reads the value
when its fetcher starts).
"""

from __future__ import annotations


def set_fetch_max_wait(ms: int) -> None:
    from faust.transport.drivers import aiokafka as driver

    cls = driver.AIOKafkaConsumerThread
    original = getattr(cls._create_worker_consumer, "__wrapped__", cls._create_worker_consumer)

    def create(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = ms  # aiokafka: passed to its Fetcher at start()
        return consumer

    create.__wrapped__ = original
    cls._create_worker_consumer = create
