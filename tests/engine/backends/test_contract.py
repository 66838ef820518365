"""One contract, every backend. The cheap backends always run; CUDA ones under the gpu marker."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.base import BACKENDS, Backend, InferenceOutput, backend_class, get_backend
from engine.exceptions import BackendUnavailable, EngineError, InputError

MAX_BATCH = 8


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


BACKEND_PARAMS = [
    pytest.param(("onnxruntime", {"threads": 1}), id="onnxruntime-cpu"),
    pytest.param(("torch", {"device": "cpu"}), id="torch-cpu"),
    pytest.param(("torch", {"device": "cuda"}), id="torch-cuda",
                 marks=[pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")]),
]


def test_every_registered_backend_is_covered() -> None:
    assert {p.values[0][0] for p in BACKEND_PARAMS} == set(BACKENDS)


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request, make_artifact):
    name, opts = request.param
    with get_backend(name, make_artifact(), max_batch=MAX_BATCH, **opts) as be:
        yield be


def _inputs(b: int, seed: int = 0, image_fraction: float = 0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, 200, 32)).astype(np.float32)
    img = rng.random((b, 2048)).astype(np.float32)
    regions = rng.standard_normal((b, 49, 64)).astype(np.float32)
    has = (rng.random(b) < image_fraction).astype(np.float32)
    return x, img, regions, has


@pytest.fixture(scope="module")
def reference(make_artifact):
    """Torch CPU outputs on fixed inputs: the parity reference of every backend."""
    import torch

    from engine.artifact import ModelArtifact

    model = ModelArtifact.load(make_artifact()).build_model()
    inputs = _inputs(2 * MAX_BATCH + 3, seed=7)
    with torch.no_grad():
        out = model(*(torch.from_numpy(a) for a in inputs))
    return inputs, [t.numpy() for t in out]


@pytest.mark.parametrize("b", [1, MAX_BATCH])
def test_shapes(backend: Backend, b: int) -> None:
    out = backend.infer(*_inputs(b))
    assert isinstance(out, InferenceOutput) and len(out) == b
    assert out.prob.shape == (b,) and out.time_attn.shape == (b, backend.time_steps) and out.region_attn.shape == (b, 49)
    assert out.prob.dtype == out.time_attn.dtype == out.region_attn.dtype == np.float32
    assert ((out.prob > 0) & (out.prob < 1)).all()
    np.testing.assert_allclose(out.time_attn.sum(1), 1.0, atol=1e-5)


def test_parity_with_torch_including_split_batches(backend: Backend, reference) -> None:
    inputs, ref = reference
    out = backend.infer(*inputs)  # more than max_batch: split internally
    for got, want in zip((out.prob, out.time_attn, out.region_attn), ref):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_region_attention_zero_without_image(backend: Backend) -> None:
    out = backend.infer(*_inputs(4, image_fraction=0.0))
    assert np.all(out.region_attn == 0)
    out = backend.infer(*_inputs(4, image_fraction=1.0))
    np.testing.assert_allclose(out.region_attn.sum(1), 1.0, atol=1e-5)


def test_empty_batch(backend: Backend) -> None:
    calls = backend.n_calls
    out = backend.infer(*_inputs(0))
    assert out.prob.shape == (0,) and out.time_attn.shape == (0, backend.time_steps) and out.region_attn.shape == (0, 49)
    assert backend.n_calls == calls


@pytest.mark.parametrize("which", [0, 1, 2, 3])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(backend: Backend, which: int, bad: float) -> None:
    inputs = list(_inputs(2))
    inputs[which] = inputs[which].copy()
    inputs[which].reshape(-1)[0] = bad
    with pytest.raises(InputError, match="NaN or Inf"):
        backend.infer(*inputs)


def test_wrong_dtype_and_shape_rejected(backend: Backend) -> None:
    x, img, reg, has = _inputs(2)
    with pytest.raises(InputError, match="float32"):
        backend.infer(x.astype(np.float64), img, reg, has)
    with pytest.raises(InputError, match="x has shape"):
        backend.infer(x[:, :100], img, reg, has)
    with pytest.raises(InputError, match="img has shape"):
        backend.infer(x, img[:1], reg, has)
    with pytest.raises(InputError, match="has_img"):
        backend.infer(x, img, reg, has + 2)
    with pytest.raises(InputError, match="numpy"):
        backend.infer(x.tolist(), img, reg, has)  # type: ignore[arg-type]


def test_measures_inference_time(backend: Backend) -> None:
    before = backend.total_inference_s
    backend.infer(*_inputs(3))
    assert backend.last_inference_s > 0
    assert backend.total_inference_s >= before + backend.last_inference_s
    assert backend.n_samples >= 3


def test_inactive_backend_refuses(make_artifact) -> None:
    be = get_backend("onnxruntime", make_artifact())
    with pytest.raises(EngineError, match="not active"):
        be.infer(*_inputs(1))
    with be:
        assert be.is_active
        be.activate()  # idempotent
    assert not be.is_active
    be.deactivate()  # idempotent


def test_get_backend_names(make_artifact) -> None:
    with pytest.raises(EngineError, match="unknown backend"):
        get_backend("tpu", make_artifact())
    assert get_backend("auto", make_artifact()).name in BACKENDS
    assert backend_class("torch").name == "torch"
    if not _cuda():
        with pytest.raises(BackendUnavailable):
            get_backend("torch", make_artifact(), device="cuda")
