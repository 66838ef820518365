"""ONNX Runtime backend (CPU by default): runs the artifact's ``model.onnx``.

The fastest CPU backend at the worker's micro-batch sizes (docs/bench-engine.md: 7-11x
torch eager for one window; per core 1.3-1.4x at 32 windows, where the BiGRU's arithmetic
dominates both; far ahead of multi-threaded torch on a busy node). Options: ``threads`` (intra-op threads), ``spin`` (let idle intra-op
threads spin for the next op: lowest latency; turn it off when the CPU is shared with
other busy processes), ``providers`` (default ``["CPUExecutionProvider"]``), ``shards``
(data parallelism, default ``min(2, threads)``: ``shards`` sessions with
``threads // shards`` intra-op threads each; a batch is cut into up to ``shards`` slices of
at least ``SHARD_MIN_ROWS`` windows that run side by side, smaller batches run on one
session. The BiGRU's per-step matmuls are too small for intra-op threads to pay off, whole
windows are not: 1.9-3.0x one 2-thread session from 32 windows up, docs/bench-engine.md).
Rows are independent, so sharding changes no score.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.backends.base import Backend
from engine.exceptions import BackendUnavailable, EngineError
from engine.export import INPUT_NAMES, OUTPUT_NAMES

SHARD_MIN_ROWS = 8


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, threads: int = 2, max_batch: int = 256,
                 providers: list[str] | None = None, spin: bool = True, shards: int | None = None) -> None:
        super().__init__(artifact, max_batch=max_batch)
        if threads < 1:
            raise ValueError("threads must be >= 1")
        shards = min(2, threads) if shards is None else shards
        if not 1 <= shards <= threads:
            raise ValueError(f"shards must be between 1 and threads ({threads}), got {shards}")
        self.threads = int(threads)
        self.shards = int(shards)
        self.providers = providers or ["CPUExecutionProvider"]
        self.spin = bool(spin)
        self._session: Any = None
        self._sessions: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None

    @property
    def label(self) -> str:
        where = "cpu" if self.providers == ["CPUExecutionProvider"] else "+".join(self.providers)
        return f"onnxruntime-{where}" + (f"-{self.shards}shards" if self.shards > 1 else "")

    @classmethod
    def available(cls, **opts: Any) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def _activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime cannot be imported: {exc}") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, self.threads // self.shards)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        path = self.artifact.onnx_path
        try:
            data = path.read_bytes()
            sessions = [ort.InferenceSession(data, sess_options=opts, providers=self.providers)
                        for _ in range(self.shards)]
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        names = tuple(i.name for i in sessions[0].get_inputs())
        if names != INPUT_NAMES:
            raise EngineError(f"{path} has inputs {names}, expected {INPUT_NAMES}")
        self._sessions = sessions
        self._session = sessions[0]
        if self.shards > 1:
            self._pool = ThreadPoolExecutor(self.shards - 1, thread_name_prefix="ort-shard")

    def _run(self, sess: Any, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray) -> list[Any]:
        return sess.run(list(OUTPUT_NAMES), {"x": x, "img": img, "regions": regions, "has_img": has_img})

    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = x.shape[0]
        parts_n = min(self.shards, b // SHARD_MIN_ROWS)
        if parts_n <= 1:
            prob, t_attn, r_attn = self._run(self._session, x, img, regions, has_img)
            return prob, t_attn, r_attn
        assert self._pool is not None
        bounds = np.linspace(0, b, parts_n + 1).astype(int)
        parts = [(x[s:e], img[s:e], regions[s:e], has_img[s:e]) for s, e in zip(bounds[:-1], bounds[1:])]
        futures = [self._pool.submit(self._run, sess, *part) for sess, part in zip(self._sessions[1:], parts[1:])]
        outs = [self._run(self._sessions[0], *parts[0])] + [f.result() for f in futures]
        prob, t_attn, r_attn = (np.concatenate([o[i] for o in outs]) for i in range(3))
        return prob, t_attn, r_attn

    def _deactivate_impl(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._session = None
        self._sessions = []
