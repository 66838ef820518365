"""TensorRT engine sidecar and compatibility rules (pure: run without a GPU), and the real
build on a GPU with tensorrt installed (marked gpu)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.exceptions import EngineError
from engine.tensorrt_build import (
    EngineInfo,
    EngineMismatch,
    build_engine,
    check_engine_compatible,
    default_engine_path,
    default_timing_cache,
    read_engine_info,
    sidecar_path,
)
from tests.engine.backends.conftest import backend_artifact, cuda_available, tensorrt_importable  # noqa: F401 (fixture)

H100 = ("NVIDIA H100 80GB HBM3", "9.0")
A10 = ("NVIDIA A10", "8.6")


def _info(**kw) -> EngineInfo:
    base = dict(engine_file="model-fp16.engine", gpu_name=H100[0], compute_capability=H100[1],
                tensorrt_version="10.3.0", precision="fp16", min_batch=1, opt_batch=32, max_batch=256,
                onnx_file="m/model.onnx", onnx_sha256="ab" * 32, model_version="risknet-x")
    return EngineInfo(**{**base, **kw})


def _write(tmp_path: Path, info: EngineInfo) -> Path:
    engine = tmp_path / info.engine_file
    engine.write_bytes(b"plan")
    sidecar_path(engine).write_text(info.to_json())
    return engine


def test_paths() -> None:
    assert sidecar_path(Path("a/model-fp16.engine")) == Path("a/model-fp16.engine.json")
    assert default_engine_path("art", "fp32") == Path("art/engines/model-fp32.engine")
    assert default_timing_cache("art") == Path("art/engines/timing.cache")
    with pytest.raises(ValueError, match="precision"):
        default_engine_path("art", "int8")


def test_sidecar_round_trip(tmp_path: Path) -> None:
    info = _info(extra={"cuda": "12.4"})
    assert read_engine_info(_write(tmp_path, info)) == info


def test_missing_or_corrupt_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "model-fp16.engine"
    with pytest.raises(EngineError, match="no TensorRT engine at .*build-engine"):
        read_engine_info(engine)
    engine.write_bytes(b"plan")
    with pytest.raises(EngineError, match="model-fp16.engine.json"):
        read_engine_info(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineError, match="corrupt"):
        read_engine_info(engine)
    sidecar_path(engine).write_text(json.dumps({**json.loads(_info().to_json()), "format": 99}))
    with pytest.raises(EngineError, match="format 99"):
        read_engine_info(engine)
    sidecar_path(engine).write_text(json.dumps({**json.loads(_info().to_json()), "colour": "red"}))
    with pytest.raises(EngineError, match="bad engine info"):
        read_engine_info(engine)


def _check(info: EngineInfo, gpu=H100, trt="10.3.0", sha="ab" * 32, precision="fp16") -> None:
    check_engine_compatible(info, engine_path=Path("art/engines/model-fp16.engine"), gpu_name=gpu[0],
                            compute_capability=gpu[1], tensorrt_version=trt, onnx_sha256=sha, precision=precision,
                            onnx_path=Path("art/model.onnx"))


def test_matching_engine_is_accepted() -> None:
    _check(_info())


def test_another_gpu_is_refused_naming_both() -> None:
    with pytest.raises(EngineMismatch) as err:
        _check(_info(), gpu=A10)
    msg = str(err.value)
    assert "NVIDIA H100 80GB HBM3 (compute capability 9.0)" in msg and "NVIDIA A10 (compute capability 8.6)" in msg
    assert "injury-monitor build-engine --model art --out art/engines/model-fp16.engine --precision fp16" in msg


def test_same_architecture_other_model_is_refused() -> None:
    with pytest.raises(EngineMismatch, match="NVIDIA H200"):
        _check(_info(), gpu=("NVIDIA H200", "9.0"))


@pytest.mark.parametrize(("kw", "match"), [
    ({"trt": "10.4.0"}, "TensorRT 10.3.0, this process has TensorRT 10.4.0"),
    ({"sha": "cd" * 32}, "another model"),
    ({"precision": "fp32"}, "it is fp16, fp32 was asked for"),
])
def test_other_tensorrt_model_or_precision_is_refused(kw: dict, match: str) -> None:
    with pytest.raises(EngineMismatch, match=match):
        _check(_info(), **kw)


def test_mismatch_is_an_engine_error() -> None:
    assert issubclass(EngineMismatch, EngineError)


def test_build_rejects_bad_profiles_and_missing_onnx(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_batch <= opt_batch"):
        build_engine(tmp_path / "m.onnx", tmp_path / "e.engine", min_batch=4, opt_batch=2, max_batch=8)
    with pytest.raises(EngineError, match="does not exist"):
        build_engine(tmp_path / "m.onnx", tmp_path / "e.engine")


@pytest.mark.skipif(tensorrt_importable(), reason="tensorrt is installed here")
def test_build_without_tensorrt_says_so(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"an onnx file")
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        build_engine(tmp_path / "m.onnx", tmp_path / "e.engine")
    assert not (tmp_path / "e.engine").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not (cuda_available() and tensorrt_importable()), reason="needs a CUDA GPU and tensorrt")
@pytest.mark.parametrize("fp16", [True, False])
def test_build_writes_engine_sidecar_and_timing_cache(backend_artifact, tmp_path: Path, fp16: bool) -> None:
    import tensorrt as trt
    import torch

    from engine.artifact import sha256_file

    onnx = backend_artifact() / "model.onnx"
    out = tmp_path / "e.engine"
    cache = tmp_path / "timing.cache"
    info = build_engine(onnx, out, fp16=fp16, min_batch=1, opt_batch=4, max_batch=16, timing_cache=cache)
    assert out.is_file() and cache.stat().st_size > 0 and read_engine_info(out) == info
    assert info.gpu_name == torch.cuda.get_device_name(0) and info.tensorrt_version == trt.__version__
    assert (info.precision, info.min_batch, info.opt_batch, info.max_batch) == ("fp16" if fp16 else "fp32", 1, 4, 16)
    assert info.onnx_sha256 == sha256_file(onnx) and info.n_bytes == out.stat().st_size
    again = build_engine(onnx, tmp_path / "f.engine", fp16=fp16, max_batch=16, opt_batch=4, timing_cache=cache)
    assert again.build_s > 0  # the second build reads the timing cache


class _FakeTrt:
    """The few TensorRT names fp32_layers uses, over the exported ONNX graph (one layer per
    node, named tensors), so the FP32 pinning is checked on the real model without TensorRT."""

    class LayerType:
        ELEMENTWISE, UNARY, ACTIVATION, NORMALIZATION, OTHER = "elementwise", "unary", "activation", "norm", "other"

    KINDS = {"Sub": "elementwise", "Div": "elementwise", "Mul": "elementwise", "Add": "elementwise",
             "Erf": "unary", "Clip": "activation", "LayerNormalization": "norm"}

    class _Tensor:
        def __init__(self, name: str) -> None:
            self.name = name

    class _Layer:
        def __init__(self, node, kind: str) -> None:
            self.node, self.type = node, kind
            self.num_inputs, self.num_outputs = len(node.input), len(node.output)

        def get_input(self, j: int):
            return _FakeTrt._Tensor(self.node.input[j]) if self.node.input[j] else None

        def get_output(self, k: int):
            return _FakeTrt._Tensor(self.node.output[k])

    class Network:
        def __init__(self, proto) -> None:
            self.layers = [_FakeTrt._Layer(n, _FakeTrt.KINDS.get(n.op_type, "other")) for n in proto.graph.node]
            self.num_layers = len(self.layers)

        def get_layer(self, i: int):
            return self.layers[i]


def test_fp16_keeps_image_standardisation_and_layernorm_in_fp32(backend_artifact) -> None:
    import onnx

    from engine.tensorrt_build import fp32_layers

    proto = onnx.load(str(backend_artifact() / "model.onnx"))
    picked = fp32_layers(_FakeTrt.Network(proto), _FakeTrt)
    ops = sorted((layer.node.op_type, layer.node.input[0]) for layer in picked if layer.node.op_type != "LayerNormalization")
    # (img - img_mean) / img_std, clipped; the same for the regions; nothing past them
    assert [op for op, _ in ops] == ["Clip", "Clip", "Div", "Div", "Sub", "Sub"]
    assert ("Sub", "img") in ops and ("Sub", "regions") in ops
    n_norm = sum(n.op_type == "LayerNormalization" for n in proto.graph.node)
    assert n_norm == 2 and sum(layer.node.op_type == "LayerNormalization" for layer in picked) == n_norm
