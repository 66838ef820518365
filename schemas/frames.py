"""FrameBatch: what a sensor or gateway publishes on ``biomech.frames`` (key = athlete_id)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.channels import CHANNEL_NAMES, CHANNELS_VERSION, N_CHANNELS

SCHEMA_VERSION = 1
MAX_FRAMES_PER_BATCH = 1000

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Frame = Annotated[list[float | None], Field(min_length=N_CHANNELS, max_length=N_CHANNELS)]


class FrameBatch(BaseModel):
    """N consecutive frames of one athlete, sampled at ``hz`` from event time ``t0``.

    Frame ``i`` has event time ``t0 + i / hz``. Each frame holds one value per channel
    of :mod:`schemas.channels` (version ``channels_version``), in that order. A channel
    the sensor lacks is named in ``absent`` and its column holds ``null``.
    """

    model_config = ConfigDict(extra="forbid", title="FrameBatch")

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this message layout.")
    channels_version: Literal[1] = Field(CHANNELS_VERSION, description="Version of the channel list.")
    athlete_id: Ident = Field(description="Pseudonymous athlete id; must equal the Kafka message key.")
    session_id: Ident = Field(description="Training session id.")
    sensor_id: Ident = Field(description="Sensor or gateway id; (sensor_id, seq) identifies a batch.")
    seq: int = Field(ge=0, description="Per-sensor sequence number, increasing with t0. Retries reuse it.")
    t0: float = Field(description="Event time of the first frame, Unix epoch seconds (UTC).")
    hz: float = Field(gt=0, le=2000, description="Sample rate; the worker accepts its configured rate (100 Hz).")
    frames: list[Frame] = Field(
        min_length=1,
        max_length=MAX_FRAMES_PER_BATCH,
        description=f"N x {N_CHANNELS} values in the documented channel order: " + ", ".join(CHANNEL_NAMES),
    )
    absent: list[str] = Field(
        default_factory=list,
        description="Channels this sensor cannot measure; their columns hold null.",
    )
