from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.baselines.vgg16 import VGG16_POOLED_DIM, VGG16Encoder
from engine.imaging.exceptions import EncoderError


def test_vgg16_encoder_shapes_version_and_determinism() -> None:
    imgs = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    a = VGG16Encoder()
    pooled, regions = a.encode(imgs)
    assert a.version == "vgg16-rand0-p0"
    assert pooled.shape == (2, VGG16_POOLED_DIM) and regions.shape == (2, 49, 64)
    assert np.isfinite(pooled).all() and not np.allclose(pooled[0], pooled[1])
    p2, _ = VGG16Encoder().encode(imgs[:1])
    np.testing.assert_allclose(p2[0], pooled[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        a.encode(np.zeros((1, 100, 100, 3), np.float32))


def test_vgg16_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="vgg.pth"):
        VGG16Encoder(tmp_path / "vgg.pth")
