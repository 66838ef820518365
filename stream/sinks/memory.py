"""In-memory sink for unit tests of the pipeline logic."""

from __future__ import annotations

import copy

from schemas.alerts import Alert
from stream.alerting import AlertState
from stream.sinks.base import Scored, Sink


class MemorySink(Sink):
    def __init__(self) -> None:
        self.history: dict[str, dict[float, Scored]] = {}
        self.alerts: dict[str, list[Alert]] = {}
        self.states: dict[str, AlertState] = {}

    async def write(self, scored: list[Scored], alerts: list[Alert], states: dict[str, AlertState]) -> None:
        for s in scored:
            self.history.setdefault(s.score.athlete_id, {}).setdefault(s.score.window_end, s)
        for a in alerts:
            self.alerts.setdefault(a.athlete_id, []).append(a)
        self.states.update(copy.deepcopy(states))

    async def load_states(self, athlete_ids: list[str]) -> dict[str, AlertState]:
        return {a: copy.deepcopy(self.states.get(a, AlertState())) for a in athlete_ids}
