"""Torch backend specifics: CUDA-graph batch sizes and padding, options, and (on a GPU)
graphs vs eager, half precision and the TF32 switch."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.base import get_backend
from engine.backends.torch import TorchBackend, capture_sizes, padded_size
from tests.engine.backends.conftest import cuda_available


@pytest.mark.parametrize(("max_batch", "want"), [
    (1, (1,)), (2, (1, 2)), (8, (1, 2, 4, 8)), (64, (1, 2, 4, 8, 16, 32, 64)), (100, (1, 2, 4, 8, 16, 32, 64, 100)),
])
def test_capture_sizes(max_batch: int, want: tuple[int, ...]) -> None:
    assert capture_sizes(max_batch) == want


def test_padded_size() -> None:
    sizes = capture_sizes(100)
    assert [padded_size(b, sizes) for b in (1, 2, 3, 5, 64, 65, 100)] == [1, 2, 4, 8, 64, 100, 100]
    with pytest.raises(ValueError, match="exceeds"):
        padded_size(101, sizes)
    with pytest.raises(ValueError):
        capture_sizes(0)


def test_cpu_options(backend_model) -> None:
    art = backend_model()
    be = TorchBackend(art)
    assert be.device == "cpu" and not be.cuda_graphs and be.graph_sizes == () and be.label == "torch-cpu"
    with pytest.raises(ValueError, match="CUDA devices only"):
        TorchBackend(art, precision="fp16")
    with pytest.raises(ValueError, match="CUDA graphs need"):
        TorchBackend(art, cuda_graphs=True)
    with pytest.raises(ValueError, match="precision"):
        TorchBackend(art, device="cuda", precision="int8")
    with pytest.raises(ValueError, match="device"):
        TorchBackend(art, device="tpu")
    cuda = TorchBackend(art, device="cuda", max_batch=20)  # constructing needs no GPU; activating does
    assert cuda.cuda_graphs and cuda.graph_sizes == (1, 2, 4, 8, 16, 20)
    assert not TorchBackend(art, device="cuda", cuda_graphs=False).cuda_graphs


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graphs_match_eager(backend_model, make_inputs, precision: str) -> None:
    art = backend_model("default")
    inputs = make_inputs(37, seed=3)  # 37 -> the graph of 64
    with get_backend("torch", art, device="cuda", precision=precision, max_batch=64) as graphs, \
         get_backend("torch", art, device="cuda", precision=precision, cuda_graphs=False, max_batch=64) as eager:
        assert graphs.graphs_active, graphs.graphs_error
        assert graphs.label == f"torch-cuda-{precision}+graphs" and eager.label == f"torch-cuda-{precision}"
        a, b = graphs.infer(*inputs), eager.infer(*inputs)
        again = graphs.infer(*inputs)
    tol = 1e-5 if precision == "fp32" else 2e-3
    for x, y in zip((a.prob, a.time_attn, a.region_attn), (b.prob, b.time_attn, b.region_attn)):
        np.testing.assert_allclose(x, y, atol=tol, rtol=0)
    np.testing.assert_array_equal(a.prob, again.prob)  # replays are deterministic



@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
def test_fp32_turns_tf32_off_while_active(backend_model) -> None:
    import torch

    before = torch.backends.cudnn.allow_tf32
    with get_backend("torch-cuda", backend_model(), max_batch=4):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before
    with get_backend("torch-cuda", backend_model(), max_batch=4, tf32=True):
        assert torch.backends.cudnn.allow_tf32 == before


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
def test_default_model_fp16_is_close_to_cpu(backend_model, make_inputs) -> None:
    art = backend_model("default")
    inputs = make_inputs(64, seed=5)
    with get_backend("torch", art) as cpu, get_backend("torch-cuda-fp16", art, max_batch=64) as half:
        ref, got = cpu.infer(*inputs), half.infer(*inputs)
    np.testing.assert_allclose(got.prob, ref.prob, atol=1e-2, rtol=0)
