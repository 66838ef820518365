"""Redis outages under the running worker: scores keep flowing to Kafka, Redis catches up
from the worker's backlog, nothing crashes, no history entry or alert is duplicated.

1. A 10 s outage of a Redis with an append-only file (production: compose/k8s use AOF):
   afterwards every athlete's history is contiguous across the outage (caught up).
2. A restart that loses everything (no persistence, the embedded default): the worker sees
   the new run_id and writes back the alert states and raised alerts it holds, so the
   dashboard shows the active alerts again and none is raised twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis

from schemas import keys

from .harness import Feeder, PersistentRedis, alert_events, history_ends, metric, read_topic, wait_for

pytestmark = pytest.mark.integration
ATHLETES = 12
OUTAGE_S = 10.0
ALERTS_ONCE = {"INJURY_MONITOR_ALERT_RAISE": "0.0", "INJURY_MONITOR_ALERT_CLEAR": "0.0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mod_broker, mod_workers):
    srv = PersistentRedis(tmp_path_factory.mktemp("redis-aof")).start()
    worker = mod_workers(mod_broker.url, srv.url, app_id="im-redis-faults", extra_env=ALERTS_ONCE)
    feeder = Feeder(mod_broker.url, athletes=ATHLETES, prefix="rf").start()
    r = redis.Redis.from_url(srv.url)
    wait_for(lambda: all(len(history_ends(r, a)) >= 4 for a in feeder.ids), 60, "every athlete scored")
    wait_for(lambda: r.hlen(keys.ALERTS_ACTIVE) >= ATHLETES, 20, "every athlete's alert")
    state = {"srv": srv, "worker": worker, "feeder": feeder, "r": r}
    yield state
    feeder.stop()
    state["srv"].stop()


def restart_same_port(srv: PersistentRedis) -> PersistentRedis:
    again = PersistentRedis(srv.data_dir, port=srv.port)
    again.start()
    return again


def test_ten_second_outage_redis_catches_up_and_kafka_keeps_scoring(stack, mod_broker):
    srv, worker, feeder, r = stack["srv"], stack["worker"], stack["feeder"], stack["r"]
    failures0 = metric(worker, "injury_redis_write_failures_total")
    srv.stop()  # SIGTERM: the AOF is flushed; the data comes back with the server
    t_down = time.time()
    wait_for(lambda: metric(worker, "injury_redis_backlog") > 0, 10, "the worker to buffer scores")
    time.sleep(max(0.0, OUTAGE_S - (time.time() - t_down)))  # the outage itself lasts 10 s
    srv2 = restart_same_port(srv)
    stack["srv"] = srv2
    t_up = time.time()
    wait_for(lambda: metric(worker, "injury_redis_backlog") == 0, 30, "the backlog to drain")
    caught_up = time.time() - t_up
    r = redis.Redis.from_url(srv2.url)
    stack["r"] = r

    during = [json.loads(v) for k, v in read_topic(mod_broker.bootstrap, "injury.risk")
              if k.decode().startswith("rf-")]
    on_kafka = [s for s in during if t_down + 1 < s["scored_at"] < t_up]
    print(f"\nRedis down {t_up - t_down:.1f} s: {len(on_kafka)} scores reached Kafka meanwhile; "
          f"Redis caught up {caught_up:.1f} s after it returned")
    assert len(on_kafka) >= ATHLETES * 8, "scores did not keep flowing to Kafka during the outage"

    for a in feeder.ids:  # contiguous across the outage: nothing lost, nothing twice
        ends = history_ends(r, a)
        around = [e for e in ends if t_down - 5 < e < t_up + 2]
        assert around and all(abs(b - a_ - 0.5) < 1e-6 for a_, b in zip(around, around[1:])), (a, around)
        assert ends == sorted(set(ends))
        assert len(r.xrange(keys.alert_history(a))) == 1
    assert r.hlen(keys.ALERTS_ACTIVE) == ATHLETES
    assert metric(worker, "injury_redis_write_failures_total") > failures0
    assert metric(worker, "injury_redis_dropped_total") == 0
    assert worker.proc.poll() is None


def test_restart_without_persistence_rewrites_states_and_alerts_and_raises_nothing_twice(stack, mod_broker):
    srv, worker, feeder = stack["srv"], stack["worker"], stack["feeder"]
    restarts0 = metric(worker, "injury_redis_restarts_total")
    srv.kill()
    srv.wipe()  # everything Redis held is gone
    srv2 = restart_same_port(srv)
    stack["srv"] = srv2
    t_up = time.time()
    r = redis.Redis.from_url(srv2.url)
    wait_for(lambda: r.hlen(keys.ALERTS_ACTIVE) == ATHLETES, 30, "the raised alerts written back")
    rewritten = time.time() - t_up
    wait_for(lambda: all(r.exists(keys.alert_state(a)) for a in feeder.ids), 10, "the alert states written back")
    wait_for(lambda: all(len(history_ends(r, a)) >= 4 for a in feeder.ids), 30, "new history after the restart")
    print(f"\nRedis restarted empty: active alerts and states written back within {rewritten:.1f} s")
    assert metric(worker, "injury_redis_restarts_total") > restarts0
    for a in feeder.ids:
        st = json.loads(r.hget(keys.alert_state(a), "s"))
        assert st["raised"], f"{a}: hysteresis state lost its raised alert"
        assert len(r.xrange(keys.alert_history(a))) == 0  # nothing raised again (history began empty)
    events = [e for e in alert_events(mod_broker.bootstrap) if e["athlete_id"] in feeder.ids]
    raised = Counter(e["athlete_id"] for e in {(e["alert_id"], e["state"]): e for e in events}.values())
    assert all(raised[a] == 1 for a in feeder.ids), raised
    assert worker.proc.poll() is None
