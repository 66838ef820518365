"""Fixtures of the backend tests: artifacts built with numpy and torch only (no scipy), so
the GPU check (ops/gpu/check.sh) runs them on a machine that has little more than torch:
without onnx/onnxruntime there, :func:`backend_model` is an in-memory artifact (enough for
the torch backends) and the tests that need the ONNX file skip."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

SMALL_MODEL = {"conv_dim": 16, "hidden": 16, "attn_dim": 16}
TEST_ENCODER = "backend-test-encoder-v1"


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return False
    return True


def onnx_export_possible() -> bool:
    return importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None


def _new_artifact(size: str, seed: int):
    import torch

    from engine.artifact import ModelArtifact
    from engine.model import ModelConfig, RiskNet

    kw = {"small": SMALL_MODEL, "default": {}}[size]
    torch.manual_seed(seed)
    model = RiskNet(ModelConfig(**kw))
    rng = np.random.default_rng(seed)
    return ModelArtifact.from_model(
        model, norm_mean=rng.normal(0.0, 2.0, 32), norm_std=rng.uniform(0.5, 3.0, 32), hop=50, hz=100.0,
        encoder_version=TEST_ENCODER, training={"kind": "untrained backend test fixture"},
    )


@pytest.fixture(scope="session")
def backend_artifact(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``backend_artifact(size="small" | "default", seed=0) -> artifact folder`` (read-only,
    cached): a seeded untrained RiskNet, ``small`` (16-wide) or the default config (what the
    worker runs), with non-trivial normalisation statistics. Skips the test where the ONNX
    export cannot run (no onnx / onnxruntime)."""
    cache: dict[tuple[str, int], Path] = {}

    def make(size: str = "small", seed: int = 0) -> Path:
        key = (size, seed)
        if key not in cache:
            if not onnx_export_possible():
                pytest.skip("onnx and onnxruntime are needed to write an artifact folder")
            d = tmp_path_factory.mktemp(f"backend-artifact-{size}")
            _new_artifact(size, seed).save(d)
            cache[key] = d
        return cache[key]

    return make


@pytest.fixture(scope="session")
def backend_model(backend_artifact: Callable[..., Path]) -> Callable[..., object]:
    """``backend_model(size="small", seed=0) -> ModelArtifact``: the folder of
    :func:`backend_artifact`, loaded, or (without onnx / onnxruntime) the same model in memory."""
    from engine.artifact import ModelArtifact

    cache: dict[tuple[str, int], ModelArtifact] = {}

    def make(size: str = "small", seed: int = 0) -> ModelArtifact:
        key = (size, seed)
        if key not in cache:
            cache[key] = (ModelArtifact.load(backend_artifact(size, seed)) if onnx_export_possible()
                          else _new_artifact(size, seed))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def make_inputs() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``make_inputs(b, seed=0, image_fraction=0.5)`` -> normalised (x, img, regions, has_img)."""

    def make(b: int, seed: int = 0, image_fraction: float = 0.5):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((b, 200, 32)).astype(np.float32)
        img = rng.random((b, 2048)).astype(np.float32)
        regions = rng.standard_normal((b, 49, 64)).astype(np.float32)
        has = (rng.random(b) < image_fraction).astype(np.float32)
        return x, img, regions, has

    return make
