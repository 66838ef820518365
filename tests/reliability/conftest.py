"""Module-scoped real services for the reliability tests: one broker, one Redis and the
workers a module starts, shared by the module's tests so each catalogue runs against one
running worker (no mocks; see tests/conftest.py for the function-scoped equivalents)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from stream.embedded import EmbeddedBroker, EmbeddedRedis

from .harness import WorkerProc, spawn_worker


_STARTED: list[WorkerProc] = []  # every worker of the session, for failure reports


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed reliability test shows the tail of each worker's log it may have used."""
    rep = yield
    if rep.failed:
        for i, w in enumerate(_STARTED[-4:]):
            try:
                tail = w.log.read_text(errors="replace")[-4000:]
            except OSError:
                continue
            rep.sections.append((f"worker log {w.log.name} (pid {w.proc.pid}, exit {w.proc.poll()})", tail))
    return rep


@pytest.fixture(scope="module")
def mod_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="module")
def mod_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as r:
        yield r


@pytest.fixture(scope="module")
def mod_r(mod_redis) -> redis.Redis:
    return redis.Redis.from_url(mod_redis.url)


@pytest.fixture(scope="module")
def mod_workers(tmp_path_factory, model_dir) -> Iterator[Callable[..., WorkerProc]]:
    """Factory ``start(kafka_url, redis_url, **spawn_worker kwargs)``; every worker is stopped at the end."""
    started: list[WorkerProc] = []
    logs = tmp_path_factory.mktemp("workers")

    def start(kafka_url: str, redis_url: str, **kw) -> WorkerProc:
        log = kw.pop("log", None) or logs / f"worker-{len(started)}.log"
        wait = kw.pop("wait", True)
        w = spawn_worker(kafka_url, redis_url, model_dir, Path(log), wait=False, **kw)
        started.append(w)
        _STARTED.append(w)
        if wait:
            w.wait_ready(90)
        return w

    yield start
    for w in started:
        w.stop()
