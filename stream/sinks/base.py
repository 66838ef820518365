"""Sink contract: where scored windows and alerts go besides Kafka."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

from schemas.alerts import Alert
from schemas.codec import dumps
from schemas.risk import RiskScore
from stream.alerting import AlertState


@dataclass(frozen=True)
class Scored:
    """One scored window as the sinks see it: the score, and traces for the athlete view."""

    score: RiskScore
    traces: dict | None = None  # {"t": [...], "channels": {name: [...]}, "attention": [...]}
    load: float = 0.0  # PlayerLoad (AU) of the window's newest hop, added to the session's total
    load_s: float = 0.0  # the seconds that hop covers

    @cached_property
    def body(self) -> bytes:
        """The score's wire JSON, serialised once for Kafka and the sinks."""
        return dumps(self.score)


class Sink(ABC):
    """Idempotent per (athlete_id, window_end): writing the same window twice changes nothing."""

    @abstractmethod
    async def write(self, scored: list[Scored], alerts: list[Alert], states: dict[str, AlertState]) -> None:
        """Persist one micro-batch of scores, alerts and the hysteresis states they left."""

    @abstractmethod
    async def load_states(self, athlete_ids: list[str]) -> dict[str, AlertState]:
        """Hysteresis states of these athletes (fresh ones for athletes never seen)."""

    async def close(self) -> None:
        """Release connections."""
