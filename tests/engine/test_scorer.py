from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine.artifact import ModelArtifact
from engine.data.synthetic import window_dataset
from engine.exceptions import InputError
from engine.scorer import ScoreResult, Scorer
from schemas.channels import CHANNEL_INDEX


@pytest.fixture(scope="module")
def data():
    return window_dataset(6, seed=2)


@pytest.fixture(params=["onnxruntime", "torch"])
def scorer(request, make_artifact):
    with Scorer(make_artifact(), backend=request.param, threads=1) as s:
        yield s


def test_properties(scorer: Scorer, make_artifact) -> None:
    meta = ModelArtifact.load(make_artifact()).meta
    assert scorer.model_version == meta.model_version
    assert scorer.encoder_version == meta.encoder_version
    assert (scorer.window, scorer.hop, scorer.hz) == (200, 50, 100.0)
    assert scorer.attn_step_s == pytest.approx(meta.config.downsample / 100.0)
    assert scorer.time_steps * scorer.attn_step_s == pytest.approx(2.0)


def test_scores_match_the_torch_model_on_normalised_input(scorer: Scorer, make_artifact, data, make_image) -> None:
    art = ModelArtifact.load(make_artifact())
    images = [make_image(seed=i, lesion=bool(i % 2)) if i < 3 else None for i in range(6)]
    results = scorer.score(data.x, images)
    assert len(results) == 6 and all(isinstance(r, ScoreResult) for r in results)
    x = (data.x - art.norm_mean) / art.norm_std
    img = np.stack([im.pooled if im else np.zeros(2048, np.float32) for im in images])
    reg = np.stack([im.regions if im else np.zeros((49, 64), np.float32) for im in images])
    has = np.array([im is not None for im in images], np.float32)
    with torch.no_grad():
        prob, t_attn, r_attn = art.build_model()(*(torch.from_numpy(np.asarray(a, np.float32)) for a in (x, img, reg, has)))
    np.testing.assert_allclose([r.prob for r in results], prob.numpy(), atol=1e-4)
    for i, r in enumerate(results):
        np.testing.assert_allclose(r.time_attn, t_attn[i].numpy(), atol=1e-4)
        assert r.image_used == (i < 3)
        if r.image_used:
            assert r.region_attn is not None and r.region_attn.shape == (49,)
            np.testing.assert_allclose(r.region_attn, r_attn[i].numpy(), atol=1e-4)
            assert len(r.top_regions(3)) == 3
        else:
            assert r.region_attn is None and r.top_regions() == []


def test_absent_channels_nan_are_scored(scorer: Scorer, data) -> None:
    x = data.x[:2].copy()
    x[:, :, CHANNEL_INDEX["knee_valgus_l"]] = np.nan
    x[0, :, :12] = np.nan  # a whole thigh IMU pair missing
    results = scorer.score(x, None)
    assert all(np.isfinite(r.prob) and 0 < r.prob < 1 for r in results)
    assert all(np.isfinite(r.time_attn).all() for r in results)


def test_absent_channel_equals_the_training_mean(scorer: Scorer, make_artifact, data) -> None:
    mean = ModelArtifact.load(make_artifact()).norm_mean
    x_nan, x_mean = data.x[:1].copy(), data.x[:1].copy()
    x_nan[:, :, 5] = np.nan
    x_mean[:, :, 5] = mean[5]
    assert scorer.score(x_nan)[0].prob == pytest.approx(scorer.score(x_mean)[0].prob, abs=1e-6)


def test_other_encoder_is_not_used_unless_allowed(make_artifact, data, make_image) -> None:
    foreign = make_image(encoder_version="resnet50-other")
    with Scorer(make_artifact(), threads=1) as s:
        r = s.score(data.x[:1], [foreign])[0]
        assert not r.image_used and r.region_attn is None
        assert not s.accepts(foreign) and s.accepts(make_image())
    with Scorer(make_artifact(), threads=1, strict_encoder=False) as s:
        assert s.score(data.x[:1], [foreign])[0].image_used


def test_non_finite_image_is_not_used(scorer: Scorer, data, make_image) -> None:
    im = make_image()
    im.pooled[3] = np.nan
    assert not scorer.score(data.x[:1], [im])[0].image_used


def test_bad_inputs(scorer: Scorer, data) -> None:
    with pytest.raises(InputError, match="shape"):
        scorer.score(data.x[:, :100])
    with pytest.raises(InputError, match="images"):
        scorer.score(data.x[:2], [None])
    x = data.x[:1].copy()
    x[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="Inf"):
        scorer.score(x)
    with pytest.raises(InputError, match="floating"):
        scorer.score(data.x[:1].astype(np.int32))


def test_empty_batch_and_float64(scorer: Scorer, data) -> None:
    assert scorer.score(data.x[:0], []) == []
    a = scorer.score(data.x[:1].astype(np.float64))[0].prob
    assert a == pytest.approx(scorer.score(data.x[:1])[0].prob, abs=1e-6)


def test_top_steps_are_times_inside_the_window(scorer: Scorer, data) -> None:
    r = scorer.score(data.x[:1])[0]
    top = r.top_steps(3)
    assert len(top) == 3 and all(0 <= t < 2.0 for t, _ in top)
    assert top[0][1] >= top[1][1] >= top[2][1]


def test_calls_from_two_threads_are_serialised(make_artifact, data) -> None:
    with Scorer(make_artifact(), threads=1) as s:
        want = [r.prob for r in s.score(data.x)]
        got: list[list[float]] = []
        threads = [threading.Thread(target=lambda: got.append([r.prob for r in s.score(data.x)])) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(np.allclose(g, want, atol=1e-6) for g in got) and len(got) == 3


def test_scoring_with_onnxruntime_does_not_import_torch(make_artifact) -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, numpy as np\n"
        "from engine.scorer import Scorer\n"
        "import engine.train\n"
        f"s = Scorer({str(make_artifact())!r}, threads=1)\n"
        "assert len(s.score(np.zeros((1, 200, 32), np.float32))) == 1\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
