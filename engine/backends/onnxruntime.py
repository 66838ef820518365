"""ONNX Runtime backend (CPU by default): runs the artifact's ``model.onnx``.

The fastest backend on a CPU at every batch size measured (docs/bench-engine.md; about
7x torch eager for one window, 1.2-1.5x from 32 windows up, where the BiGRU's arithmetic
dominates both). Options: ``threads`` (intra-op threads), ``spin`` (let idle intra-op
threads spin for the next op: lowest latency; turn it off when the CPU is shared with
other busy processes), ``providers`` (default ``["CPUExecutionProvider"]``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.backends.base import Backend
from engine.exceptions import BackendUnavailable, EngineError
from engine.export import INPUT_NAMES, OUTPUT_NAMES


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, threads: int = 2, max_batch: int = 256,
                 providers: list[str] | None = None, spin: bool = True) -> None:
        super().__init__(artifact, max_batch=max_batch)
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.threads = int(threads)
        self.providers = providers or ["CPUExecutionProvider"]
        self.spin = bool(spin)
        self._session: Any = None

    @property
    def label(self) -> str:
        where = "cpu" if self.providers == ["CPUExecutionProvider"] else "+".join(self.providers)
        return f"onnxruntime-{where}"

    @classmethod
    def available(cls, **opts: Any) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def _activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime cannot be imported: {exc}") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        path = self.artifact.onnx_path
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        names = tuple(i.name for i in sess.get_inputs())
        if names != INPUT_NAMES:
            raise EngineError(f"{path} has inputs {names}, expected {INPUT_NAMES}")
        self._session = sess

    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        prob, t_attn, r_attn = self._session.run(
            list(OUTPUT_NAMES), {"x": x, "img": img, "regions": regions, "has_img": has_img}
        )
        return prob, t_attn, r_attn

    def _deactivate_impl(self) -> None:
        self._session = None
