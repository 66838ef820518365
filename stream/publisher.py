"""Scores and alerts to Kafka through librdkafka (confluent-kafka), off Faust's producer.

A send is one ``produce()`` call into librdkafka's queue (C, ~2 µs), where aiokafka's
producer costs tens of µs of Python on the event loop per record; the event loop is what a
burst of windows waits for. Delivery is as before: the scoring task's sends were never tied
to the frames' offsets (Faust attaches only sends made inside an agent's event), and the
outputs are idempotent by ``score_id``. The queue is flushed when partitions are revoked and
at shutdown; delivery errors are logged and counted (``injury_publish_errors_total``).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class ScorePublisher:
    def __init__(self, conf: dict, *, on_error=None) -> None:
        from confluent_kafka import Producer

        self.errors = 0
        self._on_error = on_error
        self._p = Producer({**conf, "linger.ms": 1, "acks": "all", "enable.idempotence": False,
                            "error_cb": self._client_error, "log_level": 4})

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self._p.produce(topic, value, key, on_delivery=self._delivered)
        except BufferError:  # librdkafka's queue is full (broker slow or down): wait for room once
            self._p.poll(1.0)
            self._p.produce(topic, value, key, on_delivery=self._delivered)

    def poll(self) -> None:
        """Serve delivery reports (non-blocking)."""
        self._p.poll(0)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for every queued record; returns how many are still undelivered."""
        left = self._p.flush(timeout_s)
        if left:
            log.warning("%d scores/alerts not yet delivered to Kafka after %.0f s", left, timeout_s)
        return left

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors += 1
            if self._on_error is not None:
                self._on_error()
            log.warning("Kafka delivery to %s failed: %s", msg.topic(), err)

    @staticmethod
    def _client_error(err) -> None:
        log.warning("Kafka producer: %s", err)
