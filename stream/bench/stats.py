"""Pure arithmetic of the stream benchmark: percentiles, rates from counter samples, lag
growth, Prometheus text, the capacity search. No I/O, no clock."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from stream.windowing import WindowConfig, Windower


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); ``inf`` values count (a window never scored).
    NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def crossing_time(samples: Sequence[tuple[float, float]], level: float) -> float | None:
    """When a non-decreasing counter sampled as ``(t, value)`` first reached ``level``
    (linear interpolation between samples); None if it never did."""
    prev: tuple[float, float] | None = None
    for t, v in samples:
        if v >= level:
            if prev is None or v == prev[1]:
                return t
            t0, v0 = prev
            return t0 + (t - t0) * (level - v0) / (v - v0)
        prev = (t, v)
    return None


def steady_rate(samples: Sequence[tuple[float, float]], total: float, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Rate of a counter between ``lo`` and ``hi`` of ``total`` (excludes start-up and tail)."""
    if total <= 0:
        return None
    a, b = crossing_time(samples, lo * total), crossing_time(samples, hi * total)
    if a is None or b is None or b <= a:
        return None
    return (hi - lo) * total / (b - a)


def lag_growth(samples: Sequence[tuple[float, float]], bucket_s: float = 5.0) -> float | None:
    """Messages per second by which a consumer falls behind: the change of the *lowest* lag
    seen in the first and in the last ``bucket_s`` of the samples (commits are periodic, so
    lag is a saw-tooth; its floor shows the trend). None with too few samples."""
    if len(samples) < 2:
        return None
    t_first, t_last = samples[0][0], samples[-1][0]
    if t_last - t_first < 2 * bucket_s:
        return None
    first = [lag for t, lag in samples if t <= t_first + bucket_s]
    last = [lag for t, lag in samples if t >= t_last - bucket_s]
    return (min(last) - min(first)) / (t_last - t_first - bucket_s)


def window_ends(start: float, stop: float, hop_s: float, offset_s: float = 0.0) -> list[float]:
    """Window ends ``e = k * hop_s + offset_s`` with ``start <= e <= stop`` (event time, seconds);
    ``offset_s`` is the athlete's grid phase."""
    first = math.ceil(round((start - offset_s) / hop_s, 9))
    last = math.floor(round((stop - offset_s) / hop_s, 9))
    return [k * hop_s + offset_s for k in range(first, last + 1)]


def latencies(seen: dict[tuple[str, int], float], ends: dict[str, list[float]], frame_s: float) -> list[float]:
    """For every expected window (``ends``: athlete -> its window ends): when it was seen minus
    the event time of the window's last frame (``end - frame_s``); ``inf`` for one never seen."""
    out = []
    for a, athlete_ends in ends.items():
        for e in athlete_ends:
            t = seen.get((a, round(e * 1000)))
            out.append(math.inf if t is None else t - (e - frame_s))
    return out


def expected_windows(cfg: WindowConfig, *, batches: int, frames_per_message: int, first_k: int,
                     athlete_id: str = "a", shift: int = 0) -> int:
    """Windows one athlete's in-order stream releases by the watermark alone (no silence flush),
    computed with the real :class:`Windower`: batch ``k`` holds frames ``k * F + shift ..``, as
    the bench's load sends them (``LoadSpec.shift``); the athlete id sets the window phase."""
    import numpy as np

    from schemas.channels import N_CHANNELS
    from schemas.codec import Batch

    w = Windower(cfg)
    frames = np.zeros((frames_per_message, N_CHANNELS), np.float32)
    n = 0
    for k in range(first_k, first_k + batches):
        b = Batch(athlete_id, "s", "x", k, (k * frames_per_message + shift) / cfg.hz, cfg.hz, frames, ())
        n += len(w.offer(b, 0.0).windows)
    return n


# -- Prometheus text format --------------------------------------------------------------
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of a Prometheus text page; labelled samples are keyed ``name{labels}`` and
    also summed under ``name``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        if name.endswith("_created"):  # creation timestamps of prometheus_client counters
            continue
        if labels:
            out[name + labels] = value
            if "le=" not in labels:
                out[name] = out.get(name, 0.0) + value
        else:
            out[name] = value
    return out


def histogram_buckets(metrics: dict[str, float], name: str) -> list[tuple[float, float]]:
    """``[(le, cumulative count), ...]`` of histogram ``name``, ascending, ``+Inf`` last."""
    out = []
    prefix = name + "_bucket{"
    for key, v in metrics.items():
        if key.startswith(prefix):
            m = re.search(r'le="([^"]+)"', key)
            if m:
                out.append((math.inf if m.group(1) == "+Inf" else float(m.group(1)), v))
    return sorted(out)


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """Quantile ``q`` (0..1) of a cumulative histogram, interpolated inside the bucket like
    PromQL's ``histogram_quantile``; NaN without observations, ``inf`` if in the last bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    target = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= target:
            if math.isinf(le):
                return math.inf
            return prev_le + (le - prev_le) * ((target - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return math.inf


def bucket_delta(after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Observations between two scrapes of the same histogram."""
    prior = dict(before)
    return [(le, c - prior.get(le, 0.0)) for le, c in after]


# -- capacity search ---------------------------------------------------------------------
@dataclass
class CapacitySearch:
    """Largest N that passes: double from ``start`` until a step fails (or ``max_n`` passes),
    then bisect between the largest pass and the smallest fail above it until they are
    closer than ``resolution`` (relative) or ``min_step`` athletes. Noisy, non-monotonic
    results are tolerated: the bounds are always the largest pass below the smallest fail."""

    start: int
    max_n: int
    resolution: float = 0.05
    min_step: int = 5
    min_n: int = 1
    results: dict[int, bool] = field(default_factory=dict)

    def record(self, n: int, passed: bool) -> None:
        self.results[n] = passed

    @property
    def capacity(self) -> int:
        """The largest passing N below the smallest failing one (0 if none passed)."""
        lo, _ = self._bounds()
        return lo

    def _bounds(self) -> tuple[int, int | None]:
        fails = sorted(n for n, ok in self.results.items() if not ok)
        passes = sorted(n for n, ok in self.results.items() if ok)
        hi = fails[0] if fails else None
        below = [n for n in passes if hi is None or n < hi]
        return (below[-1] if below else 0), hi

    def next(self) -> int | None:
        """The next N to try, or None when done."""
        if not self.results:
            return max(self.min_n, min(self.start, self.max_n))
        lo, hi = self._bounds()
        if hi is None:  # everything passed so far: double
            if lo >= self.max_n:
                return None
            return min(self.max_n, max(lo * 2, lo + self.min_step))
        if lo == 0:  # nothing passed below the first failure: halve
            n = hi // 2
            return n if n >= self.min_n and n not in self.results else None
        if hi - lo <= max(self.min_step, self.resolution * lo):
            return None
        n = (lo + hi) // 2
        return n if n not in self.results else None
