"""TensorRT backend: availability and engine discovery everywhere; the real engine on a GPU
with tensorrt installed (marked gpu). The contract suite covers its inference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.artifact import ModelArtifact
from engine.backends.base import auto_choice, get_backend
from engine.backends.tensorrt import TensorRTBackend
from engine.exceptions import BackendUnavailable, EngineError
from engine.tensorrt_build import EngineMismatch, sidecar_path
from tests.engine.backends.conftest import cuda_available, tensorrt_importable

HAVE_TRT = cuda_available() and tensorrt_importable()


def test_available_needs_tensorrt_and_cuda() -> None:
    assert TensorRTBackend.available() == HAVE_TRT


def test_default_engine_path_and_options(backend_artifact) -> None:
    art = backend_artifact()
    be = TensorRTBackend(art, threads=3)  # threads accepted (the worker passes it) and unused
    assert be.engine_path == art / "engines" / "model-fp16.engine" and be.label == "tensorrt-fp16"
    assert TensorRTBackend(art, precision="fp32").engine_path.name == "model-fp32.engine"
    assert be.timing_cache == art / "engines" / "timing.cache"
    with pytest.raises(ValueError, match="precision"):
        TensorRTBackend(art, precision="int8")
    with pytest.raises(ValueError, match="device"):
        TensorRTBackend(art, device="cpu")


def test_in_memory_artifact_needs_an_engine_path(backend_artifact, tmp_path: Path) -> None:
    loaded = ModelArtifact.load(backend_artifact())
    mem = ModelArtifact(loaded.meta, state_dict=loaded.state_dict())
    with pytest.raises(EngineError, match="engine_path"):
        TensorRTBackend(mem)
    assert TensorRTBackend(mem, engine_path=tmp_path / "x.engine").engine_path == tmp_path / "x.engine"


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt and a GPU are present")
def test_unavailable_here(backend_artifact) -> None:
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        get_backend("tensorrt", backend_artifact())
    assert not TensorRTBackend.available_for(ModelArtifact.load(backend_artifact()), rebuild=True)
    assert auto_choice(ModelArtifact.load(backend_artifact()))[0] != "tensorrt"


@pytest.fixture
def trt_artifact(backend_artifact, tmp_path: Path) -> Path:
    d = tmp_path / "art"
    shutil.copytree(backend_artifact(), d)
    return d


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs a CUDA GPU and tensorrt")
def test_missing_engine_is_refused_then_built_with_rebuild(trt_artifact: Path, make_inputs) -> None:
    with pytest.raises(EngineError, match="build-engine"):
        get_backend("tensorrt", trt_artifact, max_batch=8).activate()
    assert not TensorRTBackend.available_for(ModelArtifact.load(trt_artifact))
    with get_backend("tensorrt", trt_artifact, max_batch=8, rebuild=True) as be:
        assert len(be.infer(*make_inputs(3))) == 3
    engine = trt_artifact / "engines" / "model-fp16.engine"
    assert engine.is_file() and sidecar_path(engine).is_file() and (trt_artifact / "engines" / "timing.cache").is_file()
    ModelArtifact.load(trt_artifact)  # the engines folder does not disturb the artifact's checksums
    assert TensorRTBackend.available_for(ModelArtifact.load(trt_artifact))
    assert auto_choice(ModelArtifact.load(trt_artifact))[0] == "tensorrt"


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs a CUDA GPU and tensorrt")
def test_engine_of_another_gpu_is_refused_naming_both(trt_artifact: Path) -> None:
    import torch

    with get_backend("tensorrt", trt_artifact, max_batch=8, rebuild=True):
        pass
    engine = trt_artifact / "engines" / "model-fp16.engine"
    info = json.loads(sidecar_path(engine).read_text())
    sidecar_path(engine).write_text(json.dumps({**info, "gpu_name": "NVIDIA A10", "compute_capability": "8.6"}))
    with pytest.raises(EngineMismatch) as err:
        get_backend("tensorrt", trt_artifact, max_batch=8).activate()
    assert "NVIDIA A10" in str(err.value) and torch.cuda.get_device_name(0) in str(err.value)
    with get_backend("tensorrt", trt_artifact, max_batch=8, rebuild=True):  # rebuilds for this GPU
        pass
    assert json.loads(sidecar_path(engine).read_text())["gpu_name"] == torch.cuda.get_device_name(0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs a CUDA GPU and tensorrt")
def test_max_batch_is_capped_by_the_profile(trt_artifact: Path, make_inputs) -> None:
    with get_backend("tensorrt", trt_artifact, max_batch=4, rebuild=True):
        pass
    with get_backend("tensorrt", trt_artifact, max_batch=64) as be:  # the engine was built for 1..4
        assert be.max_batch == 4
        assert len(be.infer(*make_inputs(10))) == 10  # split into 4 + 4 + 2
