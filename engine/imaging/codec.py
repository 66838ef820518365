"""ImageFeatures <-> compact bytes in a Redis hash. Pure functions, no I/O.

Layout of ``emb:{encoder_version}:{athlete_id}`` (a hash, format 1):

| field | holds |
| --- | --- |
| ``fmt`` | ``1`` |
| ``encoder`` | encoder version (must equal the one in the key) |
| ``dtype`` | ``<f2`` (float16, default) or ``<f4`` |
| ``pooled`` | 2048 values, little-endian, 4 KiB as float16 |
| ``regions`` | 49 x 64 values row-major, 6.1 KiB as float16 |
| ``meta`` | :class:`~engine.imaging.meta.StudyMeta` JSON |
| ``policy`` | study policy that chose this study (``latest`` or ``body_part:KNEE,LEG``) |
| ``bp:{BODY}:pooled`` / ``bp:{BODY}:regions`` / ``bp:{BODY}:meta`` | newest study of each body part |

The un-prefixed fields are the embedding the worker uses (one HMGET per athlete).
"""

from __future__ import annotations

import numpy as np
import orjson

from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM, ImageFeatures
from engine.imaging.exceptions import BadEmbeddingRecord
from engine.imaging.meta import StudyMeta

FORMAT = b"1"
DTYPES = {"float16": "<f2", "float32": "<f4"}
FIELDS = ("fmt", "encoder", "dtype", "pooled", "regions", "meta")


def _bad(detail: str) -> BadEmbeddingRecord:
    return BadEmbeddingRecord(None, detail)


def bp_field(body_part: str, name: str) -> str:
    """Field of the per-body-part copy, e.g. ``bp:KNEE:pooled``."""
    return f"bp:{body_part}:{name}"


def pack(features: ImageFeatures, meta: StudyMeta, dtype: str = "float16") -> dict[str, bytes]:
    """The primary fields of a record: fmt, encoder, dtype, pooled, regions, meta."""
    if dtype not in DTYPES:
        raise _bad(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    if meta.encoder_version != features.encoder_version:
        raise _bad(f"meta encoder {meta.encoder_version!r} != features encoder {features.encoder_version!r}")
    code = DTYPES[dtype]
    pooled = np.asarray(features.pooled, dtype=np.float32)
    regions = np.asarray(features.regions, dtype=np.float32)
    if not (np.isfinite(pooled).all() and np.isfinite(regions).all()):
        raise _bad("embedding holds NaN or infinity")
    if dtype == "float16" and max(np.abs(pooled).max(), np.abs(regions).max()) > float(np.finfo(np.float16).max):
        raise _bad("embedding values overflow float16; store with dtype='float32'")
    return {
        "fmt": FORMAT,
        "encoder": features.encoder_version.encode(),
        "dtype": code.encode(),
        "pooled": pooled.astype(code).tobytes(),
        "regions": regions.astype(code).tobytes(),
        "meta": meta.model_dump_json().encode(),
    }


def unpack(
    values: list[bytes | None] | tuple[bytes | None, ...], encoder_version: str
) -> tuple[ImageFeatures, StudyMeta] | None:
    """Decode the :data:`FIELDS` values (HMGET order); None when the record does not exist.

    Raises BadEmbeddingRecord for a record that exists but is malformed or of another encoder.
    """
    if len(values) != len(FIELDS):
        raise _bad(f"expected {len(FIELDS)} fields, got {len(values)}")
    fmt, encoder, dtype, pooled, regions, meta = values
    if pooled is None and regions is None:
        return None
    if fmt != FORMAT:
        raise _bad(f"unknown record format {fmt!r}")
    if encoder is None or encoder.decode() != encoder_version:
        raise _bad(f"record of encoder {encoder!r}, expected {encoder_version!r}")
    code = (dtype or b"").decode()
    if code not in DTYPES.values():
        raise _bad(f"unknown dtype {dtype!r}")
    width = np.dtype(code).itemsize
    if pooled is None or len(pooled) != POOLED_DIM * width:
        raise _bad(f"pooled has {0 if pooled is None else len(pooled)} bytes, expected {POOLED_DIM * width}")
    if regions is None or len(regions) != N_REGIONS * REGION_DIM * width:
        raise _bad(f"regions has {0 if regions is None else len(regions)} bytes")
    try:
        study = StudyMeta.model_validate(orjson.loads(meta or b"null"))
    except Exception as exc:  # pydantic or orjson: the record is unreadable
        raise _bad(f"meta is not a valid StudyMeta: {exc}") from None
    feats = ImageFeatures(
        pooled=np.frombuffer(pooled, dtype=code).astype(np.float32),
        regions=np.frombuffer(regions, dtype=code).astype(np.float32).reshape(N_REGIONS, REGION_DIM),
        encoder_version=encoder_version,
    )
    return feats, study
