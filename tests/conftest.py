"""Test harness: real services on free loopback ports, and the real worker as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from stream.embedded import EmbeddedBroker, EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def broker():
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def kafka_bootstrap(broker) -> str:
    return broker.bootstrap


@pytest.fixture
def redis_server():
    with EmbeddedRedis() as r:
        yield r


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A small but really trained model artifact, shared by the session's tests."""
    from engine.train import train

    return train(tmp_path_factory.mktemp("model") / "tiny", tiny=True, progress=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class WorkerProc:
    def __init__(self, proc: subprocess.Popen, web_port: int, log: Path) -> None:
        self.proc, self.web_port, self.log = proc, web_port, log

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self) -> dict[str, float]:
        """Every series of the worker's /metrics, by name with labels."""
        status, body = self.get("/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                status, body = self.get("/ready")
                if status == 200 and json.loads(body)["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def start_worker(tmp_path, model_dir):
    """Factory: start ``injury-monitor worker`` against given services; all are stopped at teardown."""
    procs: list[WorkerProc] = []

    def start(kafka_url: str, redis_url: str, *, app_id: str = "im-test", wait: bool = True,
              extra_env: dict | None = None) -> WorkerProc:
        port = free_port()
        log = tmp_path / f"worker-{len(procs)}.log"
        env = {**os.environ, "INJURY_MONITOR_KAFKA_URL": kafka_url, "INJURY_MONITOR_REDIS_URL": redis_url,
               "INJURY_MONITOR_MODEL_DIR": str(model_dir), "INJURY_MONITOR_APP_ID": app_id,
               "INJURY_MONITOR_WEB_PORT": str(port), "INJURY_MONITOR_INFERENCE_THREADS": "1",
               "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=env, cwd=ROOT,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        w = WorkerProc(proc, port, log)
        procs.append(w)
        if wait:
            w.wait_ready()
        return w

    yield start
    for w in procs:
        w.stop()
