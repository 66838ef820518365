"""TensorRT backend (TensorRT 10 Python API): runs an engine built from the artifact's ONNX.

    with get_backend("tensorrt", "models/default", precision="fp16") as be:   # or "tensorrt-fp32"
        be.infer(x, img, regions, has_img)

* The engine is ``engine_path`` (default ``<artifact>/engines/model-<precision>.engine``,
  built by :func:`engine.tensorrt_build.build_engine` / ``injury-monitor build-engine``).
  Its ``.json`` sidecar must name this GPU, this TensorRT version, the artifact's
  ``model.onnx`` and the precision; otherwise activation raises
  :class:`engine.tensorrt_build.EngineMismatch` naming both GPUs, unless ``rebuild=True``,
  which builds a fresh engine (and timing cache) in place first.
* Device buffers are torch CUDA tensors sized for the engine's largest profile batch;
  their addresses are bound once (``set_tensor_address``), each call sets the batch with
  ``set_input_shape`` and runs ``execute_async_v3`` on the backend's own CUDA stream,
  with pinned host buffers and one synchronisation per call.
* ``max_batch`` is capped by the engine profile's max (bigger calls are split by
  :class:`engine.backends.base.Backend`); calls below the profile's min are padded.
* ``threads`` is accepted (the worker passes it to every backend) and unused.

``tensorrt`` and ``torch`` are imported on activation only. TensorRT cannot be installed
on this project's development machines: this module has not been run here
(docs/engine.md); its tests are marked ``gpu`` and skip without ``tensorrt``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact, sha256_file
from engine.backends.base import Backend
from engine.exceptions import BackendUnavailable, EngineError
from engine.export import INPUT_NAMES, OUTPUT_NAMES
from engine.tensorrt_build import (
    PRECISIONS,
    build_engine,
    check_engine_compatible,
    current_gpu,
    default_engine_path,
    read_engine_info,
)

log = logging.getLogger(__name__)


def _cuda_ok() -> bool:
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, precision: str = "fp16",
                 engine_path: str | os.PathLike[str] | None = None, rebuild: bool = False,
                 timing_cache: str | os.PathLike[str] | None = None, opt_batch: int | None = None,
                 device: str = "cuda", max_batch: int = 256, threads: int | None = None) -> None:
        super().__init__(artifact, max_batch=max_batch)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if device != "cuda" and not device.startswith("cuda:"):
            raise ValueError(f"device must be 'cuda' or 'cuda:N', got {device!r}")
        self.precision = precision
        self.engine_path = Path(engine_path) if engine_path is not None else self._default_engine(self.artifact, precision)
        self.rebuild = bool(rebuild)
        self.timing_cache = Path(timing_cache) if timing_cache is not None else self.engine_path.parent / "timing.cache"
        self.opt_batch = opt_batch
        self.device = device
        self.min_batch = 1
        self._trt: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._dev: dict[str, Any] = {}       # tensor name -> torch CUDA buffer (profile max rows)
        self._host: dict[str, Any] = {}      # tensor name -> pinned float32 host buffer
        self._last_b = -1

    @staticmethod
    def _default_engine(artifact: ModelArtifact, precision: str) -> Path:
        if artifact.directory is None:
            raise EngineError("an in-memory artifact has no engine folder: pass engine_path or save() the artifact")
        return default_engine_path(artifact.directory, precision)

    @classmethod
    def available(cls, **opts: Any) -> bool:
        return _cuda_ok()

    @classmethod
    def available_for(cls, artifact: ModelArtifact, **opts: Any) -> bool:
        """TensorRT and CUDA present, and an engine for this GPU exists (or ``rebuild``)."""
        if not cls.available(**opts):
            return False
        if opts.get("rebuild"):  # builds from the artifact's model.onnx
            return artifact.directory is not None
        precision = opts.get("precision", "fp16")
        try:
            path = Path(opts["engine_path"]) if opts.get("engine_path") else cls._default_engine(artifact, precision)
            cls._check_engine(path, artifact, precision, opts.get("device", "cuda"))
        except EngineError as exc:
            log.info("tensorrt backend not usable for %s: %s", artifact.directory, exc)
            return False
        return True

    @property
    def label(self) -> str:
        return f"tensorrt-{self.precision}"

    # ------------------------------------------------------------------ engine file
    @staticmethod
    def _check_engine(engine_path: Path, artifact: ModelArtifact, precision: str, device: str) -> None:
        from engine.tensorrt_build import tensorrt_version

        info = read_engine_info(engine_path)
        gpu, cc = current_gpu(device)
        check_engine_compatible(info, engine_path=engine_path, gpu_name=gpu, compute_capability=cc,
                                tensorrt_version=tensorrt_version(), onnx_sha256=sha256_file(artifact.onnx_path),
                                precision=precision, onnx_path=artifact.onnx_path)

    def _ensure_engine(self) -> None:
        try:
            self._check_engine(self.engine_path, self.artifact, self.precision, self.device)
            return
        except EngineError:  # missing, corrupt or mismatched (EngineMismatch)
            if not self.rebuild:
                raise
        log.warning("tensorrt: (re)building %s for this GPU", self.engine_path)
        max_b = self.max_batch
        opt = self.opt_batch or min(32, max_b)
        build_engine(self.artifact.onnx_path, self.engine_path, fp16=self.precision == "fp16", min_batch=1,
                     opt_batch=min(opt, max_b), max_batch=max_b, timing_cache=self.timing_cache,
                     device=self._device_index())

    def _device_index(self) -> int:
        return int(self.device.split(":")[1]) if ":" in self.device else 0

    # ------------------------------------------------------------------ lifecycle
    def _activate_impl(self) -> None:
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"tensorrt backend: {exc}") from exc
        if not torch.cuda.is_available():
            raise BackendUnavailable("tensorrt backend: no CUDA GPU")
        dev = torch.device("cuda", self._device_index())
        torch.cuda.set_device(dev)
        self._ensure_engine()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise EngineError(f"TensorRT cannot deserialize {self.engine_path}; rebuild it with "
                              "`injury-monitor build-engine`")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = tuple(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        outputs = tuple(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
            raise EngineError(f"{self.engine_path} has inputs {inputs} and outputs {outputs}, "
                              f"expected {INPUT_NAMES} and {OUTPUT_NAMES}")
        p_min, _p_opt, p_max = engine.get_tensor_profile_shape(INPUT_NAMES[0], 0)
        self.min_batch = int(p_min[0])
        if int(p_max[0]) < self.max_batch:
            log.info("tensorrt: engine profile allows %d windows per call; max_batch %d -> %d",
                     int(p_max[0]), self.max_batch, int(p_max[0]))
            self.max_batch = int(p_max[0])
        rows = max(self.max_batch, self.min_batch)
        context = engine.create_execution_context()
        if context is None:
            raise EngineError(f"TensorRT could not create an execution context for {self.engine_path} (GPU memory?)")
        torch_dtype = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                       trt.bool: torch.bool}
        per_row = {
            "x": (self.window, self.n_channels), "img": (self.img_dim,), "regions": (self.n_regions, self.region_dim),
            "has_img": (), "prob": (), "time_attn": (self.time_steps,), "region_attn": (self.n_regions,),
        }
        self._dev, self._host = {}, {}
        for n in names:
            dt = engine.get_tensor_dtype(n)
            if dt not in torch_dtype:
                raise EngineError(f"{self.engine_path}: tensor {n} has unsupported dtype {dt}")
            shape = (rows, *per_row[n])
            buf = torch.empty(shape, dtype=torch_dtype[dt], device=dev)
            self._dev[n] = buf
            self._host[n] = torch.zeros(shape, dtype=torch.float32).pin_memory()
            if not context.set_tensor_address(n, buf.data_ptr()):
                raise EngineError(f"TensorRT refused the device buffer of {n}")
        self._trt, self._engine, self._context = trt, engine, context
        self._stream = torch.cuda.Stream(device=dev)
        self._last_b = -1

    def _deactivate_impl(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
        self._context = None
        self._engine = None
        self._dev, self._host = {}, {}
        self._stream = None

    # ------------------------------------------------------------------ inference
    def _set_batch(self, b: int) -> None:
        if b == self._last_b:
            return
        ctx = self._context
        for n in INPUT_NAMES:
            shape = tuple(self._dev[n].shape[1:])
            if not ctx.set_input_shape(n, (b, *shape)):
                raise EngineError(f"TensorRT rejected batch {b} for input {n} (profile {self.min_batch}..{self.max_batch})")
        self._last_b = b

    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        b = x.shape[0]
        run_b = max(b, self.min_batch)  # pad up to the profile's minimum (rows are independent)
        with torch.cuda.stream(self._stream):
            for n, a in zip(INPUT_NAMES, (x, img, regions, has_img)):
                host = self._host[n]
                host[:b].numpy()[...] = a
                if run_b > b:
                    host[b:run_b].zero_()
                self._dev[n][:run_b].copy_(host[:run_b], non_blocking=True)
            self._set_batch(run_b)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise EngineError(f"TensorRT execution of {self.engine_path} failed (batch {run_b})")
            for n in OUTPUT_NAMES:
                self._host[n][:b].copy_(self._dev[n][:b], non_blocking=True)
        self._stream.synchronize()
        return tuple(self._host[n][:b].numpy().copy() for n in OUTPUT_NAMES)  # type: ignore[return-value]
