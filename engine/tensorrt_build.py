"""Build a TensorRT engine from the artifact's ONNX export (TensorRT 10 Python API).

    info = build_engine("models/default/model.onnx", "models/default/engines/model-fp16.engine",
                        fp16=True, min_batch=1, opt_batch=32, max_batch=256,
                        timing_cache="models/default/engines/timing.cache")

* One optimisation profile over the batch axis (``min_batch`` .. ``max_batch``, tuned for
  ``opt_batch``); every other dimension is fixed by the model.
* FP16 (default) or FP32; an FP32 build turns TF32 off so it matches the CPU within 1e-4.
  An FP16 build keeps the image standardisation (the element-wise chain from the ``img``
  and ``regions`` inputs: ``(x - mean) / std``, clipped; the ResNet50 embeddings of two
  images differ in the 4th digit, below FP16's resolution) and every normalisation layer
  in FP32 (:func:`fp32_layers`, ``PREFER_PRECISION_CONSTRAINTS``).
* A timing cache (``timing_cache``) is read if present and written back after the build,
  so rebuilding (another precision, another profile) skips the tactic timing it has seen.
* Beside the engine, ``<engine>.json`` (:class:`EngineInfo`) records the GPU name and
  compute capability, the TensorRT version, precision, profile and the sha256 of the ONNX
  file. :func:`check_engine_compatible` refuses an engine built for another GPU, another
  TensorRT or another model with an :class:`EngineMismatch` that names both sides and how
  to rebuild (``injury-monitor build-engine``).

``tensorrt`` and ``torch`` are imported inside the functions that need them: this module
imports (and its pure functions are tested) on machines without a GPU. TensorRT cannot be
installed on the development machines of this project, so :func:`build_engine` has not
been run here (docs/engine.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.artifact import sha256_file
from engine.exceptions import EngineError

log = logging.getLogger(__name__)

ENGINE_INFO_FORMAT = 1
ENGINES_DIR = "engines"
PRECISIONS = ("fp16", "fp32")
REBUILD_HINT = "injury-monitor build-engine"


class EngineMismatch(EngineError):
    """A TensorRT engine exists but was built for another GPU, TensorRT version or model."""


@dataclass(frozen=True)
class EngineInfo:
    """What an engine was built for; stored as ``<engine>.json`` beside it."""

    engine_file: str                 # file name of the engine (the sidecar sits beside it)
    gpu_name: str                    # torch.cuda.get_device_name, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str          # "9.0"
    tensorrt_version: str            # tensorrt.__version__
    precision: str                   # "fp16" | "fp32"
    min_batch: int
    opt_batch: int
    max_batch: int
    onnx_file: str
    onnx_sha256: str
    model_version: str | None = None
    built_at: str = ""
    build_s: float = 0.0
    n_bytes: int = 0
    format: int = ENGINE_INFO_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str) -> EngineInfo:
        if d.get("format") != ENGINE_INFO_FORMAT:
            raise EngineError(f"{source}: engine info format {d.get('format')!r}, this code reads {ENGINE_INFO_FORMAT}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise EngineError(f"{source}: bad engine info ({exc})") from exc


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model-fp16.engine`` -> ``model-fp16.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def default_engine_path(artifact_dir: str | os.PathLike[str], precision: str = "fp16") -> Path:
    """Where an artifact keeps its engine of this precision: ``<artifact>/engines/model-<precision>.engine``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return Path(artifact_dir) / ENGINES_DIR / f"model-{precision}.engine"


def default_timing_cache(artifact_dir: str | os.PathLike[str]) -> Path:
    return Path(artifact_dir) / ENGINES_DIR / "timing.cache"


def read_engine_info(engine_path: str | os.PathLike[str]) -> EngineInfo:
    """The sidecar of an engine; :class:`EngineError` naming the file if it is missing or corrupt."""
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    if not engine_path.is_file():
        raise EngineError(f"no TensorRT engine at {engine_path}; build one with `{REBUILD_HINT}`")
    if not side.is_file():
        raise EngineError(f"TensorRT engine {engine_path} has no {side.name} beside it (GPU, TensorRT version, "
                          f"precision); rebuild it with `{REBUILD_HINT}`")
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{side} is corrupt: {exc}") from exc
    if not isinstance(raw, dict):
        raise EngineError(f"{side} is corrupt: not a JSON object")
    return EngineInfo.from_dict(raw, source=str(side))


def rebuild_command(engine_path: Path, precision: str, onnx_path: Path | None = None) -> str:
    model = f" --model {onnx_path.parent}" if onnx_path is not None else ""
    return f"{REBUILD_HINT}{model} --out {engine_path} --precision {precision}"


def check_engine_compatible(
    info: EngineInfo,
    *,
    engine_path: str | os.PathLike[str],
    gpu_name: str,
    compute_capability: str,
    tensorrt_version: str,
    onnx_sha256: str | None = None,
    precision: str | None = None,
    onnx_path: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`EngineMismatch` unless the engine ``info`` describes fits this GPU,
    this TensorRT, this model (``onnx_sha256``) and the wanted ``precision``."""
    problems = []
    if info.gpu_name != gpu_name or info.compute_capability != compute_capability:
        problems.append(f"it was built for {info.gpu_name} (compute capability {info.compute_capability}) "
                        f"but this machine has {gpu_name} (compute capability {compute_capability})")
    if info.tensorrt_version != tensorrt_version:
        problems.append(f"it was built with TensorRT {info.tensorrt_version}, this process has TensorRT {tensorrt_version}")
    if onnx_sha256 is not None and info.onnx_sha256 != onnx_sha256:
        problems.append(f"it was built from another model (ONNX sha256 {info.onnx_sha256[:12]}..., "
                        f"the artifact's is {onnx_sha256[:12]}...)")
    if precision is not None and info.precision != precision:
        problems.append(f"it is {info.precision}, {precision} was asked for")
    if problems:
        path = Path(engine_path)
        cmd = rebuild_command(path, precision or info.precision, Path(onnx_path) if onnx_path else None)
        raise EngineMismatch(f"TensorRT engine {path} cannot be used: " + "; ".join(problems)
                             + f". Rebuild it on this machine with `{cmd}` (or start the worker with engine "
                             "rebuild enabled).")


def current_gpu(device: int | str = 0) -> tuple[str, str]:
    """(name, compute capability "major.minor") of a CUDA device, via torch."""
    import torch

    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs a CUDA GPU and torch sees none")
    idx = torch.device(device).index if isinstance(device, str) else int(device)
    idx = 0 if idx is None else idx
    major, minor = torch.cuda.get_device_capability(idx)
    return torch.cuda.get_device_name(idx), f"{major}.{minor}"


def tensorrt_version() -> str:
    import tensorrt as trt

    return str(trt.__version__)


def _model_version(onnx_path: Path) -> str | None:
    try:
        from engine.export import read_onnx_metadata

        return read_onnx_metadata(onnx_path).get("model_version")
    except Exception:  # noqa: BLE001 - the version is informative only
        return None


FP32_INPUTS = ("img", "regions")


def fp32_layers(network: Any, trt: Any, inputs: tuple[str, ...] = FP32_INPUTS) -> list[Any]:
    """Layers an FP16 build keeps in FP32: the element-wise / unary / activation chain that
    starts at the network inputs ``inputs`` (stopping at the first other layer type), and
    every normalisation layer (LayerNorm overflows in FP16)."""
    chain_types = {trt.LayerType.ELEMENTWISE, trt.LayerType.UNARY, trt.LayerType.ACTIVATION}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    reached = set(inputs)
    picked: dict[int, Any] = {}
    changed = True
    while changed:  # layers are topologically ordered, but a fixed point is cheap and safe
        changed = False
        for i, layer in enumerate(layers):
            if i in picked or layer.type not in chain_types:
                continue
            names = {layer.get_input(j).name for j in range(layer.num_inputs) if layer.get_input(j) is not None}
            if names & reached:
                picked[i] = layer
                reached |= {layer.get_output(k).name for k in range(layer.num_outputs)}
                changed = True
    for i, layer in enumerate(layers):
        if layer.type == trt.LayerType.NORMALIZATION:
            picked[i] = layer
    return [picked[i] for i in sorted(picked)]


def build_engine(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    fp16: bool = True,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 256,
    timing_cache: str | os.PathLike[str] | None = None,
    workspace_mb: int = 1024,
    device: int = 0,
    verbose: bool = False,
) -> EngineInfo:
    """Build ``out_path`` (and ``<out_path>.json``) from ``onnx_path``; see the module docstring."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX file {onnx_path} does not exist (export it with `injury-monitor export`)")
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(f"TensorRT is not installed here ({exc}); install the `gpu` extra on a GPU machine") from exc
    import torch

    torch.cuda.set_device(device)  # TensorRT builds for the current CUDA device
    gpu_name, cc = current_gpu(device)
    precision = "fp16" if fp16 else "fp32"
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    pinned = 0
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        for layer in fp32_layers(network, trt):
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                layer.set_output_type(k, trt.float32)
            pinned += 1
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        shape = tuple(inp.shape)
        if shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise EngineError(f"{onnx_path}: input {inp.name} has shape {shape}; only the batch axis may be dynamic")
        rest = shape[1:]
        profile.set_shape(inp.name, (min_batch, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        previous = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(previous)
        config.set_timing_cache(cache, ignore_mismatch=False)

    log.info("building TensorRT %s engine for %s (cc %s), batch %d..%d (opt %d)", precision, gpu_name, cc,
             min_batch, max_batch, opt_batch)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path} (run with verbose=True for the "
                          "builder log; if it mentions memory, raise workspace_mb)")
    data = bytes(serialized)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(out_path)
    side.unlink(missing_ok=True)  # the engine is not usable until its sidecar lands
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out_path)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_cache = cache_path.with_name(f".{cache_path.name}.tmp")
        tmp_cache.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
        os.replace(tmp_cache, cache_path)
    info = EngineInfo(
        engine_file=out_path.name,
        gpu_name=gpu_name,
        compute_capability=cc,
        tensorrt_version=str(trt.__version__),
        precision=precision,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        onnx_file=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        model_version=_model_version(onnx_path),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_s=round(build_s, 3),
        n_bytes=len(data),
        extra={"cuda": torch.version.cuda, "workspace_mb": int(workspace_mb), "fp32_layers": pinned},
    )
    tmp_side = side.with_name(f".{side.name}.tmp")
    tmp_side.write_text(info.to_json(), encoding="utf-8")
    os.replace(tmp_side, side)
    log.info("TensorRT engine %s built in %.1f s (%d bytes)", out_path, build_s, len(data))
    return info
