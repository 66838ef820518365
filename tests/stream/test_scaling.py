"""Three workers share six partitions; one is SIGKILLed and the survivors take its athletes over."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time

import pytest
import redis

from schemas import keys, topics
from stream.settings import SimulatorSettings
from stream.simulator import simulate

from .kafka_tools import read_topic

pytestmark = pytest.mark.integration
ATHLETES = 30


def scored_total(worker) -> float:
    status, body = worker.get("/metrics")
    m = re.search(rb"^injury_windows_scored_total ([0-9.e+]+)$", body, re.M)
    return float(m[1]) if m else 0.0


def test_three_workers_share_partitions_and_survive_a_sigkill(broker, redis_server, start_worker):
    r = redis.Redis.from_url(redis_server.url)
    workers = [start_worker(broker.url, redis_server.url, wait=False) for _ in range(3)]
    for w in workers:
        w.wait_ready(90)
    sim = SimulatorSettings(kafka_url=broker.url, athletes=ATHLETES, duration_s=60.0)
    thread = threading.Thread(target=lambda: asyncio.run(simulate(sim)), daemon=True)
    thread.start()

    deadline = time.monotonic() + 60
    while r.hlen(keys.RISK_LATEST) < ATHLETES and time.monotonic() < deadline:
        time.sleep(0.5)
    assert r.hlen(keys.RISK_LATEST) == ATHLETES
    time.sleep(3)
    assert all(scored_total(w) > 0 for w in workers), "a worker got no partitions"

    victim = workers[0]
    victim.stop(signal.SIGKILL)
    t_kill = time.time()
    resumed: dict[str, float] = {}
    deadline = time.monotonic() + 45
    while len(resumed) < ATHLETES and time.monotonic() < deadline:
        for a, raw in r.hgetall(keys.RISK_LATEST).items():
            s = json.loads(raw)
            if s["scored_at"] > t_kill + 1.0 and a not in resumed:
                resumed[a.decode()] = s["scored_at"] - t_kill
        time.sleep(0.25)
    assert len(resumed) == ATHLETES, f"{ATHLETES - len(resumed)} athletes never scored again after the kill"
    worst = max(resumed.values())
    print(f"\nall {ATHLETES} athletes scored again within {worst:.1f} s of the SIGKILL "
          f"(median {sorted(resumed.values())[ATHLETES // 2]:.1f} s)")
    assert worst < 40

    thread.join(70)
    time.sleep(2)
    for i in range(1, ATHLETES + 1):
        entries = r.xrange(keys.risk_history(f"ath-{i:02d}"))
        ends = [json.loads(v[b"v"])["window_end"] for _, v in entries]
        assert ends == sorted(set(ends)), f"ath-{i:02d} has a duplicate or out-of-order window"
        assert all(eid.decode() == keys.stream_id(e) for (eid, _), e in zip(entries, ends))
    ids = [json.loads(v)["score_id"] for _, v in read_topic(broker.bootstrap, topics.RISK, max_s=40)]
    dup = len(ids) - len(set(ids))
    print(f"injury.risk: {len(ids)} events, {dup} duplicate score ids")
    assert dup <= 3 * ATHLETES // 10, "replays after the kill republished many windows"
