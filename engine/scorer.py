"""Scorer: what the stream worker calls to score windows, from ONE inference thread.

It turns windows in physical units (absent channels NaN) plus optional per-athlete image
features into calibrated probabilities with their attention, using a model artifact and
a runtime backend::

    scorer = Scorer("models/default", backend="onnxruntime", threads=2)
    results = scorer.score(windows, [features_or_None, ...])   # list[ScoreResult]

Normalisation uses the artifact's per-channel statistics; absent (NaN) channels become 0
after normalisation, i.e. the training mean (the model is trained with channel dropout
for this). An image is used only when its ``encoder_version`` is the artifact's (features
of another encoder live in another space); otherwise the window is scored sensor-only
and ``image_used`` is False. Set ``strict_encoder=False`` to use any encoder's features.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.backends.base import Backend, get_backend
from engine.exceptions import InputError
from engine.features import ImageFeatures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    prob: float                    # calibrated injury probability
    time_attn: np.ndarray          # (T',) attention over the model's time steps, sums to 1
    attn_step_s: float             # seconds per attention step (step i covers [i, i+1) * attn_step_s from window start)
    region_attn: np.ndarray | None  # (49,) attention over the 7x7 image regions (row-major), None without image
    image_used: bool

    def top_steps(self, k: int = 3) -> list[tuple[float, float]]:
        """The ``k`` most attended steps as (seconds from window start of the step's centre, weight)."""
        idx = np.argsort(self.time_attn)[::-1][:k]
        return [((float(i) + 0.5) * self.attn_step_s, float(self.time_attn[i])) for i in idx]

    def top_regions(self, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` most attended image regions as (row-major index, weight); [] without image."""
        if self.region_attn is None:
            return []
        idx = np.argsort(self.region_attn)[::-1][:k]
        return [(int(i), float(self.region_attn[i])) for i in idx]


class Scorer:
    """Loads an artifact, activates a backend, scores batches of windows."""

    def __init__(
        self,
        artifact_dir: str | os.PathLike[str] | ModelArtifact,
        backend: str = "onnxruntime",
        threads: int = 2,
        *,
        max_batch: int = 256,
        strict_encoder: bool = True,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        self.artifact = artifact_dir if isinstance(artifact_dir, ModelArtifact) else ModelArtifact.load(artifact_dir)
        meta = self.artifact.meta
        self._mean = self.artifact.norm_mean
        self._inv_std = (1.0 / self.artifact.norm_std).astype(np.float32)
        self._cfg = meta.config
        self.strict_encoder = strict_encoder
        self._lock = threading.Lock()
        opts = {"threads": threads, "max_batch": max_batch, **(backend_options or {})}
        self.backend: Backend = get_backend(backend, self.artifact, **opts)
        self.backend.activate()

    # ------------------------------------------------------------------ properties
    @property
    def model_version(self) -> str:
        return self.artifact.meta.model_version

    @property
    def encoder_version(self) -> str:
        """The image encoder the model was trained with (images of other encoders are not used)."""
        return self.artifact.meta.encoder_version

    @property
    def window(self) -> int:
        return self.artifact.meta.window

    @property
    def hop(self) -> int:
        return self.artifact.meta.hop

    @property
    def hz(self) -> float:
        return self.artifact.meta.hz

    @property
    def channels(self) -> tuple[str, ...]:
        return self.artifact.meta.channels

    @property
    def time_steps(self) -> int:
        return self._cfg.time_steps

    @property
    def attn_step_s(self) -> float:
        return self.artifact.meta.attn_step_s

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def last_inference_s(self) -> float:
        return self.backend.last_inference_s

    # ------------------------------------------------------------------ scoring
    def accepts(self, image: ImageFeatures | None) -> bool:
        """Whether this image's features would be used."""
        if image is None:
            return False
        if self.strict_encoder and image.encoder_version != self.encoder_version:
            return False
        return bool(np.isfinite(image.pooled).all() and np.isfinite(image.regions).all())

    def score(self, windows: np.ndarray, images: Sequence[ImageFeatures | None] | None = None) -> list[ScoreResult]:
        """Score ``windows`` (B, window, C) in physical units, absent channels NaN, with one
        image (or None) per window. Raises InputError on wrong shapes or infinite values."""
        w = np.asarray(windows)
        if w.ndim != 3 or w.shape[1:] != (self.window, len(self.channels)):
            raise InputError(f"windows has shape {w.shape}, expected (B, {self.window}, {len(self.channels)})")
        if not np.issubdtype(w.dtype, np.floating):
            raise InputError(f"windows must be floating point, got {w.dtype}")
        b = w.shape[0]
        imgs = list(images) if images is not None else [None] * b
        if len(imgs) != b:
            raise InputError(f"{len(imgs)} images for {b} windows")
        if np.isinf(w).any():
            raise InputError("windows contain Inf (absent values must be NaN)")
        x = (w.astype(np.float32) - self._mean) * self._inv_std
        np.nan_to_num(x, copy=False, nan=0.0)
        cfg = self._cfg
        img = np.zeros((b, cfg.img_dim), np.float32)
        regions = np.zeros((b, cfg.n_regions, cfg.region_dim), np.float32)
        has = np.zeros((b,), np.float32)
        for i, f in enumerate(imgs):
            if f is not None and not self.accepts(f):
                log.debug("image features of encoder %s not used (model trained with %s)",
                          f.encoder_version, self.encoder_version)
                continue
            if f is not None:
                img[i] = f.pooled
                regions[i] = f.regions
                has[i] = 1.0
        with self._lock:
            out = self.backend.infer(x, img, regions, has)
        step = self.attn_step_s
        return [
            ScoreResult(
                prob=float(out.prob[i]),
                time_attn=out.time_attn[i].copy(),
                attn_step_s=step,
                region_attn=out.region_attn[i].copy() if has[i] else None,
                image_used=bool(has[i]),
            )
            for i in range(b)
        ]

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            self.backend.deactivate()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
