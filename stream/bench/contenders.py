"""The implementations the stream benchmark compares, each started as its own process.

| name | what runs | scores windows |
| --- | --- | --- |
| ``floor`` | :mod:`stream.bench.floor`: aiokafka consumer that only decodes | no |
| ``faust`` | the real worker, ``python -m stream.cli worker`` | yes, with the real model |
| ``quix`` | :mod:`stream.bench.quix_ref` in the Quix Streams virtualenv | yes, with the real model |
| ``faust-null`` | the real worker with ``INJURY_MONITOR_BACKEND=null`` | yes, constant outputs |

Every contender gets the same ``INJURY_MONITOR_*`` environment (broker, Redis, model,
backend, inference threads, micro-batch) and serves the worker's Prometheus metrics on
its own port; the bench reads counters from there and times outputs itself
(:mod:`stream.bench.observe`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stream.bench.null_scorer import NULL_BACKEND
from stream.bench.stats import parse_metrics
from stream.embedded import free_port
from stream.exceptions import StreamError

ROOT = Path(__file__).resolve().parents[2]
QUIX_VENV_PYTHON = ROOT / ".cache" / "quix-venv" / "bin" / "python"
KINDS = ("floor", "faust", "quix", "faust-null")
LABELS = {
    "floor": "(a) aiokafka, decode only (floor)",
    "faust": "(b) Faust worker, real model",
    "quix": "(c) Quix Streams reference, real model",
    "faust-null": "(d) Faust worker, null model",
}


@dataclass(frozen=True)
class Contender:
    kind: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    scores: bool = True

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def quix_python(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The interpreter that has Quix Streams: ``explicit``, else ``.cache/quix-venv``, else
    this one if it can import quixstreams; None if there is none."""
    if explicit:
        return Path(explicit)
    if QUIX_VENV_PYTHON.exists():
        return QUIX_VENV_PYTHON
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        return None
    return Path(sys.executable)


def make_contender(kind: str, *, quix: Path | None = None, quix_commit_interval_s: float | None = None,
                   fetch_wait_ms: int | None = None) -> Contender:
    py = sys.executable
    if kind == "floor":
        return Contender(kind, (py, "-m", "stream.bench.floor"), scores=False)
    if kind == "faust":
        return Contender(kind, (py, "-m", "stream.cli", "worker"))
    if kind == "faust-null":
        return Contender(kind, (py, "-m", "stream.cli", "worker"), env={"INJURY_MONITOR_BACKEND": NULL_BACKEND})
    if kind == "quix":
        if quix is None:
            raise StreamError("no Python with quixstreams: create .cache/quix-venv (see BENCHMARKS.md) or pass --quix-python")
        extra: tuple[str, ...] = ("--commit-interval", str(quix_commit_interval_s)) if quix_commit_interval_s else ()
        if fetch_wait_ms is not None:
            extra += ("--fetch-wait-ms", str(fetch_wait_ms))
        return Contender(kind, (str(quix), "-m", "stream.bench.quix_ref", *extra))
    raise StreamError(f"unknown contender {kind!r}; choose from {', '.join(KINDS)}")


class Running:
    """One started contender: metrics scraping, readiness, stop."""

    def __init__(self, contender: Contender, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.contender, self.proc, self.port, self.log = contender, proc, port, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def scrape(self, timeout: float = 2.0) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout) as r:
            return parse_metrics(r.read().decode())

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Until the metrics endpoint answers (the model is loaded and the app started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StreamError(f"{self.contender.kind} exited with {self.proc.returncode}; log {self.log}:\n"
                                  f"{self.log_tail()}")
            try:
                self.scrape(timeout=1.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise StreamError(f"{self.contender.kind} serves no metrics after {timeout:.0f} s; log {self.log}:\n"
                          f"{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to its process group (SIGKILL after ``timeout``); the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        return self.proc.returncode


def start(contender: Contender, *, kafka_url: str, redis_url: str, app_id: str, log: Path,
          settings_env: dict[str, str], wrap: tuple[str, ...] = ()) -> Running:
    """Start ``contender`` with the shared settings; ``wrap`` prefixes the command (a profiler)."""
    port = free_port()
    env = {**os.environ, **settings_env, **contender.env,
           "INJURY_MONITOR_KAFKA_URL": kafka_url, "INJURY_MONITOR_REDIS_URL": redis_url,
           "INJURY_MONITOR_APP_ID": app_id, "INJURY_MONITOR_WEB_PORT": str(port),
           "INJURY_MONITOR_WEB_BIND": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([*wrap, *contender.argv], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return Running(contender, proc, port, log)
