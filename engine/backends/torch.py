"""PyTorch backend (CPU or CUDA): runs the artifact's ``model.pt`` eagerly."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.backends.base import Backend
from engine.exceptions import BackendUnavailable


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, artifact: ModelArtifact | str | os.PathLike[str], *, device: str = "cpu",
                 threads: int | None = None, max_batch: int = 256) -> None:
        super().__init__(artifact, max_batch=max_batch)
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        self.device = device
        self.threads = threads  # torch.set_num_threads is process-wide: only set when given
        self._model: Any = None

    @classmethod
    def available(cls, *, device: str = "cpu", **opts: Any) -> bool:
        if importlib.util.find_spec("torch") is None:
            return False
        if device.startswith("cuda"):
            import torch

            return bool(torch.cuda.is_available())
        return True

    def _activate_impl(self) -> None:
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch backend: device {self.device!r} requested but CUDA is not available")
        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        self._model = self.artifact.build_model().to(self.device)

    def _infer_impl(self, x: np.ndarray, img: np.ndarray, regions: np.ndarray, has_img: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        dev = self.device
        with torch.inference_mode():
            out = self._model(torch.from_numpy(x).to(dev), torch.from_numpy(img).to(dev),
                              torch.from_numpy(regions).to(dev), torch.from_numpy(has_img).to(dev))
        return tuple(t.float().cpu().numpy() for t in out)  # type: ignore[return-value]

    def _deactivate_impl(self) -> None:
        import torch

        self._model = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
