"""A scorer that returns constant outputs without computing anything.

Run in the real worker (``INJURY_MONITOR_BACKEND=null``) it separates the streaming cost
(consume, decode, window, batch, build scores, write Kafka and Redis) from the cost of
inference. It has the interface the worker and :class:`stream.pipeline.ScoringPipeline`
use from :class:`engine.scorer.Scorer`: ``score(windows, images)``, ``model_version``,
``encoder_version``, ``accepts``, ``close``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from engine.scorer import ScoreResult

NULL_BACKEND = "null"


class NullScorer:
    """Every window gets the same :class:`ScoreResult` (risk ``prob``, flat attention)."""

    backend_name = NULL_BACKEND
    last_inference_s = 0.0

    def __init__(self, *, time_steps: int, attn_step_s: float, encoder_version: str,
                 model_version: str = NULL_BACKEND, prob: float = 0.1) -> None:
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        self.model_version = model_version
        self.encoder_version = encoder_version
        self.time_steps = time_steps
        self.attn_step_s = attn_step_s
        self._result = ScoreResult(prob=float(prob), time_attn=np.full(time_steps, 1.0 / time_steps, np.float32),
                                   attn_step_s=attn_step_s, region_attn=None, image_used=False)

    @classmethod
    def from_artifact(cls, model_dir: str | os.PathLike[str]) -> NullScorer:
        """Shapes and versions of a real model artifact (no weights loaded), so scores look alike."""
        from engine.artifact import ModelArtifact

        meta = ModelArtifact.load(model_dir).meta
        return cls(time_steps=meta.config.time_steps, attn_step_s=meta.attn_step_s,
                   encoder_version=meta.encoder_version, model_version=f"{NULL_BACKEND}-{meta.model_version}")

    def accepts(self, image) -> bool:
        return False

    def score(self, windows: np.ndarray, images: Sequence | None = None) -> list[ScoreResult]:
        return [self._result] * len(windows)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> NullScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
