"""docker-compose.yml, the Dockerfiles, Prometheus and Grafana files, checked offline.

No Docker engine runs here, so nothing is built or started: the compose file is validated
against the Compose specification (`check-jsonschema --builtin-schema vendor.compose-spec`)
and its wiring is checked against the project's own settings, topics and agreed metric names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import topics
from stream.metrics import WorkerMetrics
from stream.settings import DemoSettings, ServiceSettings, SimulatorSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "ops" / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards" / "injury-monitor.json"
DOCKERFILE = ROOT / "ops" / "docker" / "Dockerfile"
DOCKERFILE_CUDA = ROOT / "ops" / "docker" / "Dockerfile.cuda"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# Names agreed for the worker and the simulator (issue 7); the dashboard must show them all.
AGREED_WORKER_METRICS = {
    "injury_frames_total", "injury_messages_total", "injury_rejected_total", "injury_windows_scored_total",
    "injury_windows_skipped_total", "injury_batch_size", "injury_inference_seconds", "injury_end_to_score_seconds",
    "injury_consumer_lag", "injury_embedding_cache_total", "injury_alerts_total",
}
HISTOGRAMS = {"injury_batch_size", "injury_inference_seconds", "injury_end_to_score_seconds"}
SIMULATOR_METRICS = {"injury_sim_messages_total", "injury_sim_frames_total"}
SIMULATOR_METRICS_PORT = 9101
STREAMLIT_PORT = 8501
APP_IMAGES = ("injury-monitor:", "injury-monitor-cuda:")
KNOWN_SETTINGS = {
    f"INJURY_MONITOR_{name.upper()}"
    for cls in (WorkerSettings, SimulatorSettings, DemoSettings)
    for name in cls.model_fields
}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, $$)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        if op in (":?", "?"):
            assert env.get(name), f"${{{name}}} is required"
        return env.get(name, "")

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` sees it with no variables set."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), {})


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith(APP_IMAGES)}


def settings_from_env(cls: type[ServiceSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in list(os.environ):
        if key.startswith("INJURY_MONITOR_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("INJURY_MONITOR_"):
            assert key in KNOWN_SETTINGS, f"{key} is not a setting in stream/settings.py (typo?)"
            monkeypatch.setenv(key, value)
    return cls()


def run_check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=60)


# --- the Compose specification -------------------------------------------------------------

def test_compose_file_follows_the_compose_spec() -> None:
    result = run_check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["worker"]["replicaz"] = 3
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run_check_jsonschema(path)
    assert result.returncode != 0
    assert "replicaz" in result.stdout + result.stderr


# --- Kafka, topics, Redis --------------------------------------------------------------------

def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_runs_in_kraft_mode_with_internal_and_host_listeners(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = env_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    # the apache/kafka image exits at start when it sees these deprecated variables
    assert not {"KAFKA_ADVERTISED_HOST", "KAFKA_ADVERTISED_PORT", "KAFKA_HOST", "KAFKA_PORT"} & set(env)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    voter_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].rsplit(":", 1)[1]
    assert listeners[controller].endswith(f":{voter_port}")
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert len(advertised) == 2, "one listener for the compose network, one for the host"
    # every app container reaches an advertised internal listener
    for name, service in app_services(compose).items():
        servers = ServiceSettings(kafka_url=env_of(service)["INJURY_MONITOR_KAFKA_URL"]).bootstrap_servers
        assert servers in advertised.values(), (name, servers)
    # the host listener is published on the port it advertises
    [host] = [n for n in advertised if advertised[n].split(":")[0] != "kafka"]
    published = [p.rsplit(":", 2) for p in kafka["ports"]]
    assert [advertised[host].rsplit(":", 1)[1], listeners[host].rsplit(":", 1)[1]] in [p[1:] for p in published]
    assert env["KAFKA_NUM_PARTITIONS"] == str(WorkerSettings().partitions)
    assert "kafka-data" in kafka["volumes"][0] and kafka["volumes"][0].endswith(env["KAFKA_LOG_DIRS"])


def test_topics_are_created_once_with_the_worker_partition_count(compose: dict[str, Any]) -> None:
    service = compose["services"]["topics"]
    env = env_of(service)
    assert service["image"] == compose["services"]["kafka"]["image"]
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert service["restart"] == "no"
    assert env["TOPICS"].split() == list(topics.ALL)
    assert int(env["PARTITIONS"]) == WorkerSettings().partitions == SimulatorSettings().partitions
    [script] = service["command"]
    assert service["entrypoint"][0] == "/bin/bash"
    assert "kafka-topics.sh" in script and "--create" in script and "--if-not-exists" in script
    assert '--partitions "$PARTITIONS"' in script and '--topic "$topic"' in script
    check = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_redis_persists_with_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.startswith("redis-data:") and v.endswith(":/data") for v in redis["volumes"])
    assert "redis-data" in compose["volumes"]
    for name, service in app_services(compose).items():
        assert env_of(service)["INJURY_MONITOR_REDIS_URL"].startswith("redis://redis:6379/"), name


# --- workers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_workers_scale_and_wait_for_topics(compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = compose["services"][name]
    assert "container_name" not in worker, "--scale needs generated container names"
    assert "ports" not in worker, "a fixed host port clashes between replicas"
    assert worker["command"] == ["injury-monitor", "worker"]
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    settings = settings_from_env(WorkerSettings, env_of(worker), monkeypatch)
    assert settings.web_bind == "0.0.0.0"
    assert [str(settings.web_port)] == worker["expose"]
    assert settings.app_id == WorkerSettings.model_fields["app_id"].default
    assert settings.partitions == int(env_of(compose["services"]["topics"])["PARTITIONS"])
    probe = worker["healthcheck"]["test"]
    assert f"http://127.0.0.1:{settings.web_port}/ready" in probe[-1]
    compile(probe[-1], "healthcheck", "exec")


def test_gpu_worker_reserves_an_nvidia_device(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "ops/docker/Dockerfile.cuda"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert settings_from_env(WorkerSettings, env_of(gpu), monkeypatch).backend in ("tensorrt", "torch")
    cpu = compose["services"]["worker"]
    assert "profiles" not in cpu and "deploy" not in cpu
    assert settings_from_env(WorkerSettings, env_of(cpu), monkeypatch).backend == "onnxruntime"


def test_dashboard_and_simulator_commands(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard = compose["services"]["dashboard"]
    command = dashboard["command"]
    assert command[:2] == ["injury-monitor", "dashboard"]
    assert command[command.index("--port") + 1] == str(STREAMLIT_PORT)
    assert command[command.index("--address") + 1] == "0.0.0.0"
    assert dashboard["ports"] == [f"127.0.0.1:{STREAMLIT_PORT}:{STREAMLIT_PORT}"]
    assert f":{STREAMLIT_PORT}/_stcore/health" in dashboard["healthcheck"]["test"][-1]
    compile(dashboard["healthcheck"]["test"][-1], "healthcheck", "exec")
    settings_from_env(ServiceSettings, env_of(dashboard), monkeypatch)

    simulator = compose["services"]["simulator"]
    assert simulator["profiles"] == ["sim"]
    command = simulator["command"]
    assert command[:2] == ["injury-monitor", "simulate"]
    assert int(command[command.index("--athletes") + 1]) == SimulatorSettings().athletes
    assert simulator["expose"] == [str(SIMULATOR_METRICS_PORT)]
    assert simulator["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    sim = settings_from_env(SimulatorSettings, env_of(simulator), monkeypatch)
    assert sim.metrics_port == SIMULATOR_METRICS_PORT, "the simulator serves no metrics unless told a port"


def test_every_service_env_name_is_a_setting(compose: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    names = {k for s in raw["services"].values() for k in s.get("environment", {}) if k.startswith("INJURY_MONITOR_")}
    assert names, "no INJURY_MONITOR_* settings found"
    assert not names - KNOWN_SETTINGS, sorted(names - KNOWN_SETTINGS)


def test_mounted_and_built_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
            assert (ROOT / build["context"] / f"{build['dockerfile']}.dockerignore").is_file(), name


# --- Prometheus and Grafana -------------------------------------------------------------------

def test_prometheus_scrapes_every_worker_and_the_simulator(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    mounted = [v for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./ops/prometheus/")]
    assert mounted == ["./ops/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"]

    worker = jobs["worker"]
    assert worker["metrics_path"] == "/metrics"
    [sd] = worker["dns_sd_configs"]
    assert {"worker", "worker-gpu"} <= set(sd["names"])
    assert sd["port"] == WorkerSettings().web_port
    for name in sd["names"]:
        assert compose["services"][name]["expose"] == [str(sd["port"])]

    simulator = jobs["simulator"]
    assert simulator["metrics_path"] == "/metrics"
    [sd] = simulator["dns_sd_configs"]
    assert sd["names"] == ["simulator"] and sd["port"] == SIMULATOR_METRICS_PORT


def _exprs(panels: list[dict[str, Any]]) -> list[str]:
    out = []
    for panel in panels:
        out += [t["expr"] for t in panel.get("targets", [])]
        out += _exprs(panel.get("panels", []))
    return out


def worker_metric_names() -> set[str]:
    """The metric families stream/metrics.py registers (counters without their _total)."""
    registry = WorkerMetrics().registry
    return {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}


def test_the_worker_exports_the_agreed_metrics() -> None:
    missing = AGREED_WORKER_METRICS - worker_metric_names()
    assert not missing, f"stream/metrics.py lacks {sorted(missing)}"


def test_the_simulator_exports_the_agreed_metrics() -> None:
    source = (ROOT / "stream" / "simulator.py").read_text()
    for name in SIMULATOR_METRICS:
        assert f'"{name.removesuffix("_total")}' in source or f'"{name}"' in source, name


def test_grafana_dashboard_shows_the_agreed_metrics_and_only_real_ones() -> None:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    exprs = _exprs(dashboard["panels"])
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\binjury_[a-z_]+", e)}
    assert AGREED_WORKER_METRICS | SIMULATOR_METRICS <= used
    unknown = used - worker_metric_names() - SIMULATOR_METRICS
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    for histogram in HISTOGRAMS:
        assert any(f"{histogram}_bucket" in e for e in exprs), f"no quantile of {histogram}"
    for family in ("injury_rejected_total", "injury_windows_skipped_total"):
        assert any(family in e and "by (reason)" in e for e in exprs), family
    assert any("injury_consumer_lag" in e and "by (topic, partition)" in e for e in exprs)
    assert any("injury_embedding_cache_total" in e and "by (result)" in e for e in exprs)
    assert any("injury_alerts_total" in e and "by (state)" in e for e in exprs)


def test_grafana_dashboard_has_the_operator_panels() -> None:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    panels = dashboard["panels"]
    titles = {p["title"] for p in panels}
    for title in ("Frames in rate", "Rejected by reason", "Windows scored rate", "Batch size", "Inference latency",
                  "Window end to score latency", "Consumer lag per partition", "Embedding cache"):
        assert title in titles, title
    for title in ("Inference latency", "Window end to score latency"):
        [panel] = [p for p in panels if p["title"] == title]
        quantiles = {re.search(r"histogram_quantile\(([0-9.]+)", t["expr"]).group(1) for t in panel["targets"]}
        assert quantiles == {"0.5", "0.99"}, title
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "prometheus"


def test_grafana_provisioning_matches_the_compose_mounts(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./ops/grafana/provisioning"] == "/etc/grafana/provisioning"
    [datasource] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/injury-monitor.yml").read_text())["providers"]
    assert mounts["./ops/grafana/dashboards"] == provider["options"]["path"]
    home = env_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD_JSON.name}"


# --- Dockerfiles -------------------------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def default_arg(path: Path, name: str) -> str:
    [value] = [a.split("=", 1)[1] for i, a in instructions(path) if i == "ARG" and a.startswith(f"{name}=")]
    return value


def ignored(path: Path, source: str) -> bool:
    """Whether the <Dockerfile>.dockerignore of `path` keeps `source` out of the build context."""
    keep = False
    for rule in (path.parent / f"{path.name}.dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if pattern == "*" or source == pattern or source.startswith(pattern + "/"):
            keep = negate
    return not keep


@pytest.mark.parametrize("path", [DOCKERFILE, DOCKERFILE_CUDA], ids=lambda p: p.name)
def test_images_are_multi_stage_and_run_as_non_root(path: Path) -> None:
    all_stages = stages(path)
    assert len(all_stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    final = all_stages[-1]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    runs = " ".join(a for i, a in instructions(path) if i == "RUN")
    assert "pip install" in runs and "--no-deps ." in runs
    assert "injury-monitor train --default --out /app/models/default" in runs
    assert ("CMD", '["injury-monitor", "worker"]') in final
    final_env = " ".join(a for i, a in final if i == "ENV")
    assert "INJURY_MONITOR_WEB_BIND=0.0.0.0" in final_env
    assert f"INJURY_MONITOR_WEB_PORT={WorkerSettings().web_port}" in final_env
    assert "INJURY_MONITOR_MODEL_DIR=/app/models/default" in final_env


@pytest.mark.parametrize("path", [DOCKERFILE, DOCKERFILE_CUDA], ids=lambda p: p.name)
def test_copied_sources_exist_and_reach_the_build_context(path: Path) -> None:
    copies = [a for i, a in instructions(path) if i == "COPY" and "--from=" not in a]
    assert copies
    packages = {"schemas", "stream", "engine", "dashboard"}
    sources = set()
    for args in copies:
        *srcs, _dest = [a for a in shlex.split(args) if not a.startswith("--")]
        sources |= set(srcs)
    assert packages <= sources, "every package of pyproject.toml is copied"
    for source in sources:
        assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such path"
        assert not ignored(path, source), f"{path.name}: {source} is excluded by the .dockerignore"
    assert ignored(path, ".venv") and ignored(path, "tests")


def test_cpu_image_is_python_3_11_slim_and_cuda_image_is_nvidia() -> None:
    assert default_arg(DOCKERFILE, "PYTHON_IMAGE").startswith("python:3.11-slim")
    bases = [a.split()[0] for i, a in instructions(DOCKERFILE) if i == "FROM"]
    names = {a.split()[-1] for i, a in instructions(DOCKERFILE) if i == "FROM" and " AS " in a.upper()}
    assert all(b == "${PYTHON_IMAGE}" or b in names for b in bases), bases
    cuda_base = default_arg(DOCKERFILE_CUDA, "CUDA_IMAGE")
    assert cuda_base.startswith(("nvidia/cuda:", "pytorch/pytorch:")) and "runtime" in cuda_base
    runs = " ".join(a for i, a in instructions(DOCKERFILE_CUDA) if i == "RUN")
    assert "optional-dependencies']['gpu']" in runs, "the CUDA image installs the gpu extra (TensorRT)"
