"""Pure arithmetic of the stream bench: percentiles, rates, lag, Prometheus text, capacity search."""

from __future__ import annotations

import math

import pytest

from stream.bench.stats import (
    CapacitySearch, bucket_delta, bucket_quantile, crossing_time, expected_windows, histogram_buckets, lag_growth,
    latencies, parse_metrics, percentile, steady_rate, window_ends,
)
from stream.windowing import WindowConfig


def test_percentile_is_nearest_rank_and_counts_unseen_windows_as_infinite():
    vals = list(range(1, 101))
    assert percentile(vals, 50) == 50
    assert percentile(vals, 99) == 99
    assert percentile(vals, 100) == 100
    assert percentile([*range(98), math.inf, math.inf], 99) == math.inf
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(vals, 101)


def test_crossing_time_interpolates_between_counter_samples():
    samples = [(0.0, 0), (1.0, 100), (2.0, 300)]
    assert crossing_time(samples, 50) == pytest.approx(0.5)
    assert crossing_time(samples, 200) == pytest.approx(1.5)
    assert crossing_time(samples, 301) is None
    assert crossing_time([(5.0, 10)], 1) == 5.0


def test_steady_rate_ignores_start_up_and_tail():
    # idle for 10 s (start-up), then 1000/s, then a slow tail
    samples = [(0.0, 0), (10.0, 0), *[(10.0 + i, 1000.0 * i) for i in range(1, 10)], (30.0, 10_000)]
    assert steady_rate(samples, 10_000) == pytest.approx(1000.0)
    assert steady_rate(samples, 0) is None
    assert steady_rate([(0.0, 0), (1.0, 10)], 10_000) is None  # never reached 10 %


def test_lag_growth_uses_the_floor_of_a_saw_tooth():
    steady = [(t * 0.5, (t % 6) * 100.0) for t in range(60)]  # commits every 3 s, no trend
    assert lag_growth(steady) == pytest.approx(0.0)
    growing = [(t * 0.5, (t % 6) * 100.0 + 50.0 * t * 0.5) for t in range(60)]  # +50 msg/s
    assert lag_growth(growing) == pytest.approx(50.0, rel=0.2)
    assert lag_growth(steady[:5]) is None


def test_window_ends_are_on_the_hop_grid():
    assert window_ends(10.2, 11.5, 0.5) == [10.5, 11.0, 11.5]
    assert window_ends(10.0, 10.0, 0.5) == [10.0]
    assert window_ends(1795678000.1, 1795678001.0, 0.5) == [1795678000.5, 1795678001.0]
    # an athlete's staggered grid: ends at k * hop + its phase
    assert window_ends(10.2, 11.5, 0.5, 0.37) == pytest.approx([10.37, 10.87, 11.37])


def test_latencies_measure_from_the_last_frame_and_mark_missing_windows():
    seen = {("a", 10_500): 10.6, ("b", 10_500): 10.52}
    out = latencies(seen, {"a": [10.5, 11.0], "b": [10.5, 11.0]}, frame_s=0.01)
    assert out[0] == pytest.approx(0.11) and out[2] == pytest.approx(0.03)
    assert out[1] == math.inf and out[3] == math.inf


def test_expected_windows_matches_the_windower():
    cfg = WindowConfig(stagger=False)  # 2 s window, 0.5 s hop, 1 s grace at 100 Hz
    # the first window (end 2.0) waits for the watermark (newest frame - 1 s grace), later ones
    # leave as soon as they are complete: 10 s of frames -> ends 2.0 .. 10.0
    assert expected_windows(cfg, batches=100, frames_per_message=10, first_k=0) == 17
    assert expected_windows(cfg, batches=30, frames_per_message=10, first_k=0) == 0  # newest 2.99 s: 1.99 < 2.0
    assert expected_windows(cfg, batches=31, frames_per_message=10, first_k=0) == 3  # 2.0, 2.5, 3.0
    assert expected_windows(cfg, batches=100, frames_per_message=50, first_k=7) == 97  # frames 3.5-53.5 s: ends 5.5 .. 53.5
    # staggered: messages shifted by the athlete's phase give the same windows, on its own grid
    staggered = WindowConfig()
    for a in ("a", "b", "athlete-42"):
        shift = staggered.phase(a)
        assert expected_windows(staggered, batches=100, frames_per_message=50, first_k=7, athlete_id=a,
                                shift=shift) == 97
        assert expected_windows(staggered, batches=100, frames_per_message=10, first_k=0, athlete_id=a,
                                shift=shift % 10) in (16, 17)  # 10-frame messages: the edges move by < 0.1 s


PROM = """# HELP injury_messages_total FrameBatch messages consumed
# TYPE injury_messages_total counter
injury_messages_total 1500.0
injury_messages_created 1.7e9
injury_skipped_total{reason="gap"} 2.0
injury_skipped_total{reason="late"} 3.0
injury_end_to_score_seconds_bucket{le="0.05"} 10.0
injury_end_to_score_seconds_bucket{le="0.1"} 60.0
injury_end_to_score_seconds_bucket{le="0.25"} 100.0
injury_end_to_score_seconds_bucket{le="+Inf"} 100.0
injury_end_to_score_seconds_count 100.0
"""


def test_parse_metrics_and_histogram_quantiles():
    m = parse_metrics(PROM)
    assert m["injury_messages_total"] == 1500.0
    assert "injury_messages_created" not in m
    assert m["injury_skipped_total"] == 5.0 and m['injury_skipped_total{reason="late"}'] == 3.0
    b = histogram_buckets(m, "injury_end_to_score_seconds")
    assert b == [(0.05, 10.0), (0.1, 60.0), (0.25, 100.0), (math.inf, 100.0)]
    assert bucket_quantile(b, 0.5) == pytest.approx(0.05 + 0.05 * 40 / 50)
    assert bucket_quantile(b, 0.99) == pytest.approx(0.1 + 0.15 * 39 / 40)
    assert bucket_quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) != bucket_quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5)
    assert bucket_quantile([(0.1, 1.0), (math.inf, 10.0)], 0.99) == math.inf
    before = [(0.05, 5.0), (0.1, 5.0), (0.25, 5.0), (math.inf, 5.0)]
    assert bucket_delta(b, before) == [(0.05, 5.0), (0.1, 55.0), (0.25, 95.0), (math.inf, 95.0)]


def _run(search: CapacitySearch, capacity: int) -> list[int]:
    tried = []
    while (n := search.next()) is not None:
        tried.append(n)
        search.record(n, n <= capacity)
        assert len(tried) < 40
    return tried


def test_capacity_search_doubles_then_bisects():
    s = CapacitySearch(start=50, max_n=4000, resolution=0.05)
    tried = _run(s, capacity=730)
    assert tried[:5] == [50, 100, 200, 400, 800]
    assert 730 * 0.95 <= s.capacity <= 730
    assert len(tried) <= 12


def test_capacity_search_bounds_and_noise():
    s = CapacitySearch(start=50, max_n=300)
    assert _run(s, capacity=10_000) == [50, 100, 200, 300]
    assert s.capacity == 300
    low = CapacitySearch(start=50, max_n=300, min_n=5)
    _run(low, capacity=3)
    assert low.capacity == 0
    noisy = CapacitySearch(start=100, max_n=1000)
    for n, ok in [(100, True), (200, False), (150, True), (175, True), (120, False)]:
        noisy.record(n, ok)
    assert noisy.capacity == 100  # the largest pass below the smallest fail
