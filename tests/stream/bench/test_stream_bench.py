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
                      repeats=1, model_dir=model_dir, out_dir=tmp_path, stagger=False)
    res = bench_stream(cfg)
    drain = res["drain"]
    assert drain["messages"] == 3 * 40 and drain["windows"] == 3 * 5  # 4 s of frames: window ends 2.0 .. 4.0 s
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
    # the scores' own split of their latency: arrival (consume, decode, window) + scoring
    assert 0 <= step["p50_ready_ms"] <= step["p99_ready_ms"] and 0 < step["p50_built_ms"] <= step["p99_built_ms"]
    assert step["p99_ready_ms"] + step["p99_built_ms"] < 5_000  # milliseconds, not seconds
    assert step["load_final"]["acked"] == step["load_final"]["messages"] > 0
    assert isinstance(step["passed"], bool) and step["exit_code"] is not None


@pytest.mark.skipif(cmod.quix_python() is None, reason="no Python with quixstreams (.cache/quix-venv)")
def test_quix_reference_drains_and_scores_every_window(tmp_path, model_dir):
    cfg = BenchConfig(contenders=("quix",), live=False, inference_probe=False, drain_athletes=3, drain_seconds=4.0,
                      repeats=1, model_dir=model_dir, out_dir=tmp_path, inference_threads=1)
    drain = bench_stream(cfg)["drain"]
    run = drain["runs"][0]
    assert run.get("error") is None, run.get("error")
    # staggered grids: an athlete whose phase is past its 10-frame shift has 4 complete windows in 4 s, not 5
    assert 3 * 4 <= drain["windows"] <= 3 * 5
    assert run["final_metrics"]["injury_windows_scored_total"] == drain["windows"]
    assert run["final_metrics"]["injury_messages_total"] == 3 * 40


def test_live_search_interleaves_contenders_and_checks_half_capacity(tmp_path, monkeypatch):
    from stream.bench import stream_bench

    calls: list[tuple[str, int, float | None]] = []
    limits = {"faust": 130, "quix": 70}

    def fake_step(cfg, services, quix, kind, n, step, measure_s=None):
        calls.append((kind, n, measure_s))
        return {"kind": kind, "athletes": n, "passed": n <= limits[kind]}

    monkeypatch.setattr(stream_bench, "live_step", fake_step)
    cfg = BenchConfig(start_athletes=50, max_athletes=400, resolution=0.1, half_measure_s=30.0, out_dir=tmp_path)
    snapshots: list[int] = []
    out = stream_bench.run_live(cfg, None, None, ("faust", "quix"), on_step=lambda live: snapshots.append(1))
    assert [k for k, _, _ in calls[:4]] == ["faust", "quix", "faust", "quix"]
    assert 130 * 0.9 <= out["faust"]["capacity"] <= 130 and 70 * 0.9 <= out["quix"]["capacity"] <= 70
    assert calls[-2:] == [("faust", out["faust"]["capacity"] // 2, 30.0), ("quix", out["quix"]["capacity"] // 2, 30.0)]
    assert out["faust"]["half"]["half_capacity_check"] and len(snapshots) == len(calls)


def test_a_contender_that_cannot_start_stops_its_search(tmp_path, monkeypatch):
    from stream.bench import stream_bench

    def fake_step(cfg, services, quix, kind, n, step, measure_s=None):
        if kind == "quix":
            return {"kind": kind, "athletes": n, "passed": False, "fatal": True, "error": "no quixstreams"}
        return {"kind": kind, "athletes": n, "passed": n <= 60}

    monkeypatch.setattr(stream_bench, "live_step", fake_step)
    out = stream_bench.run_live(BenchConfig(athletes=(25, 50, 100), out_dir=tmp_path, half_check=False), None, None,
                                ("faust", "quix"))
    assert [s["athletes"] for s in out["faust"]["steps"]] == [25, 50, 100] and out["faust"]["capacity"] == 50
    assert len(out["quix"]["steps"]) == 1 and out["quix"]["error"] == "no quixstreams" and out["quix"]["capacity"] == 0
