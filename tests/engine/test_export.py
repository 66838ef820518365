from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.artifact import ModelArtifact
from engine.exceptions import EngineError
from engine.export import INPUT_NAMES, OUTPUT_NAMES, export_onnx, read_onnx_metadata
from engine.model import example_inputs


def test_export_from_artifact_dir(make_artifact, tmp_path: Path) -> None:
    src = make_artifact()
    report = export_onnx(src, tmp_path / "m.onnx")
    assert report.path.is_file() and report.opset == 17 and report.n_bytes == report.path.stat().st_size
    assert set(report.max_abs_err) == set(OUTPUT_NAMES)
    assert max(report.max_abs_err.values()) <= 1e-4
    onnx.checker.check_model(onnx.load(str(report.path)))
    meta = read_onnx_metadata(report.path)
    assert meta["model_version"] == ModelArtifact.load(src).meta.model_version
    assert meta["channels"][0] == "thigh_l_acc_x"


def test_dynamic_batch_matches_torch(make_artifact, tmp_path: Path) -> None:
    a = ModelArtifact.load(make_artifact())
    model = a.build_model()
    sess = ort.InferenceSession(str(a.onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(INPUT_NAMES)
    for b in (1, 3, 33):
        inputs = example_inputs(b, a.meta.config, seed=b)
        got = sess.run(list(OUTPUT_NAMES), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
        with torch.no_grad():
            ref = model(*inputs)
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-4)


def test_parity_failure_raises(make_artifact, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="differs from torch"):
        export_onnx(make_artifact(), tmp_path / "m.onnx", tolerance=-1.0)
    assert not (tmp_path / "m.onnx").exists()


def test_reexport_in_place_keeps_the_artifact_valid(make_artifact, tmp_path: Path) -> None:
    d = tmp_path / "art"
    shutil.copytree(make_artifact(), d)
    export_onnx(d, d / "model.onnx")
    ModelArtifact.load(d)


def test_export_of_a_model_object_with_metadata(make_artifact, tmp_path: Path) -> None:
    model = ModelArtifact.load(make_artifact()).build_model()
    model.train()
    report = export_onnx(model, tmp_path / "x.onnx", metadata={"k": [1, 2]})
    assert read_onnx_metadata(report.path) == {"k": [1, 2]}
    assert model.training  # the caller's mode is restored


def test_only_the_batch_axis_is_dynamic(make_artifact) -> None:
    """TensorRT's optimisation profile (engine.tensorrt_build) varies axis 0 only."""
    proto = onnx.load(str(ModelArtifact.load(make_artifact()).onnx_path))
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch", value.name
        assert all(d.dim_value > 0 for d in dims[1:]), value.name
    assert [v.name for v in proto.graph.input] == list(INPUT_NAMES)
    assert [v.name for v in proto.graph.output] == list(OUTPUT_NAMES)
