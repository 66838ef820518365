"""Fixtures of the engine tests: artifact factories (built once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM, ImageFeatures

SMALL_MODEL = {"conv_dim": 16, "hidden": 16, "attn_dim": 16}


@pytest.fixture(scope="session")
def make_artifact(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make_artifact(kind="untrained" | "tiny", **model_config) -> artifact folder``.

    "untrained": a small seeded random model with real normalisation statistics (fast);
    "tiny": the ``train(..., tiny=True)`` artifact (a few seconds). Cached per arguments;
    treat the folders as read-only (copy them to modify).
    """
    cache: dict[tuple, Path] = {}

    def make(kind: str = "untrained", **model_kw: object) -> Path:
        key = (kind, tuple(sorted(model_kw.items())))
        if key in cache:
            return cache[key]
        d = tmp_path_factory.mktemp(f"artifact-{kind}")
        if kind == "untrained":
            import torch

            from engine.artifact import ModelArtifact
            from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION, window_dataset
            from engine.model import ModelConfig, RiskNet

            torch.manual_seed(0)
            model = RiskNet(ModelConfig(**{**SMALL_MODEL, **model_kw}))
            data = window_dataset(32, seed=1)
            ModelArtifact.from_model(
                model, norm_mean=data.x.mean(axis=(0, 1)), norm_std=data.x.std(axis=(0, 1)) + 1e-3, hop=50, hz=100.0,
                encoder_version=SYNTHETIC_ENCODER_VERSION, training={"kind": "untrained test fixture"},
            ).save(d)
        elif kind == "tiny":
            from engine.train import train

            assert not model_kw, "the tiny artifact has a fixed config"
            train(d, tiny=True, progress=False, seed=0)
        else:
            raise ValueError(kind)
        cache[key] = d
        return d

    return make


@pytest.fixture
def make_image() -> Callable[..., ImageFeatures]:
    """``make_image(seed=0, encoder_version=SYNTHETIC_ENCODER_VERSION, lesion=False)``."""
    from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION, synthetic_image_features

    def make(seed: int = 0, encoder_version: str = SYNTHETIC_ENCODER_VERSION, lesion: bool = False) -> ImageFeatures:
        pooled, regions = synthetic_image_features(np.array([lesion]), seed=seed)
        assert pooled.shape == (1, POOLED_DIM) and regions.shape == (1, N_REGIONS, REGION_DIM)
        return ImageFeatures(pooled=pooled[0], regions=regions[0], encoder_version=encoder_version)

    return make
