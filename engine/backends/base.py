"""The runtime backend contract (Polygraphy-style runners) and the backend registry.

A backend runs a model artifact. The public methods check and measure; subclasses only
implement the ``_activate_impl`` / ``_infer_impl`` / ``_deactivate_impl`` hooks::

    with get_backend("onnxruntime", "models/default", threads=2) as be:
        out = be.infer(x, img, regions, has_img)   # InferenceOutput(prob, time_attn, region_attn)
        be.last_inference_s, be.total_inference_s

Inputs are already normalised (see :class:`engine.scorer.Scorer` for physical units):
``x`` (B, window, C), ``img`` (B, 2048), ``regions`` (B, 49, 64), ``has_img`` (B,), all
float32 and finite, ``has_img`` in [0, 1]. An empty batch returns empty outputs without
calling the implementation; batches above ``max_batch`` are split. Heavy libraries are
imported by each implementation when it is activated, never at import time.

Names. A backend is chosen by a *spec*: a registered backend name (``onnxruntime``,
``torch``, ``tensorrt``), an alias that fixes some options (``torch-cuda``,
``torch-cuda-fp16``, ``tensorrt-fp32``, ... see :data:`BACKEND_SPECS`) or ``auto``:
the first of :data:`AUTO_ORDER` that can run here (TensorRT with a usable engine, then
torch on CUDA, then ONNX Runtime on the CPU, which measured fastest on the CPU at the
worker's micro-batch sizes and robust on a busy node: docs/bench-engine.md).
"""

from __future__ import annotations

import abc
import importlib
import inspect
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engine.artifact import ModelArtifact
from engine.exceptions import BackendUnavailable, EngineError, InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOutput:
    prob: np.ndarray         # (B,) float32
    time_attn: np.ndarray    # (B, T') float32
    region_attn: np.ndarray  # (B, 49) float32; zeros where has_img = 0

    def __len__(self) -> int:
        return int(self.prob.shape[0])


class Backend(abc.ABC):
    """Base class of every runtime backend. Not thread-safe: one caller thread at a time.

    Every implementation accepts ``threads`` and ``max_batch`` (a backend that has no use
    for ``threads`` ignores it), so one set of worker options fits them all.
    """

    name: ClassVar[str] = "base"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.artifact = artifact if isinstance(artifact, ModelArtifact) else ModelArtifact.load(artifact)
        self.max_batch = int(max_batch)
        cfg = self.artifact.meta.config
        self.window = cfg.window
        self.n_channels = cfg.n_channels
        self.time_steps = cfg.time_steps
        self.img_dim = cfg.img_dim
        self.n_regions = cfg.n_regions
        self.region_dim = cfg.region_dim
        self.is_active = False
        self.last_inference_s = 0.0
        self.total_inference_s = 0.0
        self.n_calls = 0
        self.n_samples = 0

    @classmethod
    def available(cls, **opts: Any) -> bool:
        """Whether this backend can run here with these options (library and device present)."""
        return True

    @classmethod
    def available_for(cls, artifact: ModelArtifact, **opts: Any) -> bool:
        """Whether this backend can run ``artifact`` here (e.g. a TensorRT engine exists for
        this GPU). ``auto`` uses it; the default is :meth:`available`."""
        return cls.available(**opts)

    @property
    def label(self) -> str:
        """A short description for logs and benchmark tables, e.g. ``torch-cuda-fp16+graphs``."""
        return self.name

    # ------------------------------------------------------------------ lifecycle
    def activate(self) -> Backend:
        if not self.is_active:
            self._activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self._deactivate_impl()
            finally:
                self.is_active = False

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run zeros through the model at these batch sizes (first-call allocations, kernel
        selection, lazy CUDA-graph capture) without counting them in the statistics."""
        if not self.is_active:
            raise EngineError(f"{self.name} backend is not active: call activate() first")
        for b in batch_sizes:
            n = max(1, min(int(b), self.max_batch))
            self._infer_impl(np.zeros((n, self.window, self.n_channels), np.float32),
                             np.zeros((n, self.img_dim), np.float32),
                             np.zeros((n, self.n_regions, self.region_dim), np.float32),
                             np.zeros((n,), np.float32))

    # ------------------------------------------------------------------ inference
    def infer(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray) -> InferenceOutput:
        if not self.is_active:
            raise EngineError(f"{self.name} backend is not active: call activate() or use it as a context manager")
        b = self._check(x, img, regions, has_img)
        if b == 0:
            return InferenceOutput(
                prob=np.zeros((0,), np.float32),
                time_attn=np.zeros((0, self.time_steps), np.float32),
                region_attn=np.zeros((0, self.n_regions), np.float32),
            )
        t0 = time.perf_counter()
        parts = []
        for s in range(0, b, self.max_batch):
            sl = slice(s, s + self.max_batch)
            parts.append(self._infer_impl(np.ascontiguousarray(x[sl]), np.ascontiguousarray(img[sl]),
                                          np.ascontiguousarray(regions[sl]), np.ascontiguousarray(has_img[sl])))
        dt = time.perf_counter() - t0
        self.last_inference_s = dt
        self.total_inference_s += dt
        self.n_calls += 1
        self.n_samples += b
        prob, t_attn, r_attn = (np.concatenate([p[i] for p in parts]).astype(np.float32, copy=False) for i in range(3))
        if prob.shape != (b,) or t_attn.shape != (b, self.time_steps) or r_attn.shape != (b, self.n_regions):
            raise EngineError(f"{self.name} backend returned shapes {prob.shape}, {t_attn.shape}, {r_attn.shape}")
        return InferenceOutput(prob=prob, time_attn=t_attn, region_attn=r_attn)

    def _check(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray) -> int:
        named = {"x": x, "img": img, "regions": regions, "has_img": has_img}
        for n, a in named.items():
            if not isinstance(a, np.ndarray):
                raise InputError(f"{n} must be a numpy array, got {type(a).__name__}")
            if a.dtype != np.float32:
                raise InputError(f"{n} must be float32, got {a.dtype}")
        b = x.shape[0] if x.ndim == 3 else -1
        want = {
            "x": (b, self.window, self.n_channels),
            "img": (b, self.img_dim),
            "regions": (b, self.n_regions, self.region_dim),
            "has_img": (b,),
        }
        for n, a in named.items():
            if a.shape != want[n]:
                shape = "(B, " + ", ".join(str(d) for d in want[n][1:]) + ")" if len(want[n]) > 1 else "(B,)"
                raise InputError(f"{n} has shape {a.shape}, expected {shape} with the same B as x")
        for n, a in named.items():
            if a.size and not np.isfinite(a).all():
                raise InputError(f"{n} contains NaN or Inf (absent channels must be set to 0 after normalisation)")
        if has_img.size and (has_img.min() < 0.0 or has_img.max() > 1.0):
            raise InputError("has_img must be in [0, 1]")
        return b

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    @abc.abstractmethod
    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    @abc.abstractmethod
    def _deactivate_impl(self) -> None: ...


# --------------------------------------------------------------------------- registry
BACKENDS: dict[str, str] = {
    "onnxruntime": "engine.backends.onnxruntime:OnnxRuntimeBackend",
    "torch": "engine.backends.torch:TorchBackend",
    "tensorrt": "engine.backends.tensorrt:TensorRTBackend",
}

# Aliases: a registered backend plus fixed options.
BACKEND_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "onnxruntime-cpu": ("onnxruntime", {}),
    "onnxruntime-sharded": ("onnxruntime", {"shards": 2}),
    "onnxruntime-single": ("onnxruntime", {"shards": 1}),
    "torch-cpu": ("torch", {"device": "cpu"}),
    "torch-cuda": ("torch", {"device": "cuda"}),
    "torch-cuda-fp16": ("torch", {"device": "cuda", "precision": "fp16"}),
    "torch-cuda-eager": ("torch", {"device": "cuda", "cuda_graphs": False}),
    "torch-cuda-fp16-eager": ("torch", {"device": "cuda", "precision": "fp16", "cuda_graphs": False}),
    "tensorrt-fp16": ("tensorrt", {"precision": "fp16"}),
    "tensorrt-fp32": ("tensorrt", {"precision": "fp32"}),
}

# ``auto``: fastest first, by availability (CPU: ONNX Runtime, see docs/bench-engine.md).
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "torch-cuda", "onnxruntime-cpu")


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise EngineError(f"unknown backend {name!r}; choose one of {backend_names()} or 'auto'")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def backend_names() -> list[str]:
    """Every spec :func:`get_backend` accepts, except ``auto``."""
    return sorted(set(BACKENDS) | set(BACKEND_SPECS))


def resolve_spec(spec: str, **opts: Any) -> tuple[str, dict[str, Any]]:
    """``spec`` (a backend name or an alias) -> (registered backend name, options).
    Options given here override the alias's, except that an alias's fixed options
    must not be contradicted (``torch-cuda`` with ``device="cpu"`` is an error)."""
    if spec in BACKENDS:
        return spec, dict(opts)
    if spec in BACKEND_SPECS:
        name, fixed = BACKEND_SPECS[spec]
        clash = {k: (opts[k], v) for k, v in fixed.items() if k in opts and opts[k] != v}
        if clash:
            raise EngineError(f"backend {spec!r} fixes {sorted(clash)}; got {clash}")
        return name, {**opts, **fixed}
    raise EngineError(f"unknown backend {spec!r}; choose one of {backend_names()} or 'auto'")


def _accepted(cls: type[Backend], opts: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(opts)
    return {k: v for k, v in opts.items() if k in params}


def auto_choice(artifact: ModelArtifact, **opts: Any) -> tuple[str, dict[str, Any]]:
    """The first spec of :data:`AUTO_ORDER` that can run ``artifact`` here, as
    (backend name, options); options a candidate does not take are dropped for it."""
    tried = []
    for spec in AUTO_ORDER:
        name, fixed = BACKEND_SPECS.get(spec, (spec, {}))
        try:
            cls = backend_class(name)
        except ImportError as exc:  # pragma: no cover - a broken optional install
            tried.append(f"{spec}: {exc}")
            continue
        cand = {**_accepted(cls, {k: v for k, v in opts.items() if k not in fixed}), **fixed}
        if cls.available_for(artifact, **cand):
            return name, cand
        tried.append(spec)
    raise BackendUnavailable(f"no backend of {AUTO_ORDER} can run here (tried {tried})")


def get_backend(name: str, artifact_dir: ModelArtifact | str | os.PathLike[str], **opts: Any) -> Backend:
    """A backend by spec (see the module docstring), not yet activated. Raises
    :class:`BackendUnavailable` if it cannot run here."""
    artifact = artifact_dir if isinstance(artifact_dir, ModelArtifact) else ModelArtifact.load(artifact_dir)
    if name == "auto":
        backend, bopts = auto_choice(artifact, **opts)
        log.info("backend auto -> %s %s", backend, {k: v for k, v in bopts.items() if k not in ("threads",)})
    else:
        backend, bopts = resolve_spec(name, **opts)
    cls = backend_class(backend)
    if not cls.available(**bopts):
        raise BackendUnavailable(f"backend {name!r} cannot run here with options {bopts}")
    return cls(artifact, **bopts)
