"""Messages on the ``imaging.studies`` topic (key = athlete_id, value = JSON).

Two kinds share the topic, told apart by ``kind``:

* :class:`StudyEvent` (``"study.embedded"``), published by ingest after an embedding was
  stored. The worker invalidates its embedding cache for ``athlete_id``. It carries no
  pixels and no patient identity: code strings, a date, counts and hashes only.
* :class:`IngestRequest` (``"study.ingest"``), published by an automated pipeline that
  asks the ingest service to embed files it can read (paths on a shared volume). Pixels
  never travel through Kafka; only the paths do. The worker ignores these.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.imaging.meta import CodeString, Sha256Hex, StudyMeta
from schemas.exceptions import ValidationFailed
from schemas.frames import Ident
from schemas.rejected import Reason
from schemas.keys import embedding
from schemas.topics import IMAGING

SCHEMA_VERSION = 1


class StudyEvent(BaseModel):
    """A study was embedded and stored for an athlete (de-identified, no pixels)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="StudyEvent")

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["study.embedded"] = "study.embedded"
    athlete_id: Ident = Field(description="Pseudonymous athlete id given at ingest; the Kafka key.")
    encoder_version: str = Field(description="Encoder of the stored embedding (part of the Redis key).")
    redis_key: str = Field(description="emb:{encoder_version}:{athlete_id}")
    primary: bool = Field(description="True when this study became the embedding that scoring uses.")
    study_uid_sha256: Sha256Hex
    sop_uid_sha256: Sha256Hex
    study_date: date | None = None
    body_part: CodeString = "UNKNOWN"
    modality: CodeString
    n_images: int = Field(ge=1)
    slice_policy: str
    ingested_at: float


class IngestRequest(BaseModel):
    """An automated pipeline asks for files (or folders) to be embedded for an athlete."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="IngestRequest")

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["study.ingest"] = "study.ingest"
    athlete_id: Ident
    paths: list[str] = Field(min_length=1, max_length=10_000, description="Files or folders readable by the ingest service.")
    request_id: str | None = Field(None, max_length=128)


ImagingMessage = Annotated[StudyEvent | IngestRequest, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[StudyEvent | IngestRequest] = TypeAdapter(ImagingMessage)


def build_study_event(athlete_id: str, meta: StudyMeta, *, primary: bool) -> StudyEvent:
    """The event announcing that ``meta``'s study was stored for ``athlete_id``."""
    return StudyEvent(
        athlete_id=athlete_id,
        encoder_version=meta.encoder_version,
        redis_key=embedding(meta.encoder_version, athlete_id),
        primary=primary,
        study_uid_sha256=meta.study_uid_sha256,
        sop_uid_sha256=meta.sop_uid_sha256,
        study_date=meta.study_date,
        body_part=meta.body_part,
        modality=meta.modality,
        n_images=meta.n_images,
        slice_policy=meta.slice_policy,
        ingested_at=meta.ingested_at,
    )


def encode_message(msg: StudyEvent | IngestRequest) -> bytes:
    """Compact JSON bytes of a message."""
    return orjson.dumps(msg.model_dump(mode="json"))


def decode_message(raw: bytes) -> StudyEvent | IngestRequest:
    """Parse an ``imaging.studies`` value; raises ValidationFailed with the reason."""
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(Reason.NOT_JSON, f"imaging message is not JSON: {exc}") from None
    try:
        return _ADAPTER.validate_python(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(Reason.SCHEMA_INVALID, f"imaging message {where}: {first['msg']}") from None


def kafka_record(msg: StudyEvent | IngestRequest) -> tuple[str, bytes, bytes]:
    """(topic, key, value) for a producer: ``imaging.studies``, athlete id, JSON."""
    return IMAGING, msg.athlete_id.encode(), encode_message(msg)


async def publish(producer: Any, messages: list[StudyEvent] | list[IngestRequest]) -> int:
    """Send messages with a started aiokafka ``AIOKafkaProducer``; wait for the acks."""
    futures = []
    for msg in messages:
        topic, key, value = kafka_record(msg)
        futures.append(await producer.send(topic, value=value, key=key))
    for fut in futures:
        await fut
    return len(futures)
