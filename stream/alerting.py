"""Alert hysteresis. Pure logic: the state is a small dict the worker keeps in Redis.

Raise when risk >= ``raise_threshold`` for ``raise_windows`` consecutive windows; clear when
risk < ``clear_threshold`` for ``clear_windows`` consecutive windows. A window whose end is
not newer than the last one seen is ignored, so a replay never raises or clears twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.alerts import Alert
from schemas.risk import score_id


@dataclass
class AlertState:
    raised: bool = False
    alert_id: str | None = None
    streak: list[float] = field(default_factory=list)  # window ends of the current run toward a change
    last_end: float = 0.0

    def to_dict(self) -> dict:
        return {"raised": self.raised, "alert_id": self.alert_id, "streak": list(self.streak),
                "last_end": self.last_end}

    @classmethod
    def from_dict(cls, d: dict) -> "AlertState":
        return cls(**{k: d[k] for k in ("raised", "alert_id", "streak", "last_end") if k in d})


@dataclass(frozen=True)
class AlertPolicy:
    raise_threshold: float = 0.6
    raise_windows: int = 2
    clear_threshold: float = 0.45
    clear_windows: int = 4

    def step(self, state: AlertState, *, athlete_id: str, session_id: str, window_end: float, risk: float,
             now: float) -> Alert | None:
        """Advance ``state`` (in place) by one scored window; return the alert it causes, if any."""
        if window_end <= state.last_end:
            return None
        state.last_end = window_end
        toward = risk < self.clear_threshold if state.raised else risk >= self.raise_threshold
        state.streak = state.streak + [window_end] if toward else []
        needed = self.clear_windows if state.raised else self.raise_windows
        if len(state.streak) < needed:
            return None
        windows, state.streak = state.streak, []
        if not state.raised:
            state.raised, state.alert_id = True, score_id(athlete_id, window_end)
            kind = "raised"
        else:
            state.raised = False
            kind = "cleared"
        return Alert(
            alert_id=state.alert_id, athlete_id=athlete_id, session_id=session_id, state=kind, at=window_end,
            risk=risk, raise_threshold=self.raise_threshold, clear_threshold=self.clear_threshold,
            windows=windows, emitted_at=now,
        )


def level_of(risk: float, moderate: float, high: float) -> str:
    return "high" if risk >= high else "moderate" if risk >= moderate else "low"
