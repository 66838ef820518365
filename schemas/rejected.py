"""Rejected on ``biomech.frames.dlq``: the original bytes, why, and where they came from."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Reason(StrEnum):
    NOT_JSON = "not_json"                  # bytes are not JSON (or not UTF-8), nor the binary encoding
    BAD_ENCODING = "bad_encoding"          # binary prefix, but the header is cut short or not a JSON object
    NON_FINITE = "non_finite"              # NaN / Infinity in the values
    SCHEMA_INVALID = "schema_invalid"      # wrong types or extra fields
    MISSING_FIELD = "missing_field"        # a required field is absent
    UNSUPPORTED_VERSION = "unsupported_version"  # schema_version / channels_version unknown
    CHANNEL_COUNT = "channel_count"        # a frame does not have one value per channel
    SHAPE_MISMATCH = "shape_mismatch"      # binary payload is not the header's n frames x 32 channels
    UNKNOWN_CHANNEL = "unknown_channel"    # `absent` names a channel not in the list
    MISSING_VALUES = "missing_values"      # null in a channel not declared absent
    OUT_OF_RANGE = "out_of_range"          # value outside the channel's physical range
    UNSUPPORTED_RATE = "unsupported_rate"  # hz differs from the stream's rate
    EMPTY_BATCH = "empty_batch"            # zero frames
    TOO_LARGE = "too_large"                # message bytes or frame count over the limit
    CLOCK_SKEW = "clock_skew"              # t0 too far in the future or the past
    KEY_MISMATCH = "key_mismatch"          # Kafka key differs from athlete_id
    DUPLICATE = "duplicate"                # (sensor_id, seq) or its frames already seen
    SEQ_REGRESSION = "seq_regression"      # seq order contradicts t0 order
    LATE = "late"                          # older than the grace period allows
    INTERNAL_ERROR = "internal_error"      # the worker failed on this message (a bug; logged with its traceback)


class Rejected(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Rejected")

    schema_version: Literal[1] = 1
    reason: Reason
    detail: str
    topic: str
    partition: int
    offset: int
    key: str | None = Field(None, description="The original key, decoded as UTF-8 with replacement.")
    original_b64: str = Field(description="The original message value, base64 (its first bytes when truncated).")
    original_size: int | None = Field(None, ge=0, description="Length of the original value in bytes.")
    original_truncated: bool = Field(
        False, description="True when original_b64 holds only the start of a value too large for the DLQ.")
    rejected_at: float
