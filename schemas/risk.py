"""RiskScore on ``injury.risk``: one event per scored window."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["low", "moderate", "high"]
Modality = Literal["sensor", "image"]


class AttentionPoint(BaseModel):
    t: float = Field(description="Seconds from window_start of the attended time step.")
    weight: float = Field(ge=0, le=1)


class RegionPoint(BaseModel):
    region: int = Field(ge=0, description="Row-major index into the 7x7 image region grid.")
    weight: float = Field(ge=0, le=1)


def score_id(athlete_id: str, window_end: float) -> str:
    """The idempotency key of a score: one per (athlete, window end)."""
    return f"{athlete_id}:{round(window_end * 1000)}"


class RiskScore(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RiskScore")

    schema_version: Literal[1] = 1
    score_id: str = Field(description="'{athlete_id}:{window_end in ms}'; consumers dedupe on it.")
    athlete_id: str
    session_id: str
    window_start: float = Field(description="Event time of the window's first frame (epoch s).")
    window_end: float = Field(description="Event time just after the window's last frame (epoch s).")
    risk: float = Field(ge=0, le=1, description="Calibrated injury probability for this window.")
    level: Level
    model_version: str
    encoder_version: str | None = Field(None, description="Image encoder of the embedding used, if any.")
    image_used: bool = False
    modalities: list[Modality] = Field(default_factory=lambda: ["sensor"])
    attention: list[AttentionPoint] = Field(default_factory=list, description="Top attended time steps.")
    regions: list[RegionPoint] = Field(default_factory=list, description="Top attended image regions.")
    missing_fraction: float = Field(0.0, ge=0, le=1, description="Share of frames interpolated.")
    absent_channels: list[str] = Field(default_factory=list)
    processing_ms: float = Field(description="Window ready to scored, wall clock.")
    latency_ms: float = Field(description="Window end (event time) to scored (wall clock).")
    scored_at: float = Field(description="Wall clock when scored (epoch s).")
