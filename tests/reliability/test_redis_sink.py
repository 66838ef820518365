"""RedisSink under outages, against a real redis-server that the test stops, freezes and restarts.

In-process (no worker): the sink's backlog, its order, its bound, its recovery and the
re-writing of states and raised alerts after a restart that lost the data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
import redis

from schemas import keys
from schemas.alerts import Alert
from schemas.risk import RiskScore, score_id
from stream.alerting import AlertState
from stream.embedded import EmbeddedRedis
from stream.sinks.base import Scored
from stream.sinks.redis import RedisSink, connect

pytestmark = pytest.mark.integration
T0 = 1_700_000_000.0


def scored(athlete: str, i: int) -> Scored:
    end = T0 + 2.0 + 0.5 * i
    s = RiskScore(score_id=score_id(athlete, end), athlete_id=athlete, session_id="s", window_start=end - 2.0,
                  window_end=end, risk=0.7, level="high", model_version="m", processing_ms=1.0, latency_ms=1.0,
                  scored_at=time.time())
    return Scored(s, {"window_end": end, "t": [0.0], "channels": {}, "attention": [1.0]})


def raised(athlete: str, i: int) -> Alert:
    end = T0 + 2.0 + 0.5 * i
    return Alert(alert_id=score_id(athlete, end), athlete_id=athlete, session_id="s", state="raised", at=end,
                 risk=0.7, raise_threshold=0.6, clear_threshold=0.45, windows=[end - 0.5, end], emitted_at=time.time())


def state(i: int, up: bool = True) -> AlertState:
    return AlertState(raised=up, alert_id="x" if up else None, streak=[], last_end=T0 + 2.0 + 0.5 * i)


def ends(r: redis.Redis, athlete: str) -> list[float]:
    return [json.loads(f[b"v"])["window_end"] for _, f in r.xrange(keys.risk_history(athlete))]


async def until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_outage_backlog_is_written_in_order_when_redis_returns_empty():
    async def main():
        srv = EmbeddedRedis().start()
        port = srv.port
        sink = RedisSink(connect(srv.url), retry_s=0.1, check_s=0.0)
        r = redis.Redis.from_url(srv.url)
        try:
            await sink.write([scored("a", 0)], [raised("a", 0)], {"a": state(0)})
            assert ends(r, "a") == [T0 + 2.0] and r.hexists(keys.ALERTS_ACTIVE, "a")

            srv.stop()  # an outage; the restarted server will be empty (no persistence)
            with pytest.raises(Exception):
                await sink.write([scored("a", 1)], [], {"a": state(1)})
            t = time.monotonic()
            for i in range(2, 40):  # later writes return at once, queued behind the first
                await sink.write([scored("a", i), scored("b", i)], [], {"a": state(i), "b": state(i, False)})
            assert time.monotonic() - t < 2.0 and sink.backlog == 1 + 2 * 38

            srv2 = EmbeddedRedis(port=port).start()
            try:
                await until(lambda: sink.backlog == 0, 10, "the backlog to drain")
                await until(lambda: r.hexists(keys.ALERTS_ACTIVE, "a"), 5, "the raised alert re-written")
                assert ends(r, "a") == [T0 + 2.0 + 0.5 * i for i in range(1, 40)]
                assert ends(r, "b") == [T0 + 2.0 + 0.5 * i for i in range(2, 40)]
                st = json.loads(r.hget(keys.alert_state("a"), "s"))
                assert st["raised"] and st["last_end"] == T0 + 2.0 + 0.5 * 39
                assert json.loads(r.hget(keys.ALERTS_ACTIVE, "a"))["alert_id"] == score_id("a", T0 + 2.0)
                assert not r.hexists(keys.ALERTS_ACTIVE, "b")
                assert sink.restarts == 1 and sink.dropped == 0 and sink.failures >= 1
                # back to normal: one write, written at once
                await sink.write([scored("a", 40)], [], {"a": state(40)})
                assert ends(r, "a")[-1] == T0 + 2.0 + 0.5 * 40 and sink.backlog == 0
            finally:
                srv2.stop()
        finally:
            await sink.close()
            srv.stop()

    asyncio.run(main())


def test_backlog_is_bounded_drops_the_oldest_scores_and_keeps_alerts():
    async def main():
        srv = EmbeddedRedis().start()
        port = srv.port
        sink = RedisSink(connect(srv.url), backlog_cap=50, retry_s=0.1)
        r = redis.Redis.from_url(srv.url)
        try:
            srv.stop()
            with pytest.raises(Exception):
                await sink.write([scored("a", 0)], [raised("a", 0)], {"a": state(0)})
            for i in range(1, 200):
                await sink.write([scored("a", i)], [], {"a": state(i)})
            assert sink.backlog == 50 and sink.dropped == 150
            srv2 = EmbeddedRedis(port=port).start()
            try:
                await until(lambda: sink.backlog == 0, 10, "the backlog to drain")
                assert ends(r, "a") == [T0 + 2.0 + 0.5 * i for i in range(150, 200)]  # the newest 50
                assert len(r.xrange(keys.alert_history("a"))) == 1  # the alert was not dropped
            finally:
                srv2.stop()
        finally:
            await sink.close()
            srv.stop()

    asyncio.run(main())


def test_a_frozen_redis_stalls_one_write_at_most():
    """SIGSTOP: the first write waits for the socket timeout, the next ones return at once."""
    async def main():
        srv = EmbeddedRedis().start()
        client = connect(srv.url)
        client.connection_pool.connection_kwargs["socket_timeout"] = 1.0
        sink = RedisSink(client, retry_s=0.2)
        r = redis.Redis.from_url(srv.url)
        try:
            await sink.write([scored("a", 0)], [], {"a": state(0)})
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises(Exception):
                    await sink.write([scored("a", 1)], [], {"a": state(1)})
                t = time.monotonic()
                for i in range(2, 10):
                    await sink.write([scored("a", i)], [], {"a": state(i)})
                assert time.monotonic() - t < 0.5
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            await until(lambda: sink.backlog == 0, 10, "the backlog to drain after SIGCONT")
            assert ends(r, "a") == [T0 + 2.0 + 0.5 * i for i in range(10)]
            assert sink.restarts == 0  # same server: nothing re-written
        finally:
            await sink.close()
            srv.stop()

    asyncio.run(main())


def test_a_batch_written_twice_changes_nothing_not_even_the_workload():
    """What the retry of a half-written batch does: every command is idempotent per window end."""
    async def main():
        srv = EmbeddedRedis().start()
        sink = RedisSink(connect(srv.url))
        r = redis.Redis.from_url(srv.url, decode_responses=True)
        try:
            batch = [Scored(scored("a", i).score, None, load=0.25, load_s=0.5) for i in range(4)]
            await sink.write(batch, [raised("a", 1)], {"a": state(3)})
            snapshot = (r.hgetall(keys.workload("a")), r.xlen(keys.risk_history("a")),
                        r.xlen(keys.alert_history("a")), r.hget(keys.RISK_LATEST, "a"))
            await sink.write(batch, [raised("a", 1)], {"a": state(3)})
            again = (r.hgetall(keys.workload("a")), r.xlen(keys.risk_history("a")),
                     r.xlen(keys.alert_history("a")), r.hget(keys.RISK_LATEST, "a"))
            assert again == snapshot and float(snapshot[0]["player_load"]) == 1.0 and snapshot[1:3] == (4, 1)
        finally:
            await sink.close()
            srv.stop()

    asyncio.run(main())
