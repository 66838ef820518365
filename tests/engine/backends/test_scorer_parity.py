"""The worker's scores do not depend on the CPU backend: engine.scorer.Scorer with ONNX
Runtime and with torch on the same windows (physical units, absent channels, some images)
agree within 1e-4, for the worker-size model and a trained one."""

from __future__ import annotations

import numpy as np
import pytest

from engine.artifact import ModelArtifact
from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM, ImageFeatures
from engine.scorer import Scorer

TOL = 1e-4


def _windows(art: ModelArtifact, n: int, seed: int) -> np.ndarray:
    """Windows in physical units around the artifact's statistics, with absent channels."""
    rng = np.random.default_rng(seed)
    w = art.norm_mean + art.norm_std * rng.standard_normal((n, art.meta.window, len(art.meta.channels)))
    w[0, :, 5] = np.nan                   # one absent channel
    w[1, :, :12] = np.nan                 # a whole IMU pair absent
    w[2, 50:60, :] = np.nan               # a gap
    return w.astype(np.float32)


def _images(art: ModelArtifact, n: int, seed: int) -> list[ImageFeatures | None]:
    rng = np.random.default_rng(seed)
    out: list[ImageFeatures | None] = []
    for i in range(n):
        if i % 3 == 2:
            out.append(None)
            continue
        out.append(ImageFeatures(pooled=rng.random(POOLED_DIM).astype(np.float32),
                                 regions=rng.standard_normal((N_REGIONS, REGION_DIM)).astype(np.float32),
                                 encoder_version=art.meta.encoder_version))
    return out


@pytest.fixture(params=["default", "trained"])
def artifact(request, backend_artifact, make_artifact) -> ModelArtifact:
    path = backend_artifact("default") if request.param == "default" else make_artifact("tiny")
    return ModelArtifact.load(path)


def test_scores_identical_across_cpu_backends(artifact: ModelArtifact) -> None:
    n = 37  # ONNX Runtime: 32 (two shards of 16) + 5; torch: 16 + 16 + 5
    windows, images = _windows(artifact, n, seed=1), _images(artifact, n, seed=2)
    with Scorer(artifact, backend="onnxruntime", threads=2, max_batch=32) as ort, \
         Scorer(artifact, backend="torch", threads=1, max_batch=16) as pt:
        a, b = ort.score(windows, images), pt.score(windows, images)
        assert ort.backend_name == "onnxruntime" and pt.backend_name == "torch"
    assert len(a) == len(b) == n
    probs_a, probs_b = np.array([r.prob for r in a]), np.array([r.prob for r in b])
    assert np.ptp(probs_a) > 1e-3  # the windows really differ
    np.testing.assert_allclose(probs_a, probs_b, atol=TOL, rtol=0)
    for ra, rb in zip(a, b):
        assert ra.image_used == rb.image_used
        np.testing.assert_allclose(ra.time_attn, rb.time_attn, atol=TOL, rtol=0)
        if ra.image_used:
            np.testing.assert_allclose(ra.region_attn, rb.region_attn, atol=TOL, rtol=0)
        else:
            assert ra.region_attn is None and rb.region_attn is None


def test_auto_scores_like_onnxruntime_on_a_cpu(artifact: ModelArtifact) -> None:
    from tests.engine.backends.conftest import cuda_available

    if cuda_available():
        pytest.skip("auto picks a GPU backend here")
    windows = _windows(artifact, 4, seed=3)
    with Scorer(artifact, backend="auto", threads=1) as auto, Scorer(artifact, backend="onnxruntime", threads=1) as ort:
        assert auto.backend_name == "onnxruntime"
        assert [r.prob for r in auto.score(windows)] == [r.prob for r in ort.score(windows)]
