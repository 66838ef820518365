"""Broker restart: the embedded Tansu keeps everything in memory, so a restarted broker on the
same port is EMPTY (topics, records and committed offsets gone).

Decided behaviour (docs/reliability.md): the worker notices that a partition now ends
before an offset it has already read, commits the start of the new log for its partitions
(Faust would otherwise commit old-log offsets that can land inside the new log and skip it)
and exits at once with code 75; its supervisor
(compose ``restart: unless-stopped``, Kubernetes, here the test) starts it again; at start
it re-creates the topics with the configured partition count, resumes on the new log and
loads each athlete's last scored window from Redis, so nothing is scored twice.
"""

from __future__ import annotations

import json
import time

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from schemas import keys, topics
from stream.embedded import EmbeddedBroker
from stream.windowing import WindowConfig

from .harness import Feeder, Supervisor, history_ends, read_topic, risk_ids, wait_for

pytestmark = pytest.mark.integration
ATHLETES = 12
DOWN_S = 2.0
MAX_LOST = 8  # warm-up of the old worker's last buffer and of the restarted worker's first (2 x window/hop)


def frames_in_log(bootstrap: str) -> dict[str, set[int]]:
    """Athlete -> first-frame indices (t0 x 100) of every batch in the (new) frames log."""
    out: dict[str, set[int]] = {}
    for _, v in read_topic(bootstrap, topics.FRAMES):
        d = orjson.loads(v)
        out.setdefault(d["athlete_id"], set()).add(round(d["t0"] * 100))
    return out


def test_broker_restart_worker_exits_75_restarts_and_every_athlete_resumes(mod_redis, mod_r, mod_workers):
    broker = EmbeddedBroker().start()
    port = broker.port
    feeder = sup = None
    try:
        sup = Supervisor(lambda: mod_workers(broker.url, mod_redis.url, app_id="im-broker-restart", wait=False))
        sup.current.wait_ready(90)
        feeder = Feeder(broker.url, athletes=ATHLETES, prefix="br").start()
        wait_for(lambda: all(len(history_ends(mod_r, a)) >= 4 for a in feeder.ids), 60, "every athlete scored")

        broker.stop()
        t_down = time.time()
        time.sleep(DOWN_S)  # the broker is down for DOWN_S (the fault itself)
        broker = EmbeddedBroker(port=port).start()
        t_up = time.time()

        exit_at, code = wait_for(lambda: sup.exits and sup.exits[0], 60, "the worker to exit after the reset")
        assert code == 75, f"exit code {code}"
        sup.current.wait_ready(90)
        t_ready = time.time()

        def resumed():  # scored by the restarted worker
            latest = {a.decode(): json.loads(v) for a, v in mod_r.hgetall(keys.RISK_LATEST).items()}
            got = {a: s["scored_at"] - t_up for a, s in latest.items() if a in feeder.ids and s["scored_at"] > t_ready}
            return got if len(got) == ATHLETES else None

        back = wait_for(resumed, 60, "every athlete scored by the restarted worker")
        wait_for(lambda: all(history_ends(mod_r, a)[-1] > time.time() - 3 for a in feeder.ids), 30, "live scores")
        feeder.stop()

        covered = frames_in_log(broker.bootstrap)
        worker_lost, producer_gap = {}, {}
        for a in feeder.ids:
            ends = history_ends(mod_r, a)
            assert ends == sorted(set(ends)), f"{a}: duplicate history entries"
            have = {round(e * 100) for e in ends}
            frames = covered[a]
            # windows whose 200 frames all reached the new log after the restart: the worker's to score
            first = min(frames)
            phase = WindowConfig().phase(a)  # the athlete's window ends: e % 50 == phase
            due = [e for e in range(first + 200 + (phase - (first + 200)) % 50, max(frames) - 150, 50)
                   if all(f in frames for f in range(e - 200, e, 10))]
            worker_lost[a] = sum(1 for e in due if e not in have)
            t0s = sorted(frames)
            producer_gap[a] = max((b - x) / 100 for x, b in zip(t0s, t0s[1:]))
        parts = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
        counts = {t: len(parts[t].partitions) for t in (topics.FRAMES, topics.RISK) if t in parts}
        ids = risk_ids(broker.bootstrap)
        print(f"\nbroker down {t_up - t_down:.1f} s; worker exited 75 {exit_at - t_up:.1f} s after its return, "
              f"restarted worker ready after {t_ready - t_up:.1f} s, every athlete scored by it within "
              f"{max(back.values()):.1f} s of the broker's return; windows lost by the worker "
              f"(frames in the new log, not scored) per athlete: {sorted(worker_lost.values())}; longest hole in "
              f"the new log (producer side) {min(producer_gap.values()):.1f}-{max(producer_gap.values()):.1f} s; "
              f"partitions after: {counts}; {len(ids) - len(set(ids))} repeated score ids on the new injury.risk")
        assert len(sup.exits) == 1, f"restart loop: {sup.exits}"
        assert len(ids) == len(set(ids))
        assert max(worker_lost.values()) <= MAX_LOST, worker_lost
    finally:
        if feeder is not None:
            feeder.stop()
        if sup is not None:
            sup.stop()
        broker.stop()
