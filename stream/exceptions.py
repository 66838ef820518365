"""Errors of the stream services."""

from __future__ import annotations

from schemas.exceptions import MonitorError


class StreamError(MonitorError):
    """Worker, simulator or demo problem."""


class ServiceError(StreamError):
    """An embedded or external service (broker, Redis, dashboard) could not be started or reached."""


class KafkaBoundaryError(StreamError):
    """An error tied to one Kafka record: carries topic, partition and offset."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(f"{message} [{topic}/{partition}@{offset}]")
        self.topic, self.partition, self.offset = topic, partition, offset
