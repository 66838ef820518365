"""The worker's embedding cache: one Redis round trip per batch, TTL, invalidation, degraded mode.

``get_many(athlete_ids)`` answers from memory what is fresh and fetches the rest with ONE
pipeline of HMGETs (the records are hashes; a pipeline is one round trip, like MGET).
An athlete without an embedding is cached as ``None`` too, so a batch of sensor-only
athletes costs no Redis call until the TTL runs out or a new study arrives.

Invalidation: :meth:`EmbeddingCache.invalidate` (or :meth:`handle_message` with a raw
``imaging.studies`` value) drops an athlete's entry; a fetch that was in flight when the
invalidation happened does not write its older answer back (per-athlete generations).

Degraded mode: when Redis fails (connection refused, timeout, error reply), ``get_many``
still returns at once: fresh cache entries as usual, ``None`` for everything else, and it
skips Redis for ``retry_after_s`` before trying again. The first failure of an outage is
logged as a warning and the recovery as info; :attr:`stats` counts everything. Scoring
continues sensor-only for the athletes that got ``None``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from engine.features import ImageFeatures
from engine.imaging import codec
from engine.imaging.events import StudyEvent, decode_message
from engine.imaging.exceptions import BadEmbeddingRecord
from schemas.exceptions import ValidationFailed
from schemas.keys import embedding

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    calls: int = 0
    hits: int = 0
    misses: int = 0
    redis_calls: int = 0
    redis_errors: int = 0
    degraded_calls: int = 0
    bad_records: int = 0
    invalidations: int = 0
    evictions: int = 0


class EmbeddingCache:
    """In-process TTL cache of image embeddings in front of Redis (redis.asyncio).

    ``redis`` is a ``redis.asyncio.Redis`` or a zero-argument callable returning one (it
    is called on first use, inside the running event loop). ``timeout_s`` bounds one
    Redis round trip so a hung server cannot stall a scoring batch.
    """

    def __init__(
        self,
        redis: Any,
        encoder_version: str,
        *,
        ttl_s: float = 60.0,
        max_entries: int = 100_000,
        timeout_s: float = 0.5,
        retry_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis if not callable(redis) or _is_client(redis) else None
        self._factory = None if self._redis is not None else redis
        self.encoder_version = encoder_version
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, ImageFeatures | None]] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._down_since: float | None = None
        self._next_try = 0.0
        self.stats = CacheStats()

    # ------------------------------------------------------------------ state

    @property
    def degraded(self) -> bool:
        """True while Redis is considered unreachable."""
        return self._down_since is not None

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self, athlete_id: str) -> None:
        """Forget an athlete's entry (a new study arrived); in-flight fetches are discarded."""
        self._entries.pop(athlete_id, None)
        self._generation[athlete_id] = self._generation.get(athlete_id, 0) + 1
        self.stats.invalidations += 1

    def clear(self) -> None:
        for athlete_id in list(self._entries):
            self.invalidate(athlete_id)

    def handle_message(self, raw: bytes) -> StudyEvent | None:
        """Apply one ``imaging.studies`` value: a StudyEvent invalidates its athlete.

        Returns the event, or None for ingest requests and unreadable messages (logged).
        """
        try:
            msg = decode_message(raw)
        except ValidationFailed as exc:
            log.warning("imaging.studies: ignoring a message: %s", exc)
            return None
        if isinstance(msg, StudyEvent):
            self.invalidate(msg.athlete_id)
            return msg
        return None

    # ------------------------------------------------------------------ reads

    async def get(self, athlete_id: str) -> ImageFeatures | None:
        return (await self.get_many([athlete_id]))[athlete_id]

    async def get_many(self, athlete_ids: Iterable[str]) -> dict[str, ImageFeatures | None]:
        """Embeddings for these athletes (None: no image, or Redis unreachable)."""
        ids = list(dict.fromkeys(athlete_ids))
        self.stats.calls += 1
        now = self._clock()
        out: dict[str, ImageFeatures | None] = {}
        missing: list[str] = []
        for athlete_id in ids:
            entry = self._entries.get(athlete_id)
            if entry is not None and entry[0] > now:
                out[athlete_id] = entry[1]
                self.stats.hits += 1
            else:
                missing.append(athlete_id)
        self.stats.misses += len(missing)
        if not missing:
            return out
        if self._down_since is not None and now < self._next_try:
            self.stats.degraded_calls += 1
            out.update(dict.fromkeys(missing))
            return out
        generations = {a: self._generation.get(a, 0) for a in missing}
        try:
            rows = await self._fetch(missing)
        except (RedisError, OSError, TimeoutError) as exc:  # Redis or network failure: degrade
            self._went_down(exc, now)
            out.update(dict.fromkeys(missing))
            return out
        self._came_back()
        expires = self._clock() + self.ttl_s
        for athlete_id, values in zip(missing, rows):
            feats = self._decode(athlete_id, values)
            out[athlete_id] = feats
            if self._generation.get(athlete_id, 0) == generations[athlete_id]:
                self._put(athlete_id, expires, feats)
        return out

    # ------------------------------------------------------------------ internals

    async def _client(self) -> Any:
        if self._redis is None:
            made = self._factory()  # type: ignore[misc]
            self._redis = await made if inspect.isawaitable(made) else made
        return self._redis

    async def _fetch(self, athlete_ids: list[str]) -> list[list[bytes | None]]:
        client = await self._client()
        self.stats.redis_calls += 1

        async def round_trip() -> list[list[bytes | None]]:
            async with client.pipeline(transaction=False) as pipe:
                for athlete_id in athlete_ids:
                    pipe.hmget(embedding(self.encoder_version, athlete_id), list(codec.FIELDS))
                return await pipe.execute()

        return await asyncio.wait_for(round_trip(), timeout=self.timeout_s)

    def _decode(self, athlete_id: str, values: list[bytes | None]) -> ImageFeatures | None:
        try:
            record = codec.unpack(values, self.encoder_version)
        except BadEmbeddingRecord as exc:
            self.stats.bad_records += 1
            log.warning("%s: unusable embedding record, scoring sensor-only: %s",
                        embedding(self.encoder_version, athlete_id), exc.detail)
            return None
        return None if record is None else record[0]

    def _put(self, athlete_id: str, expires: float, feats: ImageFeatures | None) -> None:
        self._entries[athlete_id] = (expires, feats)
        self._entries.move_to_end(athlete_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def _went_down(self, exc: BaseException, now: float) -> None:
        self.stats.redis_errors += 1
        self._next_try = now + self.retry_after_s
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "Redis unreachable for image embeddings (%s: %s); scoring sensor-only, retrying every %.0f s",
                type(exc).__name__, exc, self.retry_after_s,
            )

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.info("Redis reachable again after %.1f s; image embeddings back", self._clock() - self._down_since)
            self._down_since = None

    async def aclose(self) -> None:
        """Close a client this cache created from a factory."""
        if self._factory is not None and self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def _is_client(obj: Any) -> bool:
    """A redis.asyncio client is callable-free in practice; tell it from a factory."""
    return hasattr(obj, "pipeline") and hasattr(obj, "hmget")
