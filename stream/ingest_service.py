"""``injury-monitor embed``: DICOM files or folders -> de-identified ResNet50 embeddings in Redis,
plus one StudyEvent per study on ``imaging.studies`` (no pixels, no PHI) so workers refresh.

``listen`` runs the same ingest for IngestRequest messages from automated pipelines, only
for paths under the configured ``allowed_roots``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import topics
from stream.kafka import client_kwargs
from stream.settings import ImagingSettings

log = logging.getLogger(__name__)


def _encoder(settings: ImagingSettings):
    from engine.imaging.encoder import ResNet50Encoder

    checkpoint = settings.encoder_checkpoint
    if checkpoint is None and (settings.model_dir / "encoder.pt").exists():
        checkpoint = settings.model_dir / "encoder.pt"  # the encoder the model was trained with
    return ResNet50Encoder(checkpoint)


def _store(settings: ImagingSettings):
    import redis

    from engine.imaging.store import RedisEmbeddingStore, StudyPolicy

    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = redis.Redis.from_url(settings.redis_url, **({"password": password} if password else {}))
    policy = StudyPolicy(settings.study_policy, prefer=tuple(settings.prefer_body_parts)) \
        if settings.study_policy == "body_part" else StudyPolicy(settings.study_policy)
    return RedisEmbeddingStore(client, policy=policy)


def _uid_key(settings: ImagingSettings) -> bytes | None:
    return settings.uid_key_file.read_bytes().strip() if settings.uid_key_file else None


async def publish_events(settings: ImagingSettings, events) -> None:
    """Send StudyEvents (or IngestRequests) to imaging.studies with a short-lived producer."""
    from engine.imaging.events import publish

    if not events:
        return
    producer = AIOKafkaProducer(**client_kwargs(settings), acks=1)
    await producer.start()
    try:
        await publish(producer, events)
    finally:
        await producer.stop()


def embed(settings: ImagingSettings, athlete_id: str, paths: list[Path], *, publish: bool = True):
    """Ingest ``paths`` for one athlete; returns the IngestReport (per-file outcomes)."""
    from engine.imaging.ingest import ingest_paths

    report = ingest_paths(paths, athlete_id, store=_store(settings), encoder=_encoder(settings),
                          uid_key=_uid_key(settings))
    if publish:
        asyncio.run(publish_events(settings, report.events))
    return report


async def listen(settings: ImagingSettings, stop: asyncio.Event | None = None) -> None:
    """Serve IngestRequest messages from ``imaging.studies`` until cancelled."""
    from engine.imaging.events import IngestRequest, decode_message
    from engine.imaging.ingest import ingest_request
    from schemas.exceptions import ValidationFailed
    from stream.admin import ensure_topics

    if not settings.allowed_roots:
        raise ValueError("the ingest listener needs INJURY_MONITOR_ALLOWED_ROOTS (folders it may read)")
    await ensure_topics(settings, 6, names=(topics.IMAGING,))
    encoder, store = _encoder(settings), _store(settings)
    consumer = AIOKafkaConsumer(topics.IMAGING, **client_kwargs(settings), group_id=settings.app_id,
                                auto_offset_reset="latest", session_timeout_ms=10000, heartbeat_interval_ms=1000)
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        while stop is None or not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for rec in records:
                    try:
                        msg = decode_message(rec.value or b"")
                    except ValidationFailed as exc:
                        log.warning("imaging.studies %s@%s: ignored (%s)", rec.partition, rec.offset, exc)
                        continue
                    if not isinstance(msg, IngestRequest):
                        continue
                    report = await loop.run_in_executor(None, lambda m=msg: ingest_request(
                        m, allowed_roots=settings.allowed_roots, store=store, encoder=encoder,
                        uid_key=_uid_key(settings)))
                    for line in report.lines():
                        log.info("%s", line)
                    await publish_events(settings, report.events)
    finally:
        await consumer.stop()
