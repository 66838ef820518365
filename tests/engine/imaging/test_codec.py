from __future__ import annotations

import numpy as np
import pytest

from engine.imaging import codec
from engine.imaging.exceptions import BadEmbeddingRecord

ENC = "resnet50-rand0-p0"


def _values(fields: dict[str, bytes]) -> list[bytes | None]:
    return [fields.get(f) for f in codec.FIELDS]


def test_float16_round_trip_is_compact_and_close(make_features, make_meta):
    f = make_features()
    fields = codec.pack(f, make_meta())
    assert len(fields["pooled"]) == 2048 * 2 and len(fields["regions"]) == 49 * 64 * 2
    back, meta = codec.unpack(_values(fields), ENC)
    assert back.pooled.dtype == np.float32 and back.regions.shape == (49, 64)
    assert np.allclose(back.pooled, f.pooled, rtol=1e-3, atol=1e-3)
    assert np.allclose(back.regions, f.regions, rtol=1e-3, atol=1e-2)
    assert meta == make_meta()


def test_float32_round_trip_is_exact(make_features, make_meta):
    f = make_features(1)
    back, _ = codec.unpack(_values(codec.pack(f, make_meta(), dtype="float32")), ENC)
    assert np.array_equal(back.pooled, f.pooled) and np.array_equal(back.regions, f.regions)


def test_absent_record_is_none():
    assert codec.unpack([None] * len(codec.FIELDS), ENC) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("encoder", b"resnet50-abcdef12-p0", "encoder"), ("pooled", b"\x00" * 10, "pooled"), ("regions", b"\x00" * 6000, "regions"),
     ("fmt", b"9", "format"), ("dtype", b"<f8", "dtype"), ("meta", b"{}", "StudyMeta")],
)
def test_malformed_records_are_rejected(field, value, message, make_features, make_meta):
    fields = codec.pack(make_features(), make_meta())
    fields[field] = value
    with pytest.raises(BadEmbeddingRecord, match=message):
        codec.unpack(_values(fields), ENC)


def test_pack_refuses_what_cannot_be_stored(make_features, make_meta):
    with pytest.raises(BadEmbeddingRecord, match="overflow"):
        codec.pack(make_features(scale=1e6), make_meta())
    bad = make_features()
    bad.pooled[3] = np.nan
    with pytest.raises(BadEmbeddingRecord, match="NaN"):
        codec.pack(bad, make_meta())
    with pytest.raises(BadEmbeddingRecord, match="encoder"):
        codec.pack(make_features(), make_meta(encoder="other"))


def test_meta_forbids_unknown_fields_and_raw_values(make_meta):
    with pytest.raises(ValueError):
        make_meta(patient_name="Doe^Jane")
    with pytest.raises(ValueError):
        make_meta(study_uid_sha256="1.2.840.113619.2.55")  # a raw UID is not a hash
    with pytest.raises(ValueError):
        make_meta(body_part="Doe^Jane")
