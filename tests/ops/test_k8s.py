"""Kubernetes manifests (ops/k8s), checked offline.

No cluster and no kustomize binary are needed: `render` below builds a kustomization the way
kustomize does for the features these manifests use (resources, components, strategic-merge
and JSON 6902 patches, images, namespace). Where `kubectl` is installed, its built-in
kustomize renders the same overlays and the two results must be equal. Every rendered
resource is validated against the Kubernetes 1.37 schemas with `kubernetes-validate`
(strict: unknown fields are errors); KEDA resources, whose schemas are not shipped, are
checked field by field. Pod environments are resolved as the kubelet and KEDA resolve them,
and fed to the project's own settings classes.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from schemas import topics
from stream.settings import DemoSettings, ServiceSettings, SimulatorSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "ops" / "k8s"
BASE = K8S / "base"
COMPONENTS = K8S / "components"
OVERLAYS = K8S / "overlays"
K8S_VERSION = "1.37"
WORKER = "injury-monitor-worker"
DASHBOARD = "injury-monitor-dashboard"
CONFIGMAP = "injury-monitor-config"

# base + these components, in this order (components that patch another one come after it)
COMBOS: dict[str, list[str]] = {
    "base": [],
    # (not "gpu": tests/conftest.py skips items with a "gpu" keyword, parametrize ids included)
    "gpu-workers": ["gpu"],
    "keda": ["keda"],
    "external-kafka": ["external-kafka"],
    "external-redis": ["external-redis"],
    "kafka-ca": ["external-kafka", "kafka-ca"],
    "keda-external-kafka": ["keda", "external-kafka", "keda-external-kafka"],
    "everything": ["gpu", "keda", "external-kafka", "keda-external-kafka", "external-redis", "kafka-ca"],
}
OVERLAY_NAMES = sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())

# What an operator would put in the Secrets the components read (see their READMEs).
FAKE_SECRETS: dict[str, dict[str, str]] = {
    "injury-monitor-kafka": {
        "bootstrap-servers": "b-1.kafka.test:9096,b-2.kafka.test:9096",
        "username": "injury-monitor",
        "password": "kafka-secret",
        "keda-sasl": "scram_sha512",
        "keda-tls": "enable",
    },
    "injury-monitor-redis": {"url": "rediss://redis.test:6380/0", "password": "redis-secret"},
    "injury-monitor-kafka-ca": {"ca.crt": "-----BEGIN CERTIFICATE-----"},
}
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


class RenderError(AssertionError):
    """A kustomization that kustomize would refuse (e.g. a patch whose target does not exist)."""


# ---------------------------------------------------------------------------------------------
# A small kustomize
# ---------------------------------------------------------------------------------------------

# Strategic-merge keys of the Kubernetes lists these manifests patch (others are replaced).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def strategic_merge(orig: Any, patch: Any, key: str | None = None) -> Any:
    """Merge `patch` into `orig` like kustomize: maps merge, null deletes, keyed lists merge
    by key (patched elements first, in patch order, then the untouched originals)."""
    if isinstance(orig, dict) and isinstance(patch, dict):
        out = dict(orig)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = _drop_nulls(v)
        return out
    if isinstance(orig, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        by_key = {item[mk]: item for item in orig}
        patched = [strategic_merge(by_key.get(item[mk], {}), item) for item in patch]
        names = {item[mk] for item in patch}
        return patched + [item for item in orig if item[mk] not in names]
    return _drop_nulls(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            if isinstance(node, list):
                del node[int(last)]
            elif last in node:
                del node[last]
            else:
                raise RenderError(f"remove {op['path']}: no such field")
        elif op["op"] in ("add", "replace"):
            if isinstance(node, list):
                if last == "-":
                    node.append(op["value"])
                elif op["op"] == "add":
                    node.insert(int(last), op["value"])
                else:
                    node[int(last)] = op["value"]
            else:
                node[last] = op["value"]
        else:
            raise RenderError(f"unsupported JSON 6902 op {op['op']}")
    return doc


def _group_version(doc: dict[str, Any]) -> tuple[str, str]:
    api = doc["apiVersion"]
    return tuple(api.split("/")) if "/" in api else ("", api)  # type: ignore[return-value]


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    group, version = _group_version(doc)
    return (
        doc["kind"] == target["kind"]
        and doc["metadata"]["name"] == target.get("name", doc["metadata"]["name"])
        and group == target.get("group", group)
        and version == target.get("version", version)
    )


def _apply_patch(resources: list[dict[str, Any]], entry: dict[str, Any], where: Path) -> list[dict[str, Any]]:
    text = (where / entry["path"]).read_text() if "path" in entry else entry["patch"]
    body = yaml.safe_load(text)
    if "target" in entry:
        target = entry["target"]
    else:
        group, version = _group_version(body)
        target = {"kind": body["kind"], "name": body["metadata"]["name"], "group": group, "version": version}
    hits = [i for i, doc in enumerate(resources) if _matches(doc, target)]
    if not hits:
        raise RenderError(f"{where / 'kustomization.yaml'}: patch {entry.get('path', '(inline)')} matches no resource {target}")
    out = list(resources)
    for i in hits:
        out[i] = json6902(out[i], body) if isinstance(body, list) else strategic_merge(out[i], body)
    return out


def _split_image(image: str) -> tuple[str, str | None]:
    slash = image.rfind("/")
    colon = image.rfind(":")
    return (image[:colon], image[colon + 1:]) if colon > slash else (image, None)


def _set_images(doc: dict[str, Any], rules: list[dict[str, str]]) -> dict[str, Any]:
    pod = doc.get("spec", {}).get("template", {}).get("spec")
    if not pod:
        return doc
    doc = copy.deepcopy(doc)
    pod = doc["spec"]["template"]["spec"]
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, tag = _split_image(container["image"])
        for rule in rules:
            if rule["name"] == name:
                name, tag = rule.get("newName", name), rule.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name
                break
    return doc


def render(directory: Path, accumulated: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Build the kustomization (or, with `accumulated`, apply the component) in `directory`."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    is_component = spec.get("kind") == "Component"
    if is_component != (accumulated is not None):
        raise RenderError(f"{directory}: a Component must be listed under components, a Kustomization under resources")
    resources = list(accumulated or [])
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_docs(path)
    for entry in spec.get("components", []):
        resources = render((directory / entry).resolve(), resources)
    for entry in spec.get("patches", []):
        resources = _apply_patch(resources, entry, directory)
    if spec.get("images"):
        resources = [_set_images(doc, spec["images"]) for doc in resources]
    if spec.get("namespace"):
        resources = [strategic_merge(doc, {"metadata": {"namespace": spec["namespace"]}}) for doc in resources]
    ids = [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in resources]
    if len(ids) != len(set(ids)):
        raise RenderError(f"{directory}: duplicate resources {sorted(ids)}")
    return resources


def write_combo(tmp_path: Path, components: list[str]) -> Path:
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    spec = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, overlay)],
        "components": [os.path.relpath(COMPONENTS / c, overlay) for c in components],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return overlay


def by_id(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in resources}


# ---------------------------------------------------------------------------------------------
# Validation and environment resolution
# ---------------------------------------------------------------------------------------------

def validate_keda(doc: dict[str, Any], resources: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Field checks for the KEDA kinds (no schema ships with kubernetes-validate)."""
    assert doc["apiVersion"] == "keda.sh/v1alpha1", doc["apiVersion"]
    spec = doc["spec"]
    if doc["kind"] == "ScaledObject":
        assert set(spec) <= {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "minReplicaCount",
                             "maxReplicaCount", "idleReplicaCount", "advanced", "triggers", "fallback"}, spec.keys()
        ref = spec["scaleTargetRef"]
        assert ("Deployment", ref["name"]) in resources, f"scaleTargetRef {ref['name']} is not rendered"
        assert set(ref) <= {"apiVersion", "kind", "name", "envSourceContainerName"}
        for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            assert isinstance(spec[key], int) and spec[key] >= 0, key
        for trigger in spec["triggers"]:
            assert set(trigger) <= {"type", "metadata", "authenticationRef", "name", "metricType", "useCachedMetrics"}
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), "KEDA trigger metadata values are strings"
            if "authenticationRef" in trigger:
                assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in resources
    elif doc["kind"] == "TriggerAuthentication":
        assert set(spec) <= {"secretTargetRef", "env", "podIdentity", "configMapTargetRef"}
        for ref in spec["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}, ref
    else:
        raise AssertionError(f"unexpected KEDA kind {doc['kind']}")


def validate_all(resources: list[dict[str, Any]]) -> None:
    index = by_id(resources)
    for doc in resources:
        if doc["apiVersion"].startswith("keda.sh/"):
            validate_keda(doc, index)
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}") from None


def pod_spec(resources: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_id(resources)[("Deployment", name)]["spec"]["template"]["spec"]


def container(resources: list[dict[str, Any]], deployment: str, name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(resources, deployment)["containers"] if c["name"] == name)


def resolve_env(resources: list[dict[str, Any]], c: dict[str, Any], *, expand: bool = True) -> dict[str, str]:
    """The container's environment: envFrom, then env in order; `$(VAR)` expanded from what is
    defined before it (the kubelet), or left alone (KEDA's resolver, expand=False)."""
    index = by_id(resources)

    def configmap(name: str) -> dict[str, str]:
        return index[("ConfigMap", name)].get("data", {})

    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(configmap(source["configMapRef"]["name"]))
    for entry in c.get("env", []):
        if "value" in entry:
            value = entry["value"]
            if expand:
                value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)
        else:
            source = entry["valueFrom"]
            assert len(source) == 1, f"{entry['name']}: one source, got {sorted(source)}"
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in configmap(ref["name"]), f"{entry['name']}: ConfigMap {ref['name']} has no key {ref['key']}"
                value = configmap(ref["name"])[ref["key"]]
            else:
                ref = source["secretKeyRef"]
                value = FAKE_SECRETS[ref["name"]][ref["key"]]
        env[entry["name"]] = value
    return env


# Every INJURY_MONITOR_* name a setting class knows (the ConfigMap is shared by all services).
KNOWN_SETTINGS = {
    f"INJURY_MONITOR_{name.upper()}"
    for cls in (WorkerSettings, SimulatorSettings, DemoSettings)
    for name in cls.model_fields
}


def settings_from_env(cls: type[ServiceSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`cls()` built from exactly `env`, the way the service builds it in its container."""
    for key in list(os.environ):
        if key.startswith("INJURY_MONITOR_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("INJURY_MONITOR_"):
            assert key in KNOWN_SETTINGS, f"{key} is not a setting in stream/settings.py (typo?)"
            monkeypatch.setenv(key, value)
    return cls()


def writable_mounts(pod: dict[str, Any], c: dict[str, Any]) -> list[str]:
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    return [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in empty_dirs and not m.get("readOnly")]


def under(path: str, mounts: list[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match.group(1)) * units.get(match.group(2), 1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = {name: render(write_combo(tmp_path_factory.mktemp(name), comps)) for name, comps in COMBOS.items()}
    out.update({f"overlay:{name}": render(OVERLAYS / name) for name in OVERLAY_NAMES})
    return out


ALL_RENDERS = list(COMBOS) + [f"overlay:{n}" for n in OVERLAY_NAMES]


def uses(render_name: str, component: str) -> bool:
    if render_name.startswith("overlay:"):
        spec = yaml.safe_load((OVERLAYS / render_name.split(":", 1)[1] / "kustomization.yaml").read_text())
        return any(Path(c).name == component for c in spec.get("components", []))
    return component in COMBOS[render_name]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def resource_files() -> list[Path]:
    files = []
    for kfile in sorted(K8S.rglob("kustomization.yaml")):
        for entry in yaml.safe_load(kfile.read_text()).get("resources", []):
            path = kfile.parent / entry
            if path.is_file():
                files.append(path)
    return files


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_resource_file_validates_on_its_own(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    index = by_id(render(BASE)) | by_id(docs)
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            validate_keda(doc, index | {("TriggerAuthentication", "injury-monitor-kafka"): {}})
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_base_has_one_file_per_resource() -> None:
    for path in resource_files():
        if path.is_relative_to(BASE):
            assert len(load_docs(path)) == 1, f"{path}: one resource per file"


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_rendered_manifests_validate(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    validate_all(rendered[name])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (built-in kustomize) is not installed")
@pytest.mark.parametrize("name", ALL_RENDERS)
def test_render_matches_kubectl_kustomize(rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path) -> None:
    directory = OVERLAYS / name.split(":", 1)[1] if name.startswith("overlay:") else write_combo(tmp_path, COMBOS[name])
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = by_id([d for d in yaml.safe_load_all(result.stdout) if d])
    ours = by_id(rendered[name])
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key] == theirs[key], f"{key} differs from kustomize's rendering"


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    doc = copy.deepcopy(by_id(rendered["base"])[("Deployment", WORKER)])
    ctx = doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    ctx["readOnlyRootFileSystem"] = ctx.pop("readOnlyRootFilesystem")
    with pytest.raises(AssertionError, match="readOnlyRootFileSystem"):
        validate_all([doc])


def test_a_patch_without_a_base_resource_is_refused(tmp_path: Path) -> None:
    component = tmp_path / "components" / "stray"
    component.mkdir(parents=True)
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - path: patch.yaml\n")
    (component / "patch.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: injury-monitor-wroker\nspec:\n  replicas: 3\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(BASE, overlay)], "components": ["../components/stray"]}))
    with pytest.raises(RenderError, match="injury-monitor-wroker"):
        render(overlay)


def test_every_component_has_a_readme_and_is_rendered() -> None:
    covered = {c for comps in COMBOS.values() for c in comps}
    for directory in sorted(p for p in COMPONENTS.iterdir() if p.is_dir()):
        assert (directory / "README.md").is_file(), f"{directory} has no README.md"
        assert yaml.safe_load((directory / "kustomization.yaml").read_text())["kind"] == "Component"
        assert directory.name in covered, f"component {directory.name} is not in COMBOS"
        assert directory.name in COMBOS["everything"]


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_pods_run_hardened_with_requests_and_limits(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for deployment in (WORKER, DASHBOARD):
        pod = pod_spec(rendered[name], deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        assert ("ServiceAccount", pod["serviceAccountName"]) in by_id(rendered[name])
        for c in pod["containers"] + pod.get("initContainers", []):
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, c["name"]
            assert ctx["allowPrivilegeEscalation"] is False, c["name"]
            assert ctx["capabilities"]["drop"] == ["ALL"], c["name"]
            for resource in ("cpu", "memory"):
                request, limit = c["resources"]["requests"][resource], c["resources"]["limits"][resource]
                assert quantity(request) <= quantity(limit), (c["name"], resource)
        for c in pod["containers"]:
            assert under("/tmp", writable_mounts(pod, c)), f"{c['name']}: /tmp must be an emptyDir"
            assert under(c["workingDir"], writable_mounts(pod, c)), f"{c['name']}: working dir must be writable"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in c, (c["name"], probe)


def _port(c: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p["name"] == port)


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_worker_env_probes_and_paths_match_the_settings(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    pod = pod_spec(resources, WORKER)
    worker = container(resources, WORKER, "worker")
    settings = settings_from_env(WorkerSettings, resolve_env(resources, worker), monkeypatch)
    assert worker["command"] == ["injury-monitor", "worker"]
    assert settings.app_id == WorkerSettings.model_fields["app_id"].default
    assert settings.partitions == WorkerSettings.model_fields["partitions"].default
    assert settings.web_bind == "0.0.0.0"
    assert "$(" not in settings.kafka_url, f"unexpanded reference in {settings.kafka_url}"
    assert settings.bootstrap_servers, settings.kafka_url
    assert _port(worker, worker["livenessProbe"]["httpGet"]["port"]) == settings.web_port
    assert _port(worker, worker["readinessProbe"]["httpGet"]["port"]) == settings.web_port
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["startupProbe"]["httpGet"]["path"] == "/health"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
    annotations = by_id(resources)[("Deployment", WORKER)]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings.web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    # read-only root: the model folder (copied there by the init container) must be writable
    assert under(str(settings.model_dir), writable_mounts(pod, worker)), settings.model_dir
    seed = next(c for c in pod["initContainers"] if c["name"] == "seed-model")
    assert seed["image"] == worker["image"], "the model must come from the worker's own image"
    assert str(settings.model_dir).startswith(seed["command"][-1]), (seed["command"], settings.model_dir)
    assert under(seed["command"][-1], writable_mounts(pod, seed))


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_dashboard_is_served_and_probed_on_streamlit_port(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    dash = container(resources, DASHBOARD, "dashboard")
    settings = settings_from_env(ServiceSettings, resolve_env(resources, dash), monkeypatch)
    assert settings.redis_url.startswith(("redis://", "rediss://"))
    command = dash["command"]
    assert command[:2] == ["injury-monitor", "dashboard"]
    port = int(command[command.index("--port") + 1])
    assert command[command.index("--address") + 1] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert dash[probe]["httpGet"]["path"] == "/_stcore/health"
        assert _port(dash, dash[probe]["httpGet"]["port"]) == port
    service = by_id(resources)[("Service", DASHBOARD)]
    assert _port(dash, service["spec"]["ports"][0]["targetPort"]) == port
    labels = by_id(resources)[("Deployment", DASHBOARD)]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_selectors_match_pod_labels(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    index = by_id(rendered[name])
    for deployment in (WORKER, DASHBOARD):
        spec = index[("Deployment", deployment)]["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    worker_labels = index[("Deployment", WORKER)]["spec"]["template"]["metadata"]["labels"]
    assert index[("PodDisruptionBudget", WORKER)]["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if uses(n, "keda")])
def test_keda_scales_the_faust_consumer_group_up_to_the_partitions(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    index = by_id(resources)
    scaled = index[("ScaledObject", WORKER)]["spec"]
    [trigger] = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == WorkerSettings.model_fields["app_id"].default == "injury-monitor"
    assert meta["topic"] == topics.FRAMES
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= WorkerSettings().partitions
    assert int(meta["lagThreshold"]) > 0
    assert meta["allowIdleConsumers"] == "false"
    assert scaled["scaleTargetRef"]["name"] == WORKER
    assert "replicas" not in index[("Deployment", WORKER)]["spec"], "the HPA owns the replica count"

    worker = container(resources, WORKER, scaled["scaleTargetRef"]["envSourceContainerName"])
    settings = settings_from_env(WorkerSettings, resolve_env(resources, worker), monkeypatch)
    assert meta["consumerGroup"] == settings.app_id
    assert scaled["maxReplicaCount"] <= settings.partitions
    keda_env = resolve_env(resources, worker, expand=False)
    assert keda_env[meta["bootstrapServersFromEnv"]] == settings.bootstrap_servers

    if settings.kafka_sasl_mechanism:
        assert "authenticationRef" in trigger, "SASL Kafka needs KEDA credentials (keda-external-kafka)"
    if "authenticationRef" in trigger:
        auth = index[("TriggerAuthentication", trigger["authenticationRef"]["name"])]["spec"]
        params = {r["parameter"]: FAKE_SECRETS[r["name"]][r["key"]] for r in auth["secretTargetRef"]}
        assert params["sasl"] == KEDA_SASL[settings.kafka_sasl_mechanism]
        assert params["tls"] == ("enable" if settings.kafka_security_protocol.endswith("SSL") else "disable")
        assert params["username"] == settings.kafka_sasl_username
        assert params["password"] == settings.kafka_sasl_password.get_secret_value()


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if uses(n, "gpu")])
def test_gpu_workers_get_one_gpu_on_gpu_nodes(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    pod = pod_spec(resources, WORKER)
    worker = container(resources, WORKER, "worker")
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in pod["tolerations"])
    assert "cuda" in worker["image"]
    settings = settings_from_env(WorkerSettings, resolve_env(resources, worker), monkeypatch)
    assert settings.backend in ("tensorrt", "torch")
    # the dashboard stays on the CPU image
    assert "nvidia.com/gpu" not in container(resources, DASHBOARD, "dashboard")["resources"]["limits"]
    assert "cuda" not in container(resources, DASHBOARD, "dashboard")["image"]


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if not uses(n, "gpu")])
def test_cpu_workers_use_the_cpu_backend(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = container(rendered[name], WORKER, "worker")
    assert "nvidia.com/gpu" not in worker["resources"]["limits"]
    settings = settings_from_env(WorkerSettings, resolve_env(rendered[name], worker), monkeypatch)
    assert settings.backend == "onnxruntime"


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if uses(n, "external-kafka")])
def test_external_kafka_comes_from_the_secret(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    settings = settings_from_env(WorkerSettings, resolve_env(resources, container(resources, WORKER, "worker")), monkeypatch)
    secret = FAKE_SECRETS["injury-monitor-kafka"]
    assert settings.bootstrap_servers == secret["bootstrap-servers"]
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism in KEDA_SASL
    assert settings.kafka_sasl_username == secret["username"]
    assert settings.kafka_sasl_password.get_secret_value() == secret["password"]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in by_id(resources)[("ConfigMap", CONFIGMAP)]["data"]


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if uses(n, "external-redis")])
def test_external_redis_comes_from_the_secret(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    secret = FAKE_SECRETS["injury-monitor-redis"]
    for deployment, name_ in ((WORKER, "worker"), (DASHBOARD, "dashboard")):
        env = resolve_env(resources, container(resources, deployment, name_))
        settings = settings_from_env(ServiceSettings, env, monkeypatch)
        assert settings.redis_url == secret["url"]
        assert settings.redis_password.get_secret_value() == secret["password"]
    assert "INJURY_MONITOR_REDIS_URL" not in by_id(resources)[("ConfigMap", CONFIGMAP)]["data"]


@pytest.mark.parametrize("name", [n for n in ALL_RENDERS if uses(n, "kafka-ca")])
def test_kafka_ca_file_is_mounted_from_its_secret(
    rendered: dict[str, list[dict[str, Any]]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered[name]
    pod = pod_spec(resources, WORKER)
    worker = container(resources, WORKER, "worker")
    settings = settings_from_env(WorkerSettings, resolve_env(resources, worker), monkeypatch)
    cafile = settings.kafka_ssl_cafile
    assert cafile is not None
    [mount] = [m for m in worker["volumeMounts"] if str(cafile).startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
    key = items[str(cafile)[len(mount["mountPath"]) + 1:]]
    assert key in FAKE_SECRETS[volume["secret"]["secretName"]]


def test_secret_keys_are_documented_in_the_component_readmes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    referenced: set[tuple[str, str]] = set()
    for doc in rendered["everything"]:
        if doc["kind"] == "TriggerAuthentication":
            referenced |= {(r["name"], r["key"]) for r in doc["spec"]["secretTargetRef"]}
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            for c in pod["containers"] + pod.get("initContainers", []):
                referenced |= {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                               for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
            for v in pod.get("volumes", []):
                if "secret" in v:
                    referenced |= {(v["secret"]["secretName"], i["key"]) for i in v["secret"]["items"]}
    assert referenced == {(s, k) for s, keys in FAKE_SECRETS.items() for k in keys}
    readmes = "\n".join(p.read_text() for p in COMPONENTS.glob("*/README.md"))
    for secret, key in sorted(referenced):
        commands = re.findall(rf"create secret generic {re.escape(secret)}\b.*?(?:\n\n|```)", readmes, re.S)
        assert commands, f"no README shows how to create Secret {secret}"
        assert any(f"{key}=" in c for c in commands), f"README command for {secret} lacks key {key}"


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_only_settings_fields_are_configured(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    fields = {f"INJURY_MONITOR_{f.upper()}" for f in WorkerSettings.model_fields}
    configmap = by_id(rendered[name])[("ConfigMap", CONFIGMAP)]["data"]
    names = [k for k in configmap if k.startswith("INJURY_MONITOR_")]
    for deployment in (WORKER, DASHBOARD):
        for c in pod_spec(rendered[name], deployment)["containers"]:
            names += [e["name"] for e in c.get("env", []) if e["name"].startswith("INJURY_MONITOR_")]
    unknown = sorted(set(names) - fields)
    assert not unknown, f"not settings in stream/settings.py: {unknown}"
    assert set(configmap) - fields <= {"KAFKA_BOOTSTRAP_SERVERS"}
