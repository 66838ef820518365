"""Medical imaging: DICOM ingest, de-identification, ResNet50 embeddings, Redis store and cache.

Light imports only here (the worker imports :class:`EmbeddingCache` and the events); the
DICOM reader, the encoder (torch) and the synthetic renderer load on first attribute use.

* :func:`engine.imaging.ingest.ingest_paths` - files/folders -> embeddings in Redis
* :class:`engine.imaging.cache.EmbeddingCache` - the worker's per-batch cache
* :class:`engine.imaging.events.StudyEvent` - ``imaging.studies`` messages
* :func:`engine.imaging.store.store_embedding` / ``load_embedding``
* :class:`engine.imaging.encoder.ResNet50Encoder`
* :func:`engine.imaging.synthetic.render_radiograph`

See docs/imaging.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.imaging.cache import CacheStats, EmbeddingCache
from engine.imaging.events import IngestRequest, StudyEvent, build_study_event, decode_message, encode_message, kafka_record
from engine.imaging.exceptions import ImagingError
from engine.imaging.meta import StudyMeta
from engine.imaging.store import RedisEmbeddingStore, StudyPolicy, load_embedding, store_embedding

_LAZY = {
    "ingest_paths": "engine.imaging.ingest",
    "ingest_request": "engine.imaging.ingest",
    "IngestReport": "engine.imaging.ingest",
    "FileOutcome": "engine.imaging.ingest",
    "ResNet50Encoder": "engine.imaging.encoder",
    "encoder_version": "engine.imaging.encoder",
    "render_radiograph": "engine.imaging.synthetic",
    "draw_radiograph": "engine.imaging.synthetic",
    "Lesion": "engine.imaging.synthetic",
}

__all__ = [
    "CacheStats", "EmbeddingCache", "ImagingError", "IngestRequest", "RedisEmbeddingStore", "StudyEvent",
    "StudyMeta", "StudyPolicy", "build_study_event", "decode_message", "encode_message", "kafka_record",
    "load_embedding", "store_embedding", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.imaging' has no attribute {name!r}")
