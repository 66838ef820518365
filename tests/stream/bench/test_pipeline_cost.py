"""`injury-monitor bench pipeline`: the worker's own Python per window, against a real Redis."""

from __future__ import annotations

import json

import redis

from schemas import keys
from stream.bench.pipeline_cost import main


def test_every_window_is_timed_and_written_to_redis(tmp_path, redis_url, capsys):
    out = tmp_path / "cost.json"
    assert main(["--athletes", "6", "--hops", "4", "--batch", "4", "--redis-url", redis_url, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["windows"] >= 6 * 4  # at least one window per athlete per measured hop
    assert all(v > 0 for v in res["us_per_window"].values()) and res["windows_per_s_one_thread"] > 0
    assert "µs per window" in capsys.readouterr().out
    r = redis.Redis.from_url(redis_url)
    athletes = [a.decode() for a in r.zrange(keys.ATHLETES, 0, -1)]
    assert len(athletes) == 6
    assert sum(r.xlen(keys.risk_history(a)) for a in athletes) >= res["windows"]  # every window timed was written
