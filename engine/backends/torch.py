"""PyTorch backend: the artifact's ``model.pt`` on the CPU (eager) or on a CUDA GPU.

CPU: eager ``inference_mode``, nothing else (ONNX Runtime is the fast CPU path).

CUDA (``device="cuda"`` or ``"cuda:N"``):

* ``precision="fp16"`` runs the model under ``torch.autocast(float16)``: convolutions, the
  cuDNN GRU and the matmuls in half precision, element-wise ops, LayerNorm and softmax in
  float32. The image standardisation (``x - mean`` of nearly equal numbers: the ResNet50
  embeddings of two radiographs differ in the 4th digit) must stay in float32, which a
  plain ``model.half()`` would break. Outputs are float32. ``"fp32"`` (default) turns
  cuDNN's TF32 off for the process while active (``tf32=False``) so the GPU matches the
  CPU within 1e-4.
* ``cuda_graphs=True`` (default) captures one CUDA graph per batch size of
  :func:`capture_sizes` (powers of two up to ``max_batch``, plus ``max_batch``) when the
  backend is activated; a call of ``b`` windows replays the graph of the smallest captured
  size >= ``b`` (:func:`padded_size`). Padding rows hold stale but finite data and are
  dropped: every operation of RiskNet is per row (GRU over each sequence, LayerNorm,
  attention and softmax per window), so they never affect the real rows. If a capture
  fails, or a replay disagrees with eager execution at activation, the backend logs why
  and runs eagerly (``graphs_active`` False, ``graphs_error`` says why).
* Host buffers are pinned, copies are asynchronous on the backend's own stream, and one
  synchronisation per call returns the outputs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.backends.base import Backend
from engine.exceptions import BackendUnavailable, EngineError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
GRAPH_CHECK_TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3}


def capture_sizes(max_batch: int) -> tuple[int, ...]:
    """Batch sizes that get a CUDA graph: 1, 2, 4, ... below ``max_batch``, then ``max_batch``."""
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    sizes, s = [], 1
    while s < max_batch:
        sizes.append(s)
        s *= 2
    sizes.append(max_batch)
    return tuple(sizes)


def padded_size(b: int, sizes: tuple[int, ...]) -> int:
    """The smallest of ``sizes`` (ascending) that holds ``b`` rows."""
    for s in sizes:
        if s >= b:
            return s
    raise ValueError(f"batch of {b} exceeds the largest captured size {sizes[-1] if sizes else 0}")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, device: str = "cpu",
                 threads: int | None = None, max_batch: int = 256, precision: str = "fp32",
                 cuda_graphs: bool | None = None, tf32: bool = False) -> None:
        super().__init__(artifact, max_batch=max_batch)
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        cuda = device.startswith("cuda")
        if not cuda and precision != "fp32":
            raise ValueError("half precision is for CUDA devices only (on the CPU use onnxruntime or torch fp32)")
        if not cuda and cuda_graphs:
            raise ValueError("CUDA graphs need a CUDA device")
        self.device = device
        self.threads = threads  # torch.set_num_threads is process-wide: only set when given
        self.precision = precision
        self.cuda_graphs = cuda and (True if cuda_graphs is None else bool(cuda_graphs))
        self.tf32 = bool(tf32)
        self.graph_sizes: tuple[int, ...] = capture_sizes(self.max_batch) if self.cuda_graphs else ()
        self.graphs_active = False
        self.graphs_error: str | None = None
        self._model: Any = None
        self._graphs: dict[int, Any] = {}      # size -> (graph, (prob, time_attn, region_attn) static outputs)
        self._stream: Any = None
        self._host_in: list[Any] = []           # pinned float32 host buffers (max_batch rows)
        self._dev_in: list[Any] = []            # float32 device buffers (max_batch rows), the graphs' inputs
        self._host_out: list[Any] = []          # pinned float32 host buffers for the outputs
        self._saved_tf32: bool | None = None

    @classmethod
    def available(cls, *, device: str = "cpu", **opts: Any) -> bool:
        if importlib.util.find_spec("torch") is None:
            return False
        if device.startswith("cuda"):
            import torch

            return bool(torch.cuda.is_available())
        return True

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def label(self) -> str:
        if not self.is_cuda:
            return "torch-cpu"
        return f"torch-cuda-{self.precision}" + ("+graphs" if self.graphs_active else "")

    # ------------------------------------------------------------------ lifecycle
    def _activate_impl(self) -> None:
        import torch

        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        if not self.is_cuda:
            self._model = self.artifact.build_model()
            return
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"torch backend: device {self.device!r} requested but CUDA is not available")
        dev = torch.device(self.device)
        if self.precision == "fp32" and not self.tf32:
            self._saved_tf32 = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False
        self._model = self.artifact.build_model().to(dev)
        self._stream = torch.cuda.Stream(device=dev)
        n = self.max_batch
        shapes = [(n, self.window, self.n_channels), (n, self.img_dim), (n, self.n_regions, self.region_dim), (n,)]
        self._host_in = [torch.zeros(s, dtype=torch.float32).pin_memory() for s in shapes]
        self._dev_in = [torch.zeros(s, dtype=torch.float32, device=dev) for s in shapes]
        self._host_out = [torch.zeros(s, dtype=torch.float32).pin_memory()
                          for s in ((n,), (n, self.time_steps), (n, self.n_regions))]
        if self.cuda_graphs:
            self._capture_all()

    def _deactivate_impl(self) -> None:
        self._graphs.clear()
        self.graphs_active = False
        self._model = None
        self._host_in, self._dev_in, self._host_out = [], [], []
        if self.is_cuda:
            import torch

            if self._stream is not None:
                self._stream.synchronize()
            self._stream = None
            if self._saved_tf32 is not None:
                torch.backends.cudnn.allow_tf32 = self._saved_tf32
                self._saved_tf32 = None
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ CUDA graphs
    def _forward(self, x: Any, img: Any, regions: Any, has: Any) -> tuple[Any, Any, Any]:
        """The model on device tensors (float32 in, float32 out), as captured in the graphs."""
        import torch

        if self.precision == "fp16":  # no autocast weight cache: it cannot live across graph replays
            with torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
                prob, t_attn, r_attn = self._model(x, img, regions, has)
        else:
            prob, t_attn, r_attn = self._model(x, img, regions, has)
        return prob.float(), t_attn.float(), r_attn.float()

    def _capture_all(self) -> None:
        import torch

        try:
            self._stream.wait_stream(torch.cuda.current_stream(self._stream.device))
            with torch.cuda.stream(self._stream), torch.no_grad():
                # warm up on the side stream (cuDNN plans, allocator) before capturing
                for size in self.graph_sizes:
                    for _ in range(2):
                        self._forward(*(t[:size] for t in self._dev_in))
                self._stream.synchronize()
                for size in sorted(self.graph_sizes, reverse=True):
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                        outs = self._forward(*(t[:size] for t in self._dev_in))
                    self._graphs[size] = (graph, outs)
            self._check_graphs()
        except (RuntimeError, EngineError) as exc:
            self._graphs.clear()
            self.graphs_active = False
            self.graphs_error = f"{type(exc).__name__}: {exc}"
            log.warning("torch backend: CUDA graphs disabled on %s, running eagerly (%s)", self.device, self.graphs_error)
            torch.cuda.synchronize(self._stream.device)
            return
        self.graphs_active = True
        self.graphs_error = None

    def _check_graphs(self) -> None:
        """Replay the smallest graph on fixed random rows and compare with eager execution."""
        import torch

        size = self.graph_sizes[0]
        g = torch.Generator().manual_seed(0)
        rows = [torch.randn(t[:size].shape, generator=g) for t in self._host_in]
        rows[3] = (rows[3] > 0).float()
        with torch.cuda.stream(self._stream), torch.no_grad():
            for dst, src in zip(self._dev_in, rows):
                dst[:size].copy_(src)
            graph, outs = self._graphs[size]
            graph.replay()
            replayed = [o.clone() for o in outs]
            eager = self._forward(*(t[:size] for t in self._dev_in))
        self._stream.synchronize()
        err = max(float((a - b).abs().max()) for a, b in zip(replayed, eager))
        if not err <= GRAPH_CHECK_TOLERANCE[self.precision]:
            raise EngineError(f"CUDA graph replay differs from eager execution by {err:.3g}")

    # ------------------------------------------------------------------ inference
    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        if not self.is_cuda:
            with torch.inference_mode():
                out = self._model(torch.from_numpy(x), torch.from_numpy(img),
                                  torch.from_numpy(regions), torch.from_numpy(has_img))
            return tuple(t.numpy() for t in out)  # type: ignore[return-value]
        b = x.shape[0]
        with torch.cuda.stream(self._stream), torch.no_grad():
            for host, dev, a in zip(self._host_in, self._dev_in, (x, img, regions, has_img)):
                host[:b].numpy()[...] = a
                dev[:b].copy_(host[:b], non_blocking=True)
            if self.graphs_active:
                graph, outs = self._graphs[padded_size(b, self.graph_sizes)]
                graph.replay()
            else:
                outs = self._forward(*(t[:b] for t in self._dev_in))
            for host, o in zip(self._host_out, outs):
                host[:b].copy_(o[:b], non_blocking=True)
        self._stream.synchronize()
        return tuple(h[:b].numpy().copy() for h in self._host_out)  # type: ignore[return-value]
