"""Shared tools of the reliability tests: the real worker as a subprocess, a background
simulator, independent Kafka clients, Redis history checks and metric scraping.

Everything here talks to real processes (Tansu, redis-server, ``injury-monitor worker``);
nothing is mocked. Waiting is done by polling with a deadline, never by fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import redis

from schemas import keys, topics
from schemas.channels import CHANNELS, N_CHANNELS
from schemas.codec import encode_frames
from stream.embedded import EmbeddedRedis, free_port, redis_binary
from stream.settings import SimulatorSettings
from stream.simulator import simulate
from tests.conftest import WorkerProc
from tests.stream.kafka_tools import produce, read_topic

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

__all__ = ["Feeder", "PasswordRedis", "PersistentRedis", "Supervisor", "WorkerProc", "frames_of", "history_ends", "metric", "produce", "read_topic",
           "spawn_worker", "valid_batch", "wait_for"]


def wait_for(pred: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def spawn_worker(kafka_url: str, redis_url: str, model_dir: Path, log: Path, *, app_id: str = "im-rel",
                 extra_env: dict | None = None, module: str = "stream.cli", args: tuple[str, ...] = ("worker",),
                 wait: bool = True, ready_timeout: float = 90.0) -> WorkerProc:
    """Start the real worker (``python -m stream.cli worker``, or a fault-injecting ``module``)."""
    port = free_port()
    env = {**os.environ, "INJURY_MONITOR_KAFKA_URL": kafka_url, "INJURY_MONITOR_REDIS_URL": redis_url,
           "INJURY_MONITOR_MODEL_DIR": str(model_dir), "INJURY_MONITOR_APP_ID": app_id,
           "INJURY_MONITOR_WEB_PORT": str(port), "INJURY_MONITOR_INFERENCE_THREADS": "1",
           "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=ROOT, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    w = WorkerProc(proc, port, log)
    if wait:
        w.wait_ready(ready_timeout)
    return w


def kill(w: WorkerProc) -> None:
    """SIGKILL the worker's whole process group (no shutdown, no commit)."""
    w.stop(signal.SIGKILL)


def metric(worker: WorkerProc, name: str, **labels: str) -> float:
    """One series of the worker's /metrics (0 when absent)."""
    key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return worker.metrics().get(key, 0.0)


def log_count(worker: WorkerProc, pattern: str) -> int:
    return len(re.findall(pattern, worker.log.read_text(errors="replace")))


def same_phase_id(prefix: str, like: str) -> str:
    """An athlete id starting with ``prefix`` whose windows end where ``like``'s do (the same
    phase of the staggered hop grid), so the two can be compared window by window."""
    from stream.windowing import WindowConfig

    cfg = WindowConfig()
    return next(f"{prefix}-{i}" for i in range(10_000) if cfg.phase(f"{prefix}-{i}") == cfg.phase(like))


class Feeder:
    """The simulator (``stream.simulator.simulate``) in a background thread, stoppable."""

    def __init__(self, kafka_url: str, *, athletes: int = 12, duration_s: float | None = None,
                 prefix: str = "ath", session: str = "rel-session", seed: int = 7) -> None:
        self.settings = SimulatorSettings(kafka_url=kafka_url, athletes=athletes, duration_s=duration_s,
                                          athlete_prefix=prefix, session_id=session, seed=seed,
                                          fatigue_tau_s=60.0)
        self.ids = [f"{prefix}-{i + 1:02d}" for i in range(athletes)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await simulate(self.settings, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> "Feeder":
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self.thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)


def frames_of(n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``n`` plausible frames: mid-range values with a little noise, inside every channel's range."""
    rng = rng or np.random.default_rng(0)
    mid = np.array([(c.lo + c.hi) / 2 for c in CHANNELS])
    span = np.array([c.hi - c.lo for c in CHANNELS])
    return (mid + 0.02 * span * rng.standard_normal((n, N_CHANNELS))).astype(np.float32)


def valid_batch(athlete: str, seq: int, t0: float, *, n: int = 10, sensor: str | None = None,
                session: str = "rel-session", encoding: str = "json") -> bytes:
    return encode_frames(athlete_id=athlete, session_id=session, sensor_id=sensor or f"{athlete}-imu", seq=seq,
                         t0=t0, hz=100.0, frames=frames_of(n, np.random.default_rng(seq)), encoding=encoding)


def history_ends(r: redis.Redis, athlete: str) -> list[float]:
    """Window ends of an athlete's Redis history, checking each entry id matches its window."""
    ends = []
    for eid, fields in r.xrange(keys.risk_history(athlete)):
        end = json.loads(fields[b"v"])["window_end"]
        assert eid.decode() == keys.stream_id(end), (eid, end)
        ends.append(end)
    return ends


def risk_ids(bootstrap: str, **kw) -> list[str]:
    return [json.loads(v)["score_id"] for _, v in read_topic(bootstrap, topics.RISK, **kw)]


def alert_events(bootstrap: str, **kw) -> list[dict]:
    return [json.loads(v) for _, v in read_topic(bootstrap, topics.ALERTS, **kw)]


class PersistentRedis(EmbeddedRedis):
    """redis-server with an append-only file in ``data_dir`` (like production): a restart on
    the same port and folder comes back with its data. ``wipe()`` empties the folder."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        super().__init__(port=port)
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        return [str(redis_binary()), "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir),
                "--protected-mode", "no"]

    def wipe(self) -> None:
        for p in self.data_dir.rglob("*"):
            if p.is_file():
                p.unlink()


class Supervisor:
    """Restarts the worker whenever it exits, as compose (``restart: unless-stopped``) and
    Kubernetes do. ``exits`` records (wall time, exit code) of every exit."""

    def __init__(self, start: Callable[[], WorkerProc]) -> None:
        self._start = start
        self.current = start()
        self.exits: list[tuple[float, int]] = []
        self.starts: list[float] = [time.time()]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopped.wait(0.2):
            code = self.current.proc.poll()
            if code is not None:
                self.exits.append((time.time(), code))
                self.current = self._start()
                self.starts.append(time.time())

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self.current.stop()


class PasswordRedis(EmbeddedRedis):
    """redis-server that requires AUTH with ``password`` (as a production Redis does)."""

    def __init__(self, password: str, port: int = 0) -> None:
        super().__init__(port=port)
        self.password = password

    def _command(self) -> list[str]:
        return [*super()._command(), "--requirepass", self.password]
