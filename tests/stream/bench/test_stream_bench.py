"""The two measurements end to end on tiny sizes: real broker, Redis and contender processes."""

from __future__ import annotations

import json
import math

import pytest

from stream.bench import contenders as cmod
from stream.bench.stream_bench import BenchConfig, Services, bench_stream, live_step

pytestmark = pytest.mark.integration


def test_drain_of_the_floor_reports_rates_and_ratio(tmp_path, model_dir):
    cfg = BenchConfig(contenders=("floor",), live=False, inference_probe=False, drain_athletes=3, drain_seconds=4.0,
                      repeats=1, model_dir=model_dir, out_dir=tmp_path)
    res = bench_stream(cfg)
    drain = res["drain"]
    assert drain["messages"] == 3 * 40 and drain["windows"] == 3 * 5
    run = drain["runs"][0]
    assert run.get("error") is None, run.get("error")
    assert run["final_metrics"]["injury_messages_total"] == drain["messages"]
    assert run["final_metrics"]["injury_frames_total"] == drain["frames"]
    assert run["frames_per_s"] > 0
    assert drain["summary"]["floor"]["ratio_to_floor"] == 1.0
    assert json.loads((tmp_path / "results.json").read_text())["drain"]["messages"] == 120
    assert "Throughput (backlog drain)" in (tmp_path / "report.md").read_text()


def test_live_step_times_every_window_of_the_real_worker(tmp_path, model_dir):
    cfg = BenchConfig(warmup_s=1.0, measure_s=4.0, settle_s=3.0, model_dir=model_dir, out_dir=tmp_path,
                      inference_threads=1)
    services = Services(None, None)
    try:
        step = live_step(cfg, services, None, "faust", 2, 0)
    finally:
        services.stop()
    assert step.get("error") is None, step.get("error")
    assert step["windows_expected"] >= 2 * 5  # ends from 2 s after the first frame to the last
    assert step["windows_seen_kafka"] == step["windows_expected"]
    assert step["duplicates_kafka"] == 0 and step["redis_sample"] == 2
    assert math.isfinite(step["p99_kafka_ms"]) and math.isfinite(step["p99_redis_ms"]) and step["p50_kafka_ms"] > 0
    assert step["load_final"]["acked"] == step["load_final"]["messages"] > 0
    assert isinstance(step["passed"], bool) and step["exit_code"] is not None


@pytest.mark.skipif(cmod.quix_python() is None, reason="no Python with quixstreams (.cache/quix-venv)")
def test_quix_reference_drains_and_scores_every_window(tmp_path, model_dir):
    cfg = BenchConfig(contenders=("quix",), live=False, inference_probe=False, drain_athletes=3, drain_seconds=4.0,
                      repeats=1, model_dir=model_dir, out_dir=tmp_path, inference_threads=1)
    run = bench_stream(cfg)["drain"]["runs"][0]
    assert run.get("error") is None, run.get("error")
    assert run["final_metrics"]["injury_windows_scored_total"] == 3 * 5
    assert run["final_metrics"]["injury_messages_total"] == 3 * 40
