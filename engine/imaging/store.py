"""Store and load embeddings in Redis (sync, for ingest and tools; the worker uses the cache).

One hash per athlete and encoder, ``emb:{encoder_version}:{athlete_id}`` (layout in
:mod:`engine.imaging.codec`). Its un-prefixed fields hold the embedding that scoring uses,
chosen by a :class:`StudyPolicy`; ``bp:{BODY}:*`` fields keep the newest study of every
body part, whatever the policy. Updates are atomic (WATCH / MULTI), so two ingests of
the same athlete cannot interleave.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from engine.features import ImageFeatures
from engine.imaging import codec
from engine.imaging.exceptions import BadEmbeddingRecord, EmbeddingStoreError, InvalidAthleteId
from engine.imaging.meta import StudyMeta
from schemas.keys import embedding

log = logging.getLogger(__name__)

ATHLETE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # schemas.frames.Ident
LOWER_LIMB = ("KNEE", "LEG", "LOWER_LEG", "TIBIA", "FIBULA", "ANKLE", "FOOT", "THIGH", "FEMUR", "HIP", "EXTREMITY")


def check_athlete_id(athlete_id: str) -> str:
    """The id itself, or InvalidAthleteId (same pattern as FrameBatch.athlete_id)."""
    if not isinstance(athlete_id, str) or not ATHLETE_ID.match(athlete_id):
        raise InvalidAthleteId(None, f"athlete id {athlete_id!r} must match {ATHLETE_ID.pattern}")
    return athlete_id


@dataclass(frozen=True)
class StudyPolicy:
    """Which of an athlete's studies is the embedding scoring uses.

    * ``latest``: the study with the newest Study Date (ingest time breaks ties; a study
      without a date counts as the oldest). Back-filling an old study never replaces a
      newer one.
    * ``body_part``: the newest study of the most preferred body part in ``prefer``
      (first = most preferred); body parts not listed rank after all listed ones.
    """

    mode: Literal["latest", "body_part"] = "latest"
    prefer: tuple[str, ...] = LOWER_LIMB

    def describe(self) -> str:
        return "latest" if self.mode == "latest" else "body_part:" + ",".join(self.prefer)

    def _priority(self, body_part: str) -> int:
        return self.prefer.index(body_part) if body_part in self.prefer else len(self.prefer)

    def prefers(self, new: StudyMeta, current: StudyMeta | None) -> bool:
        """Should ``new`` replace ``current`` as the primary embedding?"""
        if current is None:
            return True
        if self.mode == "body_part":
            pn, pc = self._priority(new.body_part), self._priority(current.body_part)
            if pn != pc:
                return pn < pc
        return new.rank() >= current.rank()


@dataclass(frozen=True)
class StoreResult:
    key: str
    primary: bool        # became the embedding scoring uses
    body_part_updated: bool  # became the newest copy of its body part


def _meta_or_none(raw: bytes | None, key: str) -> StudyMeta | None:
    if raw is None:
        return None
    try:
        return StudyMeta.model_validate(orjson.loads(raw))
    except Exception:
        log.warning("%s: stored study metadata is unreadable; it will be replaced", key)
        return None


def store_embedding(
    client: Any,
    athlete_id: str,
    features: ImageFeatures,
    meta: StudyMeta,
    *,
    policy: StudyPolicy = StudyPolicy(),
    dtype: str = "float16",
    retries: int = 8,
) -> StoreResult:
    """Write one study's embedding for an athlete with a sync ``redis.Redis`` client."""
    from redis.exceptions import RedisError, WatchError

    check_athlete_id(athlete_id)
    key = embedding(features.encoder_version, athlete_id)
    fields = codec.pack(features, meta, dtype)
    bp = meta.body_part
    for _ in range(retries):
        try:
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(key)
                cur_raw, cur_bp_raw = pipe.hmget(key, ["meta", codec.bp_field(bp, "meta")])
                primary = policy.prefers(meta, _meta_or_none(cur_raw, key))
                cur_bp = _meta_or_none(cur_bp_raw, key)
                bp_newer = cur_bp is None or meta.rank() >= cur_bp.rank()
                mapping: dict[str, bytes] = {"fmt": fields["fmt"], "encoder": fields["encoder"]}
                if bp_newer:
                    for name in ("dtype", "pooled", "regions", "meta"):
                        mapping[codec.bp_field(bp, name)] = fields[name]
                if primary:
                    mapping.update(fields)
                    mapping["policy"] = policy.describe().encode()
                pipe.multi()
                pipe.hset(key, mapping=mapping)
                pipe.execute()
                return StoreResult(key=key, primary=primary, body_part_updated=bp_newer)
        except WatchError:
            continue
        except (RedisError, OSError) as exc:
            raise EmbeddingStoreError(None, f"Redis unavailable while storing {key}: {type(exc).__name__}: {exc}") from None
    raise EmbeddingStoreError(None, f"{key}: concurrent updates, gave up after {retries} tries")


def load_embedding(
    client: Any, encoder_version: str, athlete_id: str, *, body_part: str | None = None
) -> tuple[ImageFeatures, StudyMeta] | None:
    """The primary embedding (or a body part's newest), None when there is none."""
    key = embedding(encoder_version, athlete_id)
    names = list(codec.FIELDS)
    if body_part is not None:
        names = ["fmt", "encoder"] + [codec.bp_field(body_part, n) for n in ("dtype", "pooled", "regions", "meta")]
    values = client.hmget(key, names)
    try:
        return codec.unpack(values, encoder_version)
    except BadEmbeddingRecord as exc:
        raise BadEmbeddingRecord(None, f"{key}: {exc.detail}") from None


def body_parts(client: Any, encoder_version: str, athlete_id: str) -> list[str]:
    """Body parts with a stored study for this athlete."""
    key = embedding(encoder_version, athlete_id)
    out = set()
    for field in client.hkeys(key):
        name = field.decode() if isinstance(field, bytes) else str(field)
        if name.startswith("bp:") and name.endswith(":meta"):
            out.add(name[3:-5])
    return sorted(out)


def forget_athlete(client: Any, athlete_id: str) -> int:
    """Delete every stored embedding of an athlete, for all encoders (right to erasure)."""
    check_athlete_id(athlete_id)
    keys = list(client.scan_iter(match=embedding("*", athlete_id), count=500))
    return int(client.delete(*keys)) if keys else 0


class RedisEmbeddingStore:
    """What :func:`engine.imaging.ingest.ingest_paths` writes to: a client and a policy."""

    def __init__(self, client: Any, *, policy: StudyPolicy = StudyPolicy(), dtype: str = "float16") -> None:
        self.client = client
        self.policy = policy
        self.dtype = dtype

    def put(self, athlete_id: str, features: ImageFeatures, meta: StudyMeta) -> StoreResult:
        return store_embedding(self.client, athlete_id, features, meta, policy=self.policy, dtype=self.dtype)
