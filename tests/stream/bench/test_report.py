"""Report rendering: tables from results, the latency plot, profile summaries."""

from __future__ import annotations

import cProfile
import math

from stream.bench.report import (
    flamegraph_svg, parse_collapsed, plot_latency, render_markdown, summarize_collapsed, summarize_pstats,
)


def results_factory(**over) -> dict:
    step = lambda n, p99, ok, **kw: {"kind": "faust", "athletes": n, "p50_kafka_ms": p99 / 2, "p99_kafka_ms": p99,  # noqa: E731
                                    "p50_redis_ms": p99 / 3, "p99_redis_ms": p99 / 1.5, "p99_worker_ms": p99,
                                    "p50_ready_ms": 12.5, "p99_ready_ms": 40.0, "p50_built_ms": 8.0, "p99_built_ms": 20.0,
                                    "lag_growth_msgs_per_s": 0.0, "load_max_behind_s": 0.003,
                                    "loadavg_before": [1.0, 1.0, 1.0], "passed": ok, **kw}
    res = {
        "started": "2026-01-01", "machine": {"cpu": "Test CPU", "cores": 2, "mem_gib": 8, "python": "3.11",
                                            "versions": {"faust-streaming": "0.15"}},
        "quix": {"version": "3.28.1"}, "config": {"p99_limit_ms": 250.0}, "loadavg_start": [1, 1, 1],
        "inference": {"backend": "onnxruntime", "threads": 2, "windows_per_s": {"1": 1000.0, "64": 4000.0},
                      "best_batch": 64, "best_windows_per_s": 4000.0, "windows_per_athlete_s": 2.0,
                      "limit_athletes": 2000, "loadavg": [1, 1, 1]},
        "drain": {"athletes": 10, "seconds": 5.0, "messages": 500, "frames": 5000, "windows": 70, "encoding": "json",
                  "message_bytes": 3600, "preload": {"messages_per_s": 50000.0},
                  "runs": [{"kind": "floor", "repeat": 0, "frames_per_s": 100000.0, "loadavg_before": [1, 1, 1]},
                           {"kind": "faust", "repeat": 0, "frames_per_s": 20000.0, "windows_per_s": 300.0,
                            "loadavg_before": [1, 1, 1]},
                           {"kind": "faust", "repeat": 1, "error": "it | broke\nbadly", "loadavg_before": [1, 1, 1]}],
                  "summary": {"floor": {"frames_per_s": 100000.0, "messages_per_s": 10000.0, "windows_per_s": None,
                                        "ratio_to_floor": 1.0, "runs": 1, "failed": 0, "frames_per_s_all": [100000.0]},
                              "faust": {"frames_per_s": 20000.0, "messages_per_s": 2000.0, "windows_per_s": 300.0,
                                        "ratio_to_floor": 0.2, "runs": 1, "failed": 1,
                                        "frames_per_s_all": [20000.0]}}},
        "live": {"faust": {"capacity": 100, "steps": [step(50, 80.0, True), step(100, 200.0, True),
                                                       step(200, math.inf, False, error="too slow")],
                           "half": step(50, 90.0, True, half_capacity_check=True)}},
    }
    res.update(over)
    return res


def test_markdown_has_every_section_and_escapes_errors(tmp_path):
    res = results_factory()
    plot = plot_latency(res, tmp_path / "plot.png")
    assert plot is not None and plot.stat().st_size > 10_000
    md = render_markdown(res, plot=plot)
    for needle in ("inference-bound limit is 2,000 athletes", "| (a) aiokafka, decode only (floor) | 100,000",
                   "0.200", "capacity **100 athletes**", "50 (½ cap)", "∞", "fail: too slow", "12.5 / 40.0", "8.0 / 20.0", "![latency vs athletes](plot.png)"):
        assert needle in md, needle
    assert "it / broke badly" in md  # table cells never break the table


def test_no_plot_without_live_steps(tmp_path):
    assert plot_latency(results_factory(live={}), tmp_path / "p.png") is None


def test_profile_summaries(tmp_path):
    prof = tmp_path / "x.pstats"
    cProfile.runctx("sorted(range(10000), key=lambda v: -v)", {}, {}, str(prof))
    text = summarize_pstats(prof, top=5)
    assert "by cumulative time" in text and "by own time" in text and "<lambda>" in text
    raw = tmp_path / "x.collapsed"
    m = "thread (7): MainThread;main (cli.py:1)"
    raw.write_text(f"{m};consume (stream/worker.py:143);decode (schemas/codec.py:9) 30\n"
                   f"{m};consume (stream/worker.py:143) 10\n"
                   "thread (9): inference_0;_worker (concurrent/futures/thread.py:81) 60\n"
                   f"{m};consume (stream/worker.py:143);decode (schemas/codec.py:9) 10\n")
    stacks = parse_collapsed(raw)
    assert sum(stacks.values()) == 110 and len(stacks) == 3
    text = summarize_collapsed(stacks, title="t")
    assert "110 samples, 60 idle (waiting), 50 busy" in text
    assert "100.0% busy      50 samples  thread (7): MainThread" in text
    assert "0.0% busy      60 samples  thread (9): inference_0" in text
    own = text.split("## own time (leaf functions)")[1].split("## inclusive")[0]
    assert "80.00%  decode (schemas/codec.py)" in own and "20.00%  consume" in own and "select" not in own
    ours = text.split("## inclusive time, this project's functions")[1].split("## inclusive time, all")[0]
    assert "100.00%  consume (stream/worker.py)" in ours and "main (cli.py)" not in ours
    svg = flamegraph_svg(stacks, title="t<1>")
    assert svg.startswith("<svg") and svg.count("<rect") == 6 and "t&lt;1&gt;" in svg
    assert "decode (schemas/codec.py:9) (40 samples, 36.36%)" in svg
