"""``injury-monitor demo``: the whole system on one machine, no Docker, no JVM.

Starts the embedded broker and Redis on loopback (unless URLs are given), makes sure a
model exists (training the default one on first run), then runs worker(s), simulator and
dashboard as child processes. Prints ``kafka:``, ``redis:`` and ``dashboard:`` lines.
Ctrl-C, SIGTERM or the end of ``--duration`` stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

from stream.embedded import EmbeddedBroker, EmbeddedRedis, free_port, wait_port
from stream.settings import DemoSettings, WorkerSettings


def _child(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", *args], env=env, start_new_session=True)


def _stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def run_demo(settings: DemoSettings) -> int:
    from engine.train import ensure_default_model

    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    procs: list[subprocess.Popen] = []
    with ExitStack() as stack:
        kafka_url, redis_url = settings.kafka_url, settings.redis_url
        if not settings.external_kafka:
            broker = stack.enter_context(EmbeddedBroker(port=settings.kafka_port))
            kafka_url = broker.url
        if not settings.external_redis:
            redis = stack.enter_context(EmbeddedRedis(port=settings.redis_port))
            redis_url = redis.url
        print(f"kafka: {kafka_url.replace('kafka://', '')}", flush=True)
        print(f"redis: {redis_url.rsplit('/', 1)[0]}", flush=True)
        model_dir = WorkerSettings().model_dir
        ensure_default_model(model_dir, progress=True)
        env = {**os.environ, "INJURY_MONITOR_KAFKA_URL": kafka_url, "INJURY_MONITOR_REDIS_URL": redis_url,
               "INJURY_MONITOR_MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1"}
        try:
            for _ in range(settings.workers):
                procs.append(_child(["worker", "--web-port", str(free_port())], env))
            # binary frames: the embedded broker keeps every record (no retention), 2.7x less memory than JSON
            sim = ["simulate", "--athletes", str(settings.athletes), "--encoding", "binary"]
            if settings.duration_s is not None:
                sim += ["--duration", str(settings.duration_s)]
            procs.append(_child(sim, env))
            if settings.dashboard:
                port = settings.dashboard_port or free_port()
                procs.append(_child(["dashboard", "--port", str(port), "--address", "127.0.0.1"], env))
                wait_port("127.0.0.1", port, 60)
                print(f"dashboard: http://127.0.0.1:{port}", flush=True)
            deadline = None if settings.duration_s is None else time.monotonic() + settings.duration_s + 5
            while not stopping["flag"]:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                dead = [p for p in procs if p.poll() not in (None, 0)]
                if dead:
                    print(f"a demo process exited with {dead[0].returncode}: {' '.join(dead[0].args[3:5])}",
                          file=sys.stderr)
                    return 1
                time.sleep(0.2)
        finally:
            _stop(procs)
    print("demo stopped", flush=True)
    return 0
