from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engine.imaging.encoder import ResNet50Encoder, encoder_version, projection_matrix
from engine.imaging.exceptions import EncoderError


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((2, 224, 224, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(imaging_encoder, images) -> tuple[np.ndarray, np.ndarray]:
    return imaging_encoder.encode(images)


def test_shapes_versions_and_projection(imaging_encoder, images, reference):
    assert imaging_encoder.version == "resnet50-rand0-p0"
    pooled, regions = reference
    assert pooled.shape == (2, 2048) and regions.shape == (2, 49, 64)
    assert pooled.dtype == regions.dtype == np.float32 and np.isfinite(pooled).all()
    # regions are the 7x7 map projected by the fixed matrix, so their mean is the projected pooled vector
    assert np.allclose(regions.mean(axis=1), pooled @ projection_matrix(0), rtol=1e-3, atol=1e-3)
    feats = imaging_encoder.features(images[:1])
    assert feats[0].encoder_version == "resnet50-rand0-p0" and np.allclose(feats[0].pooled, pooled[0], atol=1e-4)
    assert np.array_equal(projection_matrix(0), projection_matrix(0)) and not np.allclose(projection_matrix(0), projection_matrix(1))


def test_every_process_builds_the_same_encoder_and_the_seed_matters(images, reference):
    again = ResNet50Encoder()
    assert np.allclose(again.encode(images[:1])[0], reference[0][:1], rtol=1e-5, atol=1e-5)
    other = ResNet50Encoder(init_seed=1, projection_seed=2)
    assert other.version == "resnet50-rand1-p2"
    assert not np.allclose(other.encode(images[:1])[0], reference[0][:1])


def test_batching_does_not_change_results(imaging_encoder, images, reference):
    one_at_a_time = ResNet50Encoder(batch_size=1)
    assert np.allclose(one_at_a_time.encode(images)[0], reference[0], rtol=1e-4, atol=1e-4)
    assert imaging_encoder.encode(np.zeros((0, 224, 224, 3), np.float32))[0].shape == (0, 2048)
    with pytest.raises(ValueError, match="224"):
        imaging_encoder.encode(np.zeros((1, 128, 128, 3), np.float32))


def test_frozen_eval_mode_and_global_rng_untouched():
    import torch

    torch.manual_seed(5)
    enc = ResNet50Encoder()
    trunk = enc.trunk()
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())


def test_local_checkpoint_weights_and_version(tmp_path, images, reference):
    import torch
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    enc = ResNet50Encoder(path)
    sha8 = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    assert enc.version == f"resnet50-{sha8}-p0" == encoder_version(path)
    assert np.allclose(enc.encode(images[:1])[0], reference[0][:1], rtol=1e-5, atol=1e-5)


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(EncoderError, match="missing.pth"):
        ResNet50Encoder(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="junk.pth"):
        ResNet50Encoder(junk).trunk()
    import torch

    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, partial)
    with pytest.raises(EncoderError, match="lacks"):
        ResNet50Encoder(partial).trunk()
