"""Alert on ``injury.alerts``: raised / cleared with hysteresis."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Alert")

    schema_version: Literal[1] = 1
    alert_id: str = Field(description="'{athlete_id}:{window_end ms of the raising window}'; shared by raise and clear.")
    athlete_id: str
    session_id: str
    state: Literal["raised", "cleared"]
    at: float = Field(description="Window end (event time) of the window that changed the state.")
    risk: float = Field(ge=0, le=1)
    raise_threshold: float
    clear_threshold: float
    windows: list[float] = Field(description="Window ends whose scores caused this change.")
    emitted_at: float
