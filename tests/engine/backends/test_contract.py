"""One contract, every backend. The CPU backends always run; the CUDA and TensorRT ones are
marked ``gpu`` (tests/conftest.py skips them without CUDA) and TensorRT also needs
``tensorrt`` importable. Parity is against torch on the CPU: 1e-4 for float32 backends,
1e-2 for half precision (FP16 keeps ~3 significant digits)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine.backends.base import (
    AUTO_ORDER,
    BACKEND_SPECS,
    BACKENDS,
    Backend,
    InferenceOutput,
    backend_class,
    backend_names,
    get_backend,
    resolve_spec,
)
from engine.exceptions import BackendUnavailable, EngineError, InputError
from tests.engine.backends.conftest import cuda_available, tensorrt_importable

ORT = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")

MAX_BATCH = 8
FP32, FP16 = 1e-4, 1e-2
GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")]
TRT = [*GPU, pytest.mark.skipif(not tensorrt_importable(), reason="tensorrt is not installed")]

BACKEND_PARAMS = [
    pytest.param(("onnxruntime", {"threads": 1}, FP32), id="onnxruntime-cpu", marks=ORT),
    pytest.param(("onnxruntime-sharded", {"threads": 2}, FP32), id="onnxruntime-cpu-2shards", marks=ORT),
    pytest.param(("onnxruntime-single", {"threads": 2}, FP32), id="onnxruntime-cpu-single", marks=ORT),
    pytest.param(("torch", {"device": "cpu"}, FP32), id="torch-cpu"),
    pytest.param(("torch-cuda", {}, FP32), id="torch-cuda-graphs", marks=GPU),
    pytest.param(("torch-cuda-eager", {}, FP32), id="torch-cuda-eager", marks=GPU),
    pytest.param(("torch-cuda-fp16", {}, FP16), id="torch-cuda-fp16-graphs", marks=GPU),
    pytest.param(("tensorrt-fp32", {}, FP32), id="tensorrt-fp32", marks=TRT),
    pytest.param(("tensorrt-fp16", {}, FP16), id="tensorrt-fp16", marks=TRT),
]


def test_every_registered_backend_is_covered() -> None:
    covered = {resolve_spec(p.values[0][0])[0] for p in BACKEND_PARAMS}
    assert covered == set(BACKENDS)


@pytest.fixture(params=BACKEND_PARAMS)
def case(request, backend_model, backend_artifact, tmp_path_factory):
    spec, opts, tol = request.param
    opts = dict(opts)
    art = backend_model()
    if spec.startswith("tensorrt"):  # built once per precision, in a folder of the test session
        engines = tmp_path_factory.getbasetemp() / "trt-engines"
        opts.update(engine_path=engines / f"{spec}.engine", rebuild=True)
        art = backend_artifact()
    with get_backend(spec, art, max_batch=MAX_BATCH, **opts) as be:
        yield be, tol


@pytest.fixture
def backend(case) -> Backend:
    return case[0]


@pytest.fixture(scope="module")
def reference(backend_model, make_inputs):
    """Torch CPU outputs on fixed inputs: the parity reference of every backend."""
    import torch

    model = backend_model().build_model()
    inputs = make_inputs(2 * MAX_BATCH + 3, seed=7)
    with torch.no_grad():
        out = model(*(torch.from_numpy(a) for a in inputs))
    return inputs, [t.numpy() for t in out]


@pytest.mark.parametrize("b", [1, MAX_BATCH])
def test_shapes(case, make_inputs, b: int) -> None:
    backend, tol = case
    out = backend.infer(*make_inputs(b))
    assert isinstance(out, InferenceOutput) and len(out) == b
    assert out.prob.shape == (b,) and out.time_attn.shape == (b, backend.time_steps) and out.region_attn.shape == (b, 49)
    assert out.prob.dtype == out.time_attn.dtype == out.region_attn.dtype == np.float32
    assert ((out.prob > 0) & (out.prob < 1)).all()
    np.testing.assert_allclose(out.time_attn.sum(1), 1.0, atol=1e-5 if tol == FP32 else 2e-3)


def test_parity_with_torch_including_split_batches(case, reference) -> None:
    backend, tol = case
    inputs, ref = reference
    out = backend.infer(*inputs)  # 19 rows with max_batch 8: 8 + 8 + 3 (a padded CUDA graph)
    for got, want in zip((out.prob, out.time_attn, out.region_attn), ref):
        np.testing.assert_allclose(got, want, atol=tol, rtol=0)


@pytest.mark.parametrize("b", [3, 5, 7])
def test_every_batch_size_matches_torch(case, reference, b: int) -> None:
    backend, tol = case
    inputs, ref = reference
    out = backend.infer(*(a[:b] for a in inputs))
    np.testing.assert_allclose(out.prob, ref[0][:b], atol=tol, rtol=0)
    np.testing.assert_allclose(out.time_attn, ref[1][:b], atol=tol, rtol=0)


def test_region_attention_zero_without_image(case, make_inputs) -> None:
    backend, tol = case
    out = backend.infer(*make_inputs(4, image_fraction=0.0))
    assert np.all(out.region_attn == 0)
    out = backend.infer(*make_inputs(4, image_fraction=1.0))
    np.testing.assert_allclose(out.region_attn.sum(1), 1.0, atol=1e-5 if tol == FP32 else 2e-3)


def test_empty_batch(backend: Backend, make_inputs) -> None:
    calls = backend.n_calls
    out = backend.infer(*make_inputs(0))
    assert out.prob.shape == (0,) and out.time_attn.shape == (0, backend.time_steps) and out.region_attn.shape == (0, 49)
    assert backend.n_calls == calls


@pytest.mark.parametrize("which", [0, 1, 2, 3])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(backend: Backend, make_inputs, which: int, bad: float) -> None:
    inputs = list(make_inputs(2))
    inputs[which] = inputs[which].copy()
    inputs[which].reshape(-1)[0] = bad
    with pytest.raises(InputError, match="NaN or Inf"):
        backend.infer(*inputs)


def test_wrong_dtype_and_shape_rejected(backend: Backend, make_inputs) -> None:
    x, img, reg, has = make_inputs(2)
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


def test_measures_inference_time(backend: Backend, make_inputs) -> None:
    before = backend.total_inference_s
    backend.infer(*make_inputs(3))
    assert backend.last_inference_s > 0
    assert backend.total_inference_s >= before + backend.last_inference_s
    assert backend.n_samples >= 3


def test_warmup_is_not_counted(backend: Backend) -> None:
    calls, samples = backend.n_calls, backend.n_samples
    backend.warmup((1, MAX_BATCH, 100))  # 100 is capped at max_batch
    assert (backend.n_calls, backend.n_samples) == (calls, samples)


def test_label_names_the_backend(backend: Backend) -> None:
    assert backend.label.startswith(backend.name)


@ORT
def test_inactive_backend_refuses(backend_artifact, make_inputs) -> None:
    be = get_backend("onnxruntime", backend_artifact())
    with pytest.raises(EngineError, match="not active"):
        be.infer(*make_inputs(1))
    with pytest.raises(EngineError, match="not active"):
        be.warmup()
    with be:
        assert be.is_active
        be.activate()  # idempotent
    assert not be.is_active
    be.deactivate()  # idempotent


def test_get_backend_names(backend_model) -> None:
    art = backend_model()
    with pytest.raises(EngineError, match="unknown backend"):
        get_backend("tpu", art)
    assert backend_class("torch").name == "torch"
    assert set(BACKEND_SPECS) <= set(backend_names()) and "auto" not in backend_names()
    assert resolve_spec("torch-cuda-fp16", threads=2) == ("torch", {"threads": 2, "device": "cuda", "precision": "fp16"})
    with pytest.raises(EngineError, match="fixes"):
        resolve_spec("torch-cuda", device="cpu")
    assert AUTO_ORDER[-1] == "onnxruntime-cpu"
    if not cuda_available():
        with pytest.raises(BackendUnavailable):
            get_backend("torch", art, device="cuda")
        with pytest.raises(BackendUnavailable):
            get_backend("torch-cuda", art)
        with pytest.raises(BackendUnavailable):
            get_backend("tensorrt", art)


@pytest.mark.skipif(cuda_available(), reason="on a GPU machine auto picks a GPU backend")
def test_auto_is_onnxruntime_on_a_cpu(backend_artifact) -> None:
    # the Scorer passes threads and max_batch to whatever auto picks
    be = get_backend("auto", backend_artifact(), threads=1, max_batch=4)
    assert be.name == "onnxruntime" and be.threads == 1 and be.max_batch == 4


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
def test_auto_prefers_the_gpu(backend_model) -> None:
    be = get_backend("auto", backend_model(), threads=1)
    if tensorrt_importable():
        assert be.name in ("tensorrt", "torch")  # tensorrt only where an engine for this GPU exists
    else:
        assert be.name == "torch" and be.device == "cuda"
