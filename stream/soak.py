"""Soak run: the demo load for a bounded time, recording memory and lag at a fixed interval.

    python -m stream.soak --duration 1800 --interval 60 --out docs/soak

Starts the embedded broker and Redis, one worker and the 12-athlete simulator as the demo
does (``--encoding`` binary by default, like the demo), plus short-lived "churn" athletes
(``--churn`` athletes for ``--churn-on`` s every ``--churn-every`` s, new ids each time) so
that the expiry of silent athletes' state is exercised too. Every ``--interval`` s it records the resident memory of the worker, Redis
and the broker, Redis' own ``used_memory``, the worker's consumer lag (messages, from
``/metrics``), the age of the newest score (seconds from a window's end to now, the worst
athlete) and the totals, into ``soak.csv``; at the end it draws ``soak.png`` and writes
``summary.md`` (with the exact command). The loop is bounded by ``--duration``; a child that
dies ends the run with an error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from schemas import keys
from stream.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from stream.exceptions import ServiceError

COLUMNS = ("t_s", "worker_rss_mb", "redis_rss_mb", "redis_used_mb", "broker_rss_mb", "lag_messages",
           "score_age_s", "windows_scored", "rejected", "redis_backlog", "history_entries", "athletes_in_redis",
           "churn_athletes_live")


@dataclass
class SoakResult:
    rows: list[dict] = field(default_factory=list)
    csv_path: Path | None = None
    png_path: Path | None = None
    summary_path: Path | None = None
    settled: dict = field(default_factory=dict)  # totals once the load stopped and the worker went quiet


def _child(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", *args], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(p: subprocess.Popen, timeout: float = 20.0) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for c in proc.children(recursive=True):
        try:
            total += c.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"the worker exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if json.loads(r.read()).get("ready"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServiceError(f"the worker was not ready after {timeout:.0f} s")


def _history_entries(r) -> int:
    return sum(r.xlen(keys.risk_history(a.decode())) for a in r.zrange(keys.ATHLETES, 0, -1))


def _settle(port: int, r, *, timeout: float = 30.0, quiet_s: float = 3.0) -> dict:
    """After the load stops: wait until the worker has scored nothing new for ``quiet_s`` with an empty
    Redis backlog, then read the totals. (A sample taken under load reads ``/metrics`` and Redis at two
    moments, so they can differ by the windows scored in between.)"""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while (now := time.monotonic()) < deadline:
        m = _scrape(port)
        scored = m.get("injury_windows_scored_total", 0)
        if scored != last or m.get("injury_redis_backlog", 0):
            last, since = scored, now
        elif now - since >= quiet_s:
            break
        time.sleep(0.5)
    return {"windows_scored": last, "history_entries": _history_entries(r)}


def run_soak(duration_s: float, interval_s: float, out_dir: Path, *, athletes: int = 12,
             model_dir: Path | None = None, history_cap: int = 600, churn: int = 4, churn_on_s: float = 120.0,
             churn_every_s: float = 240.0, encoding: str = "binary", command: str | None = None,
             plot: bool = True) -> SoakResult:
    """Run the soak; write ``soak.csv`` (+ ``soak.png`` and ``summary.md``) into ``out_dir``."""
    import redis

    from engine.train import ensure_default_model
    from stream.settings import WorkerSettings

    out_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="im-soak-logs-"))
    print(f"logs: {logs}", flush=True)
    model_dir = ensure_default_model(model_dir or WorkerSettings().model_dir, progress=False)
    result = SoakResult(csv_path=out_dir / "soak.csv")
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        red = stack.enter_context(EmbeddedRedis())
        r = redis.Redis.from_url(red.url)
        port = free_port()
        env = {**os.environ, "INJURY_MONITOR_KAFKA_URL": broker.url, "INJURY_MONITOR_REDIS_URL": red.url,
               "INJURY_MONITOR_MODEL_DIR": str(model_dir), "INJURY_MONITOR_WEB_PORT": str(port),
               "INJURY_MONITOR_HISTORY_CAP": str(history_cap), "PYTHONUNBUFFERED": "1"}
        worker = _child(["worker"], env, logs / "worker.log")
        stack.callback(_stop, worker)
        _wait_ready(port, worker, 120)
        sim = _child(["simulate", "--athletes", str(athletes), "--duration", str(duration_s + 30),
                      "--encoding", encoding], env, logs / "simulator.log")
        stack.callback(_stop, sim)
        churners: list[tuple[subprocess.Popen, float]] = []
        main_ids = [f"ath-{i + 1:02d}" for i in range(athletes)]

        start = time.monotonic()
        next_churn = min(30.0, churn_every_s) if churn else float("inf")
        k = 0
        with result.csv_path.open("w", newline="") as fh:
            out = csv.DictWriter(fh, fieldnames=COLUMNS)
            out.writeheader()
            n_samples = int(duration_s // interval_s) + 1
            for i in range(n_samples):  # the bounded loop
                tick = start + i * interval_s
                while (now := time.monotonic()) < tick:
                    if now - start >= next_churn:
                        k += 1
                        cenv = {**env, "INJURY_MONITOR_ATHLETE_PREFIX": f"churn{k}",
                                "INJURY_MONITOR_SESSION_ID": f"churn-{k}"}
                        churners.append((_child(["simulate", "--athletes", str(churn), "--duration", str(churn_on_s),
                                                 "--encoding", encoding], cenv, logs / "churn.log"), now))
                        next_churn += churn_every_s
                    time.sleep(min(1.0, max(0.0, tick - now)))
                for p in (worker, sim):
                    if p.poll() is not None:
                        raise ServiceError(f"{p.args[3]} exited with {p.returncode} during the soak "
                                           f"(logs in {logs})")
                churners = [(p, t) for p, t in churners if p.poll() is None]
                m = _scrape(port)
                info = r.info("memory")
                wall = time.time()
                latest = {a.decode(): json.loads(v) for a, v in r.hgetall(keys.RISK_LATEST).items()}
                ages = [wall - latest[a]["window_end"] for a in main_ids if a in latest]
                row = {
                    "t_s": round(time.monotonic() - start, 1),
                    "worker_rss_mb": round(_rss_mb(worker.pid), 1),
                    "redis_rss_mb": round(_rss_mb(red.proc.pid), 1),
                    "redis_used_mb": round(info["used_memory"] / 2**20, 2),
                    "broker_rss_mb": round(_rss_mb(broker.proc.pid), 1),
                    "lag_messages": sum(v for n, v in m.items() if n.startswith("injury_consumer_lag{")),
                    "score_age_s": round(max(ages), 2) if ages else "",
                    "windows_scored": m.get("injury_windows_scored_total", 0),
                    "rejected": sum(v for n, v in m.items() if n.startswith("injury_rejected_total{")),
                    "redis_backlog": m.get("injury_redis_backlog", 0),
                    "history_entries": _history_entries(r),
                    "athletes_in_redis": r.zcard(keys.ATHLETES),
                    "churn_athletes_live": churn * len(churners),
                }
                out.writerow(row)
                fh.flush()
                result.rows.append(row)
                print(" ".join(f"{c}={row[c]}" for c in COLUMNS), flush=True)
        for p in (sim, *(p for p, _ in churners)):
            _stop(p)
        result.settled = _settle(port, r)
    if plot:
        result.png_path = plot_soak(result.rows, out_dir / "soak.png")
    result.summary_path = write_summary(result, out_dir / "summary.md", command=command,
                                        history_cap=history_cap, athletes=athletes, churn=churn,
                                        churn_on_s=churn_on_s, churn_every_s=churn_every_s, encoding=encoding)
    return result


def plot_soak(rows: list[dict], path: Path) -> Path:
    """Three panels over minutes: worker and Redis memory, broker memory, lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [float(r["t_s"]) / 60 for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r[name] != "" else float("nan") for r in rows]

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for name, label in (("worker_rss_mb", "worker RSS"), ("redis_rss_mb", "Redis RSS"),
                        ("redis_used_mb", "Redis used_memory")):
        ax1.plot(t, col(name), marker=".", label=label)
    ax1.set_ylabel("MB")
    ax1.set_ylim(bottom=0)
    ax1.set_title("worker and Redis memory")
    ax1.legend(loc="center right")
    ax2.plot(t, col("broker_rss_mb"), marker=".", color="tab:red", label="broker (embedded Tansu) RSS")
    ax2.set_ylabel("MB")
    ax2.set_title("broker memory (Tansu memory storage keeps every record: no retention)")
    ax2.legend(loc="upper left")
    ax3.plot(t, col("lag_messages"), marker=".", color="tab:purple", label="consumer lag (messages, left)")
    ax3.set_ylabel("messages")
    ax3.set_xlabel("minutes")
    ax4 = ax3.twinx()
    ax4.plot(t, col("score_age_s"), marker=".", color="tab:green", label="newest score age, worst athlete (s, right)")
    ax4.set_ylabel("seconds")
    ax4.set_ylim(bottom=0)
    handles = ax3.get_legend_handles_labels()[0] + ax4.get_legend_handles_labels()[0]
    ax3.legend(handles, [h.get_label() for h in handles], loc="upper left")
    ax3.set_title("lag")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def read_rows(csv_path: Path) -> list[dict]:
    with csv_path.open() as fh:
        return list(csv.DictReader(fh))


def _slope_per_min(rows: list[dict], col: str) -> float:
    """Least-squares slope over the second half of the run (MB per minute)."""
    half = rows[len(rows) // 2:]
    if len(half) < 2:
        return 0.0
    xs = [float(r["t_s"]) / 60 for r in half]
    ys = [float(r[col]) for r in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def write_summary(result: SoakResult, path: Path, *, command: str | None, **params) -> Path:
    rows = result.rows
    lines = ["# Soak results", "", f"Command: `{command or 'python -m stream.soak'}`", "",
             "Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()), "",
             f"{len(rows)} samples over {float(rows[-1]['t_s']) / 60:.1f} min.", "",
             "| series | first | last | max | slope, 2nd half (per min) |", "| --- | --- | --- | --- | --- |"]
    for col in ("worker_rss_mb", "redis_rss_mb", "redis_used_mb", "broker_rss_mb", "lag_messages", "score_age_s",
                "history_entries"):
        vals = [float(r[col]) for r in rows if r[col] != ""]
        if not vals:
            continue
        lines.append(f"| {col} | {vals[0]:g} | {vals[-1]:g} | {max(vals):g} | {_slope_per_min(rows, col):+.2f} |")
    lines += ["", f"Windows scored: {rows[-1]['windows_scored']:g}; rejected: {rows[-1]['rejected']:g}."]
    if result.settled:
        lines.append(f"After the load stopped and the worker went quiet: {result.settled['windows_scored']:g} windows "
                     f"scored, {result.settled['history_entries']:g} history entries in Redis (capped at "
                     f"{params.get('history_cap', '?')} per athlete).")
    lines.append("")
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.soak", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=1800.0, help="seconds (default 1800)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    p.add_argument("--out", type=Path, default=Path("docs/soak"))
    p.add_argument("--athletes", type=int, default=12)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--history-cap", type=int, default=600, help="risk history kept per athlete (default 600)")
    p.add_argument("--churn", type=int, default=4, help="short-lived athletes per churn round (0: none)")
    p.add_argument("--churn-on", type=float, default=120.0)
    p.add_argument("--churn-every", type=float, default=240.0)
    p.add_argument("--encoding", choices=["binary", "json"], default="binary",
                   help="FrameBatch wire encoding of the simulators (default binary, as the demo)")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    command = "python -m stream.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        res = run_soak(args.duration, args.interval, args.out, athletes=args.athletes, model_dir=args.model_dir,
                       history_cap=args.history_cap, churn=args.churn, churn_on_s=args.churn_on,
                       churn_every_s=args.churn_every, encoding=args.encoding, command=command.strip(),
                       plot=not args.no_plot)
    except ServiceError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {res.csv_path}" + (f", {res.png_path}" if res.png_path else "") + f", {res.summary_path}")
    return 0


if __name__ == "__main__":
    from stream.devtools import run_tool

    raise SystemExit(run_tool("python -m stream.soak", main))
