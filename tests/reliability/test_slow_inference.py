"""Slow inference: micro-batches that take 11 s each (longer than the 10 s session timeout and
than any poll interval) for 20 s, with a small inference queue so the agent itself waits. Inference runs in a worker thread, so heartbeats go on:
no rebalance, no window lost, and the lag drains once the model is fast again."""

from __future__ import annotations

import json
import time

import pytest

from schemas import keys

from .harness import Feeder, history_ends, log_count, metric, wait_for

pytestmark = pytest.mark.integration
SLOW_S = 11.0  # > the 10 s session timeout
FAULT_S = 20.0


def score_age(r, athletes) -> float:
    """Seconds from the newest scored window's end to now, worst athlete."""
    latest = {a.decode(): json.loads(v) for a, v in r.hgetall(keys.RISK_LATEST).items()}
    return max(time.time() - latest[a]["window_end"] if a in latest else float("inf") for a in athletes)


def lag(worker) -> float:
    return sum(v for k, v in worker.metrics().items() if k.startswith("injury_consumer_lag{"))


def test_slow_batches_cause_no_rebalance_and_the_lag_recovers(tmp_path, mod_broker, mod_redis, mod_r, mod_workers):
    flag = tmp_path / "slow"
    worker = mod_workers(mod_broker.url, mod_redis.url, app_id="im-slow", module="tests.reliability.slow_worker",
                         args=(), extra_env={"IM_FAULT_SLOW_FILE": str(flag), "IM_FAULT_SLOW_S": str(SLOW_S),
                                    # queue of 8 x 8 windows: full in ~3 s, then the backlog stays in Kafka
                                    "INJURY_MONITOR_MAX_BATCH": "8"})
    feeder = Feeder(mod_broker.url, athletes=12, prefix="slow").start()
    try:
        wait_for(lambda: all(len(history_ends(mod_r, a)) >= 4 for a in feeder.ids), 60, "every athlete scored")
        joins0 = log_count(worker, r"\(Re-\)joining group")
        calls0 = metric(worker, "injury_inference_seconds_count")
        flag.touch()
        t_slow = time.time()
        peak = 0.0
        deadline = time.monotonic() + 90
        # the fault lasts FAULT_S and at least two slow batches; meanwhile the newest score falls behind
        while time.time() - t_slow < FAULT_S or metric(worker, "injury_inference_seconds_count") < calls0 + 2:
            assert time.monotonic() < deadline, "the slow batches never finished"
            peak = max(peak, score_age(mod_r, feeder.ids))
            time.sleep(1.0)
        flag.unlink()
        t_fast = time.time()

        wait_for(lambda: score_age(mod_r, feeder.ids) < 3.0, 90, "every athlete's newest score within 3 s of now")
        recovered = time.time() - t_fast
        wait_for(lambda: lag(worker) < 50, 30, "the consumer lag to drain")
        feeder.stop()

        lost = {}
        for a in feeder.ids:
            ends = history_ends(mod_r, a)
            around = [e for e in ends if t_slow - 5 < e < t_fast + recovered]
            assert ends == sorted(set(ends)), f"{a}: duplicate history"
            lost[a] = sum(round((b - x) / 0.5) - 1 for x, b in zip(around, around[1:]))
        joins = log_count(worker, r"\(Re-\)joining group") - joins0
        failed_hb = log_count(worker, r"Heartbeat failed")
        print(f"\nslow inference ({SLOW_S:g} s per batch for {t_fast - t_slow:.0f} s): newest score "
              f"fell {peak:.0f} s behind; every athlete current again {recovered:.1f} s after the model was fast; rebalances "
              f"during the fault: {joins}; windows lost per athlete: {sorted(lost.values())}")
        assert joins == 0 and failed_hb == 0, "the slow batches caused a rebalance"
        assert max(lost.values()) == 0, lost
        assert worker.proc.poll() is None
    finally:
        feeder.stop()
        flag.unlink(missing_ok=True)
