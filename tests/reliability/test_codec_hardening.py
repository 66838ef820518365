"""The decoder's answers to the inputs that crashed the worker or got the wrong reason before
(issue 8), without a broker: fast checks of schemas/codec.py beside the end-to-end catalogue."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from schemas.channels import N_CHANNELS
from schemas.codec import BINARY_MAGIC, decode_frame_batch, encode_frames
from schemas.exceptions import ValidationFailed
from schemas.rejected import Reason


def doc(**over) -> dict:
    d = {"schema_version": 1, "channels_version": 1, "athlete_id": "a1", "session_id": "s1", "sensor_id": "imu",
         "seq": 0, "t0": 1_700_000_000.0, "hz": 100.0, "frames": [[0.5] * N_CHANNELS for _ in range(10)]}
    d.update(over)
    return d


def binary_with(**head) -> bytes:
    h = orjson.dumps({"schema_version": 1, "channels_version": 1, "athlete_id": "a1", "session_id": "s1",
                      "sensor_id": "imu", "seq": 0, "t0": 1.7e9, "hz": 100.0, "absent": [], "n": 1, **head})
    return BINARY_MAGIC + len(h).to_bytes(4, "little") + h + np.zeros(N_CHANNELS, "<f4").tobytes()


@pytest.mark.parametrize(("data", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000, Reason.NOT_JSON),                  # RecursionError before
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, Reason.NOT_JSON),
    (json.dumps(doc()).encode("utf-16"), Reason.NOT_JSON),               # non_finite before
    (json.dumps(doc()).encode("utf-32"), Reason.NOT_JSON),
    (orjson.dumps(doc(frames=[["NaN"] * N_CHANNELS] * 10)), Reason.SCHEMA_INVALID),  # missing_values before
    (orjson.dumps(doc(frames=[["0.5"] * N_CHANNELS] * 10)), Reason.SCHEMA_INVALID),  # accepted before
    (orjson.dumps(doc(frames=[[True] * N_CHANNELS] * 10)), Reason.SCHEMA_INVALID),   # accepted before
    (orjson.dumps(doc(t0="NaN")), Reason.SCHEMA_INVALID),                # crashed the windowing before
    (orjson.dumps(doc(seq="7")), Reason.SCHEMA_INVALID),
    (binary_with(n=True), Reason.SCHEMA_INVALID),                        # TypeError before
    (binary_with(t0="1.7e9"), Reason.SCHEMA_INVALID),
    (BINARY_MAGIC + b"\x01", Reason.BAD_ENCODING),
    (BINARY_MAGIC + (4).to_bytes(4, "little") + b"nope", Reason.BAD_ENCODING),
    (binary_with(n=2), Reason.SHAPE_MISMATCH),
    (orjson.dumps(doc(frames=[[0.5] * N_CHANNELS] * 1001)), Reason.TOO_LARGE),
])
def test_hardened_reasons(data, reason):
    with pytest.raises(ValidationFailed) as exc:
        decode_frame_batch(data, b"a1", expected_hz=100.0)
    assert exc.value.reason is reason, exc.value.detail


def test_too_large_names_the_limit():
    with pytest.raises(ValidationFailed) as exc:
        decode_frame_batch(orjson.dumps(doc(frames=[[0.5] * N_CHANNELS] * 1001)), b"a1")
    assert exc.value.detail == "more than 1000 frames"


def test_big_integers_and_integral_float_seq_still_decode():
    """orjson reads integers past 64 bits as floats: such a seq is not an integer (strict); 7.0 is."""
    with pytest.raises(ValidationFailed) as exc:
        decode_frame_batch(json.dumps(doc(seq=2**70)).encode(), b"a1")
    assert exc.value.reason is Reason.SCHEMA_INVALID
    assert decode_frame_batch(orjson.dumps(doc(seq=7.0)), b"a1").seq == 7  # JSON Schema: 7.0 is an integer
    assert decode_frame_batch(orjson.dumps(doc(t0=1_700_000_000)), b"a1").t0 == 1_700_000_000.0  # int for float


def test_valid_binary_still_decodes():
    raw = encode_frames(athlete_id="a1", session_id="s1", sensor_id="imu", seq=3, t0=1.7e9, hz=100.0,
                        frames=np.full((10, N_CHANNELS), 0.5), encoding="binary")
    assert decode_frame_batch(raw, b"a1").frames.shape == (10, N_CHANNELS)
