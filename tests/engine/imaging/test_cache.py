from __future__ import annotations

import asyncio
import logging

import numpy as np
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engine.imaging.cache import EmbeddingCache
from engine.imaging.events import build_study_event, encode_message
from engine.imaging.store import store_embedding
from stream.embedded import EmbeddedRedis, free_port

ENC = "resnet50-rand0-p0"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _factory(url: str):
    return lambda: aredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)


def _hmget_calls(sync_redis) -> int:
    return int(sync_redis.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))


def test_one_round_trip_per_batch_and_negative_caching(redis_url, sync_redis, make_features, make_meta):
    feats = {a: make_features(i) for i, a in enumerate(["a1", "a2", "a3"])}
    for a, f in feats.items():
        store_embedding(sync_redis, a, f, make_meta())
    sync_redis.config_resetstat()
    clock = Clock()

    async def run():
        cache = EmbeddingCache(_factory(redis_url), ENC, ttl_s=30, clock=clock)
        first = await cache.get_many(["a1", "a2", "a3", "nobody", "a1"])
        second = await cache.get_many(["a3", "nobody", "a2"])
        await cache.aclose()
        return cache, first, second

    cache, first, second = asyncio.run(run())
    assert set(first) == {"a1", "a2", "a3", "nobody"} and first["nobody"] is None
    for a, f in feats.items():
        assert first[a].encoder_version == ENC
        assert np.allclose(first[a].pooled, f.pooled, rtol=1e-3, atol=1e-3)
    assert second["a2"] is first["a2"] and second["a3"] is first["a3"] and second["nobody"] is None
    assert cache.stats.redis_calls == 1 and _hmget_calls(sync_redis) == 4  # one pipeline, one HMGET per athlete
    assert cache.stats.hits == 3 and cache.stats.misses == 4


def test_ttl_expiry_and_invalidation_by_study_event(redis_url, sync_redis, make_features, make_meta):
    old, new = make_features(1), make_features(2)
    store_embedding(sync_redis, "a1", old, make_meta(study_date="2023-01-01"))
    clock = Clock()

    async def run():
        cache = EmbeddingCache(_factory(redis_url), ENC, ttl_s=30, clock=clock)
        got = [await cache.get("a1")]
        meta = make_meta(study_date="2024-06-01", study_uid_sha256="c" * 64)
        store_embedding(sync_redis, "a1", new, meta)
        got.append(await cache.get("a1"))           # still cached: old
        event = cache.handle_message(encode_message(build_study_event("a1", meta, primary=True)))
        got.append(await cache.get("a1"))           # invalidated: new
        clock.t += 31
        store_embedding(sync_redis, "a2", new, meta)
        got.append(await cache.get("a2"))
        calls = cache.stats.redis_calls
        await cache.get_many(["a1", "a2"])          # a1 expired -> refetched, a2 fresh
        return cache, got, event, cache.stats.redis_calls - calls

    cache, got, event, extra_calls = asyncio.run(run())
    assert np.allclose(got[0].pooled, old.pooled, atol=0.05) and np.allclose(got[1].pooled, old.pooled, atol=0.05)
    assert np.allclose(got[2].pooled, new.pooled, atol=0.05)
    assert event is not None and event.athlete_id == "a1" and cache.stats.invalidations == 1
    assert extra_calls == 1
    assert cache.handle_message(b"garbage") is None


def test_invalidation_during_a_fetch_is_not_overwritten(redis_url, sync_redis, make_features, make_meta):
    store_embedding(sync_redis, "a1", make_features(1), make_meta())

    async def run():
        cache = EmbeddingCache(_factory(redis_url), ENC)
        await cache.get("zz")                       # connect first
        task = asyncio.create_task(cache.get_many(["a1"]))
        await asyncio.sleep(0)                      # the fetch is now waiting on Redis
        cache.invalidate("a1")
        result = await task
        return cache, result

    cache, result = asyncio.run(run())
    assert result["a1"] is not None                 # the caller still gets the answer ...
    assert "a1" not in cache._entries                # ... but it is not cached past the invalidation


def test_degraded_mode_when_redis_is_down_and_recovery(caplog, make_features, make_meta):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    clock = Clock()
    caplog.set_level(logging.INFO, logger="engine.imaging.cache")

    async def run():
        cache = EmbeddingCache(_factory(url), ENC, ttl_s=30, retry_after_s=5, clock=clock)
        down = [await cache.get_many(["a1", "a2"]) for _ in range(3)]   # one try, then skipped
        assert cache.degraded and cache.stats.redis_errors == 1 and cache.stats.degraded_calls == 2
        clock.t += 6
        down.append(await cache.get_many(["a1"]))                     # retried, still down
        assert cache.stats.redis_errors == 2
        with EmbeddedRedis(port=port) as server:
            import redis

            sync = redis.Redis.from_url(server.url)
            store_embedding(sync, "a1", make_features(1), make_meta())
            clock.t += 6
            up = await cache.get_many(["a1", "a2"])
            await cache.aclose()
        return cache, down, up

    cache, down, up = asyncio.run(run())
    assert all(v is None for d in down for v in d.values())
    assert up["a1"] is not None and up["a2"] is None and not cache.degraded
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.getMessage()]
    assert len(warnings) == 1                                         # logged once per outage
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_fresh_entries_survive_an_outage(make_features, make_meta):
    clock = Clock()

    async def run():
        with EmbeddedRedis() as server:
            import redis

            store_embedding(redis.Redis.from_url(server.url), "a1", make_features(1), make_meta())
            cache = EmbeddingCache(_factory(server.url), ENC, ttl_s=30, clock=clock)
            await cache.get("a1")
        # the server is gone now
        result = await cache.get_many(["a1", "a2"])
        return cache, result

    cache, result = asyncio.run(run())
    assert result["a1"] is not None and result["a2"] is None and cache.degraded


def test_bad_record_scores_sensor_only(redis_url, sync_redis, caplog):
    sync_redis.hset(f"emb:{ENC}:a9", mapping={"fmt": b"1", "encoder": ENC.encode(), "dtype": b"<f2",
                                              "pooled": b"short", "regions": b"short", "meta": b"{}"})

    async def run():
        cache = EmbeddingCache(_factory(redis_url), ENC)
        return cache, await cache.get("a9")

    cache, result = asyncio.run(run())
    assert result is None and cache.stats.bad_records == 1
    assert f"emb:{ENC}:a9" in caplog.text


def test_capacity_is_bounded(redis_url):
    async def run():
        cache = EmbeddingCache(aredis.Redis.from_url(redis_url), ENC, max_entries=3)
        await cache.get_many([f"x{i}" for i in range(5)])
        return cache

    cache = asyncio.run(run())
    assert len(cache) == 3 and cache.stats.evictions == 2
