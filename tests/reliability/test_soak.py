"""The soak (stream/soak.py) in short: 30 s at the demo load with churning athletes, sampled
every 6 s. The 30-minute run and its results are in docs/soak/."""

from __future__ import annotations

import csv

import pytest

from stream.soak import COLUMNS, run_soak

pytestmark = pytest.mark.integration


def test_short_soak_records_memory_and_lag(tmp_path, model_dir):
    res = run_soak(30.0, 6.0, tmp_path, model_dir=model_dir, churn=4, churn_on_s=10.0,
                   churn_every_s=15.0, command="pytest short soak")
    rows = list(csv.DictReader(res.csv_path.open()))
    assert len(rows) == 6 and list(rows[0]) == list(COLUMNS)  # the loop is bounded: 30 s / 6 s + 1 samples
    assert res.png_path.stat().st_size > 10_000 and "| broker_rss_mb |" in res.summary_path.read_text()
    scored = [float(r["windows_scored"]) for r in rows]
    assert all(b > a for a, b in zip(scored[1:], scored[2:])), scored  # scoring all along
    assert all(float(r["rejected"]) == 0 for r in rows)
    assert all(float(r["score_age_s"]) < 15 for r in rows[2:]), [r["score_age_s"] for r in rows]  # from 12 s on
    last = rows[-1]
    assert int(last["athletes_in_redis"]) >= 12 + 4  # the churn athletes came (and went)
    # every window in Redis (the cap is not reached in 30 s), counted once the load stopped: a sample
    # under load reads /metrics and Redis at two moments
    assert res.settled["history_entries"] == res.settled["windows_scored"] >= scored[-1], res.settled
    growth = float(last["worker_rss_mb"]) - float(rows[1]["worker_rss_mb"])
    print(f"\nshort soak: worker RSS {rows[1]['worker_rss_mb']} -> {last['worker_rss_mb']} MB, broker "
          f"{rows[0]['broker_rss_mb']} -> {last['broker_rss_mb']} MB, {scored[-1]:.0f} windows scored")
    assert growth < 60, f"worker memory grew {growth:.0f} MB in 24 s"
