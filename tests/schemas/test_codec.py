"""Codec: valid batches decode, each kind of bad message gets its own reason."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import orjson
import pytest

from schemas.channels import CHANNEL_NAMES, N_CHANNELS
from schemas.codec import decode_frame_batch, encode_frames
from schemas.exceptions import ValidationFailed
from schemas.generate import OUT
from schemas.rejected import Reason


def doc(**over):
    d = {"schema_version": 1, "channels_version": 1, "athlete_id": "a1", "session_id": "s1", "sensor_id": "imu",
         "seq": 0, "t0": 1_700_000_000.0, "hz": 100.0, "frames": [[0.5] * N_CHANNELS for _ in range(10)]}
    d.update(over)
    return d


def raw(**over) -> bytes:
    return orjson.dumps(doc(**over))


def reason_of(data: bytes, key: bytes | None = b"a1") -> Reason:
    with pytest.raises(ValidationFailed) as exc:
        decode_frame_batch(data, key, expected_hz=100.0)
    return exc.value.reason


def test_valid_batch_decodes_to_float32_frames():
    b = decode_frame_batch(raw(), b"a1", expected_hz=100.0)
    assert b.frames.shape == (10, N_CHANNELS) and b.frames.dtype == np.float32
    assert (b.athlete_id, b.seq, b.t0) == ("a1", 0, 1_700_000_000.0)


def test_absent_channels_become_nan_not_zero():
    frames = [[0.5] * N_CHANNELS for _ in range(10)]
    gi = CHANNEL_NAMES.index("grf_vertical_l")
    for f in frames:
        f[gi] = None
    b = decode_frame_batch(raw(frames=frames, absent=["grf_vertical_l"]), b"a1")
    assert np.isnan(b.frames[:, gi]).all() and not np.isnan(np.delete(b.frames, gi, axis=1)).any()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01 not json", Reason.NOT_JSON),
        (b'{"frames": [[NaN]]}', Reason.NON_FINITE),
        (b"[1, 2]", Reason.SCHEMA_INVALID),
        (raw(seq="seven"), Reason.SCHEMA_INVALID),
        (orjson.dumps({k: v for k, v in doc().items() if k != "athlete_id"}), Reason.MISSING_FIELD),
        (raw(schema_version=2), Reason.UNSUPPORTED_VERSION),
        (raw(frames=[[0.5] * (N_CHANNELS - 1)] * 10), Reason.CHANNEL_COUNT),
        (raw(absent=["elbow_flexion"]), Reason.UNKNOWN_CHANNEL),
        (raw(frames=[[None] * N_CHANNELS] * 10), Reason.MISSING_VALUES),
        (raw(frames=[[1e6] * N_CHANNELS] * 10), Reason.OUT_OF_RANGE),
        (raw(hz=120.0), Reason.UNSUPPORTED_RATE),
        (raw(frames=[]), Reason.EMPTY_BATCH),
        (raw(frames=[[0.5] * N_CHANNELS] * 1001), Reason.TOO_LARGE),
        (b"{" + b" " * 1_000_001 + b"}", Reason.TOO_LARGE),
    ],
)
def test_each_bad_message_has_its_reason(data, reason):
    assert reason_of(data) is reason


def test_key_must_match_athlete():
    assert reason_of(raw(), key=b"someone-else") is Reason.KEY_MISMATCH


def test_fast_encoder_output_is_valid_against_the_committed_json_schema():
    schema = json.loads((OUT / "frame_batch.schema.json").read_text())
    frames = np.random.default_rng(0).uniform(0, 1, size=(10, N_CHANNELS)).astype(np.float32)
    frames[:, 0] = np.nan
    body = encode_frames(athlete_id="a1", session_id="s1", sensor_id="imu", seq=3, t0=1.7e9, hz=100.0,
                         frames=frames, absent=[CHANNEL_NAMES[0]])
    jsonschema.validate(orjson.loads(body), schema)
    assert decode_frame_batch(body, b"a1").seq == 3


def test_json_schema_alone_rejects_a_short_frame():
    schema = json.loads((OUT / "frame_batch.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc(frames=[[0.5] * 3]), schema)


def binary(n=10, **over) -> bytes:
    frames = np.random.default_rng(1).uniform(0, 1, size=(n, N_CHANNELS)).astype(np.float32)
    kw = {"athlete_id": "a1", "session_id": "s1", "sensor_id": "imu", "seq": 4, "t0": 1.7e9, "hz": 100.0}
    kw.update(over)
    return encode_frames(frames=frames, encoding="binary", **kw)


def test_binary_and_json_encodings_decode_to_the_same_batch():
    frames = np.random.default_rng(1).uniform(0, 1, size=(10, N_CHANNELS)).astype(np.float32)
    frames[:, 3] = np.nan
    kw = {"athlete_id": "a1", "session_id": "s1", "sensor_id": "imu", "seq": 4, "t0": 1.7e9, "hz": 100.0,
          "frames": frames, "absent": [CHANNEL_NAMES[3]]}
    j = decode_frame_batch(encode_frames(**kw), b"a1")
    b = decode_frame_batch(encode_frames(encoding="binary", **kw), b"a1")
    assert len(encode_frames(encoding="binary", **kw)) < len(encode_frames(**kw)) / 2
    assert np.array_equal(j.frames, b.frames, equal_nan=True) and (j.seq, j.absent) == (b.seq, b.absent)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (binary()[:-4], Reason.SHAPE_MISMATCH),                     # payload cut short
        (b"IMF\x01\xff\xff\x00\x00{}", Reason.BAD_ENCODING),        # header runs past the end
        (binary(athlete_id="bad id!"), Reason.SCHEMA_INVALID),
        (binary(n=0), Reason.EMPTY_BATCH),
        (binary(hz=50.0), Reason.UNSUPPORTED_RATE),
    ],
)
def test_binary_encoding_keeps_the_validation_rules(data, reason):
    assert reason_of(data) is reason
