from __future__ import annotations

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.imaging.exceptions import BadEmbeddingRecord, EmbeddingStoreError, InvalidAthleteId
from engine.imaging.store import (
    RedisEmbeddingStore,
    StudyPolicy,
    body_parts,
    forget_athlete,
    load_embedding,
    store_embedding,
)
from stream.embedded import free_port

ENC = "resnet50-rand0-p0"


def test_store_and_load(sync_redis, make_features, make_meta):
    f = make_features(1)
    result = store_embedding(sync_redis, "ath-1", f, make_meta())
    assert result.key == "emb:resnet50-rand0-p0:ath-1" and result.primary and result.body_part_updated
    back, meta = load_embedding(sync_redis, ENC, "ath-1")
    assert np.allclose(back.pooled, f.pooled, rtol=1e-3, atol=1e-3) and meta.body_part == "KNEE"
    assert sync_redis.hget(result.key, "policy") == b"latest"
    assert load_embedding(sync_redis, ENC, "nobody") is None
    assert load_embedding(sync_redis, "resnet50-other-p0", "ath-1") is None  # another encoder never mixes
    # compact: the record scoring reads is about 10 KiB (float16), its body-part copy as much again
    primary = sync_redis.hmget(result.key, ["pooled", "regions", "meta"])
    assert sum(len(v) for v in primary) < 11 * 1024
    assert sum(len(v) for v in sync_redis.hgetall(result.key).values()) < 22 * 1024


def test_latest_policy_ignores_back_filled_older_studies(sync_redis, make_features, make_meta):
    new, old = make_features(1), make_features(2)
    store_embedding(sync_redis, "ath-1", new, make_meta(study_date="2024-03-01", study_uid_sha256="1" * 64))
    r = store_embedding(sync_redis, "ath-1", old, make_meta(study_date="2023-01-01", study_uid_sha256="2" * 64, ingested_at=2e9))
    assert not r.primary and not r.body_part_updated
    _, meta = load_embedding(sync_redis, ENC, "ath-1")
    assert meta.study_uid_sha256 == "1" * 64
    newer = store_embedding(sync_redis, "ath-1", old, make_meta(study_date="2024-05-01", study_uid_sha256="3" * 64))
    assert newer.primary
    assert load_embedding(sync_redis, ENC, "ath-1")[1].study_uid_sha256 == "3" * 64


def test_body_part_policy_prefers_lower_limb_and_keeps_every_body_part(sync_redis, make_features, make_meta):
    policy = StudyPolicy(mode="body_part", prefer=("KNEE", "LEG"))
    store = RedisEmbeddingStore(sync_redis, policy=policy)
    knee, chest, leg = make_features(1), make_features(2), make_features(3)
    assert store.put("ath-2", knee, make_meta(body_part="KNEE", study_date="2022-01-01", study_uid_sha256="1" * 64)).primary
    # a newer chest study does not replace the knee under this policy ...
    assert not store.put("ath-2", chest, make_meta(body_part="CHEST", study_date="2024-01-01", study_uid_sha256="2" * 64)).primary
    assert load_embedding(sync_redis, ENC, "ath-2")[1].body_part == "KNEE"
    # ... but it is kept under its body part
    assert body_parts(sync_redis, ENC, "ath-2") == ["CHEST", "KNEE"]
    chest_back, chest_meta = load_embedding(sync_redis, ENC, "ath-2", body_part="CHEST")
    assert chest_meta.study_uid_sha256 == "2" * 64 and np.allclose(chest_back.pooled, chest.pooled, atol=0.05)
    # a newer knee study replaces the older knee; a LEG study ranks after KNEE
    assert store.put("ath-2", knee, make_meta(body_part="KNEE", study_date="2023-01-01", study_uid_sha256="3" * 64)).primary
    assert not store.put("ath-2", leg, make_meta(body_part="LEG", study_date="2025-01-01", study_uid_sha256="4" * 64)).primary
    assert sync_redis.hget("emb:resnet50-rand0-p0:ath-2", "policy") == b"body_part:KNEE,LEG"
    # under "latest" the same sequence ends with the LEG study
    assert StudyPolicy().prefers(make_meta(body_part="LEG", study_date="2025-01-01"), make_meta(study_date="2023-01-01"))


def test_forget_athlete_deletes_every_encoder(sync_redis, make_features, make_meta):
    store_embedding(sync_redis, "ath-3", make_features(), make_meta())
    store_embedding(sync_redis, "ath-3", make_features(encoder="resnet50-x-p1"), make_meta(encoder="resnet50-x-p1"))
    store_embedding(sync_redis, "ath-4", make_features(), make_meta())
    assert forget_athlete(sync_redis, "ath-3") == 2
    assert sync_redis.keys("emb:*") == [b"emb:resnet50-rand0-p0:ath-4"]


def test_bad_athlete_ids_and_corrupt_records(sync_redis, make_features, make_meta):
    for bad in ("", "Doe Jane", "a:b", "x" * 65, "../etc"):
        with pytest.raises(InvalidAthleteId):
            store_embedding(sync_redis, bad, make_features(), make_meta())
    sync_redis.hset("emb:resnet50-rand0-p0:ath-5", mapping={"fmt": b"1", "encoder": ENC.encode(), "dtype": b"<f2",
                                                              "pooled": b"xx", "regions": b"yy", "meta": b"{}"})
    with pytest.raises(BadEmbeddingRecord, match="emb:resnet50-rand0-p0:ath-5"):
        load_embedding(sync_redis, ENC, "ath-5")
    # a corrupt record is replaced by the next good study
    assert store_embedding(sync_redis, "ath-5", make_features(), make_meta()).primary
    assert load_embedding(sync_redis, ENC, "ath-5") is not None


def test_unreachable_redis_raises_a_store_error(make_features, make_meta):
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(EmbeddingStoreError, match="Redis unavailable"):
        store_embedding(client, "ath-1", make_features(), make_meta())
