"""Benchmarks of the dashboard: squad refresh cost with many athletes, and server memory over time.

Run ``python -m dashboard.bench --athletes 500`` (add ``--memory-s 120`` for the memory run, which
needs headless Chromium). Results go to ``docs/dashboard.md`` by hand; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dashboard import data, render, sample
from dashboard.exceptions import DashboardError
from dashboard.launch import APP, run_dashboard
from dashboard.settings import DashboardSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        return cls(median_ms=statistics.median(ms), p95_ms=p95, runs=len(ms))

    def __str__(self) -> str:
        return f"median {self.median_ms:.1f} ms, p95 {self.p95_ms:.1f} ms ({self.runs} runs)"


@dataclass(frozen=True)
class SquadBench:
    n_athletes: int
    windows: int
    read: Timing  # data.squad_snapshot: 2 pipelined round trips + parsing
    render: Timing  # filter + HTML of the table
    fragment: Timing  # read + render: what one fragment rerun computes
    page: Timing | None  # a whole page run of the squad view under AppTest (script, widgets, fragment)
    html_kb: float


@dataclass(frozen=True)
class MemoryBench:
    n_athletes: int
    duration_s: float
    refresh_s: float
    reruns: int  # squad reads the server made (Redis ZRANGE calls), i.e. fragment reruns
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since warm-up, RSS MB)

    @property
    def growth_mb(self) -> float:
        return self.rss_mb[-1][1] - self.rss_mb[0][1] if self.rss_mb else 0.0

    @property
    def slope_mb_per_min(self) -> float:
        """Least-squares slope of RSS over the second half of the run (after caches have filled)."""
        pts = self.rss_mb[len(self.rss_mb) // 2:]
        if len(pts) < 2:
            return 0.0
        mx = statistics.fmean(t for t, _ in pts)
        my = statistics.fmean(m for _, m in pts)
        den = sum((t - mx) ** 2 for t, _ in pts) or 1.0
        return 60 * sum((t - mx) * (m - my) for t, m in pts) / den


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from stream.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_squad(n_athletes: int = 500, refreshes: int = 50, *, windows: int = 30, page_runs: int = 10,
                redis_url: str | None = None) -> SquadBench:
    """Fill Redis with ``n_athletes`` (``windows`` scores each) and time the squad refresh ``refreshes`` times."""
    with _redis(redis_url) as url:
        sample.fill(url, n_athletes, windows, end=time.time())
        client = data.connect(url)
        cfg = DashboardSettings(redis_url=url)
        snap = data.squad_snapshot(client)
        if len(snap.rows) != n_athletes:
            raise DashboardError(f"bench expected {n_athletes} athletes in Redis at {url}, found {len(snap.rows)}")
        _time(lambda: data.squad_snapshot(client), 3)  # warm-up

        def read() -> data.Squad:
            return data.squad_snapshot(client, stale_after_s=cfg.stale_after_s, trend_window_s=cfg.trend_window_s)

        def draw(squad: data.Squad) -> str:
            return render.squad_table_html(data.filter_rows(squad.rows), now=squad.read_at)

        reads = _time(read, refreshes)
        renders = _time(lambda: draw(snap), refreshes)
        fragments = _time(lambda: draw(read()), refreshes)
        page = _page_runs(url, page_runs) if page_runs else None
        client.close()
        return SquadBench(n_athletes=n_athletes, windows=windows, read=Timing.of(reads), render=Timing.of(renders),
                          fragment=Timing.of(fragments), page=page, html_kb=len(draw(snap)) / 1024)


def _page_runs(url: str, runs: int) -> Timing:
    import os

    from streamlit.testing.v1 import AppTest

    old = os.environ.get("INJURY_MONITOR_REDIS_URL")
    os.environ["INJURY_MONITOR_REDIS_URL"] = url
    try:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()  # warm-up: imports, client cache
        return Timing.of(_time(at.run, runs))
    finally:
        if old is None:
            os.environ.pop("INJURY_MONITOR_REDIS_URL", None)
        else:
            os.environ["INJURY_MONITOR_REDIS_URL"] = old


def _zrange_calls(client) -> int:
    """ZRANGE calls Redis has served: one per squad refresh (``data.squad_snapshot``), one per full page run."""
    return int(client.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0))


def bench_memory(n_athletes: int = 500, duration_s: float = 120.0, *, refresh_s: float = 1.0,
                 sample_every_s: float = 5.0, redis_url: str | None = None) -> MemoryBench:
    """RSS of a ``streamlit run`` server while headless Chromium keeps the squad view open."""
    import psutil
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from stream.embedded import free_port, wait_port

    if not CHROMIUM.exists():
        raise DashboardError(f"the memory bench needs headless Chromium at {CHROMIUM} "
                             "(apt-get install -y chromium chromium-driver)")
    with _redis(redis_url) as url, tempfile.TemporaryFile() as log:
        sample.fill(url, n_athletes, 10, end=time.time())
        port = free_port()
        proc = run_dashboard(DashboardSettings(redis_url=url, refresh_s=refresh_s), port, "127.0.0.1",
                             stdout=log, stderr=subprocess.STDOUT)
        opts = Options()
        opts.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            opts.add_argument(arg)
        driver = None
        try:
            wait_port("127.0.0.1", port, 60, proc)
            driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
            driver.get(f"http://127.0.0.1:{port}/")
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return document.querySelectorAll('#im-squad tr.im-row').length;")
                == n_athletes)
            server = psutil.Process(proc.pid)
            time.sleep(min(10.0, duration_s / 4))  # warm-up: first reruns fill Streamlit's caches
            stats = data.connect(url)
            calls0 = _zrange_calls(stats)
            t0 = time.monotonic()
            points = []
            while True:
                elapsed = time.monotonic() - t0
                points.append((round(elapsed, 1), server.memory_info().rss / 2**20))
                if elapsed >= duration_s:
                    break
                time.sleep(min(sample_every_s, duration_s - elapsed))
            reruns = _zrange_calls(stats) - calls0
            stats.close()
        finally:
            if driver is not None:
                driver.quit()
            proc.terminate()
            proc.wait(20)
        return MemoryBench(n_athletes=n_athletes, duration_s=duration_s, refresh_s=refresh_s, reruns=reruns,
                           rss_mb=points)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard.bench", description=__doc__.splitlines()[0])
    p.add_argument("--athletes", type=int, default=500)
    p.add_argument("--refreshes", type=int, default=50)
    p.add_argument("--page-runs", type=int, default=10, help="AppTest page runs (0: skip)")
    p.add_argument("--memory-s", type=float, default=0.0, help="also run the memory check this long (needs Chromium)")
    p.add_argument("--refresh-s", type=float, default=1.0, help="refresh interval of the memory check")
    p.add_argument("--redis-url", default=None, help="use this Redis (it is written to!) instead of a private one")
    args = p.parse_args(argv)
    b = bench_squad(args.athletes, args.refreshes, page_runs=args.page_runs, redis_url=args.redis_url)
    print(f"squad refresh with {b.n_athletes} athletes ({b.windows} windows each, table {b.html_kb:.0f} KB):")
    print(f"  read (squad_snapshot)       {b.read}")
    print(f"  render (filter + HTML)      {b.render}")
    print(f"  fragment (read + render)    {b.fragment}")
    if b.page is not None:
        print(f"  whole page run (AppTest)    {b.page}")
    if args.memory_s > 0:
        m = bench_memory(args.athletes, args.memory_s, refresh_s=args.refresh_s, redis_url=args.redis_url)
        print(f"memory of the streamlit server, {m.n_athletes} athletes, refresh {m.refresh_s:g} s, "
              f"{m.duration_s:g} s after warm-up, {m.reruns} squad refreshes served:")
        print("  " + ", ".join(f"{t:g}s: {mb:.1f} MB" for t, mb in m.rss_mb))
        print(f"  growth {m.growth_mb:+.1f} MB; slope over the second half {m.slope_mb_per_min:+.2f} MB/min")
    return 0


if __name__ == "__main__":
    from stream.devtools import run_tool

    raise SystemExit(run_tool("python -m dashboard.bench", main))
