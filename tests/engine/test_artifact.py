from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.artifact import META_FILE, MODEL_FILE, ONNX_FILE, ArtifactMeta, ModelArtifact
from engine.exceptions import ArtifactError, EngineError
from engine.model import example_inputs
from schemas.channels import CHANNEL_NAMES, CHANNELS_VERSION


@pytest.fixture
def artifact_copy(make_artifact, tmp_path: Path) -> Path:
    d = tmp_path / "art"
    shutil.copytree(make_artifact(), d)
    return d


def test_load_round_trip(make_artifact) -> None:
    a = ModelArtifact.load(make_artifact())
    m = a.meta
    assert m.channels == CHANNEL_NAMES and m.channels_version == CHANNELS_VERSION
    assert (m.window, m.hop, m.hz) == (200, 50, 100.0)
    assert m.model_version.startswith("risknet-") and m.encoder_version
    assert set(m.files) == {MODEL_FILE, ONNX_FILE}
    assert a.norm_mean.shape == a.norm_std.shape == (32,) and (a.norm_std > 0).all()
    assert m.attn_step_s == pytest.approx(m.config.downsample / m.hz)
    model = a.build_model()
    assert not model.training
    with torch.no_grad():
        prob, _, _ = model(*example_inputs(2, m.config))
    assert prob.shape == (2,)


def test_saved_weights_equal_the_model(make_artifact, tmp_path: Path) -> None:
    src = ModelArtifact.load(make_artifact())
    model = src.build_model()
    model.temperature.fill_(1.7)
    a = ModelArtifact.from_model(model, norm_mean=src.norm_mean, norm_std=src.norm_std, hop=25, hz=100.0,
                                 encoder_version="enc-x", training={"note": "t"})
    a.save(tmp_path / "b")
    b = ModelArtifact.load(tmp_path / "b")
    assert b.meta.temperature == pytest.approx(1.7) and b.meta.hop == 25 and b.meta.training == {"note": "t"}
    assert b.meta.model_version != src.meta.model_version  # the temperature is part of the weights
    for k, v in model.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)


def test_model_version_is_a_content_hash(make_artifact) -> None:
    src = ModelArtifact.load(make_artifact())
    kw = dict(norm_mean=src.norm_mean, norm_std=src.norm_std, hop=50, hz=100.0, encoder_version="e")
    v1 = ModelArtifact.from_model(src.build_model(), **kw).meta.model_version
    v2 = ModelArtifact.from_model(src.build_model(), **kw).meta.model_version
    assert v1 == v2 == src.meta.model_version


@pytest.mark.parametrize("name", [META_FILE, MODEL_FILE, ONNX_FILE])
def test_missing_file_is_named(artifact_copy: Path, name: str) -> None:
    (artifact_copy / name).unlink()
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        ModelArtifact.load(artifact_copy)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        ModelArtifact.load(tmp_path / "nope")


@pytest.mark.parametrize("name", [MODEL_FILE, ONNX_FILE])
def test_corrupt_model_file_is_detected(artifact_copy: Path, name: str) -> None:
    p = artifact_copy / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        ModelArtifact.load(artifact_copy)


def test_corrupt_meta_is_detected(artifact_copy: Path) -> None:
    (artifact_copy / META_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="meta.json is corrupt"):
        ModelArtifact.load(artifact_copy)


def _edit_meta(d: Path, **changes) -> None:
    p = d / META_FILE
    meta = json.loads(p.read_text())
    meta.update(changes)
    p.write_text(json.dumps(meta))


def test_channel_list_mismatch_is_rejected(artifact_copy: Path) -> None:
    chans = list(CHANNEL_NAMES)
    chans[0], chans[1] = chans[1], chans[0]
    _edit_meta(artifact_copy, channels=chans)
    with pytest.raises(ArtifactError, match="another order"):
        ModelArtifact.load(artifact_copy)
    _edit_meta(artifact_copy, channels=list(CHANNEL_NAMES[:-1]) + ["emg_l"])
    with pytest.raises(ArtifactError, match="emg_l"):
        ModelArtifact.load(artifact_copy)


def test_channels_version_mismatch_is_rejected(artifact_copy: Path) -> None:
    _edit_meta(artifact_copy, channels_version=CHANNELS_VERSION + 1)
    with pytest.raises(ArtifactError, match="Retrain"):
        ModelArtifact.load(artifact_copy)


@pytest.mark.parametrize("changes,match", [
    ({"norm_std": [0.0] * 32}, "std > 0"),
    ({"norm_mean": [0.0] * 3}, "32 values"),
    ({"temperature": -1.0}, "temperature"),
    ({"format": 99}, "format"),
    ({"model_config": {"hidden": 8, "bogus": 1}}, "model_config"),
])
def test_bad_meta_values_are_rejected(artifact_copy: Path, changes: dict, match: str) -> None:
    _edit_meta(artifact_copy, **changes)
    with pytest.raises(ArtifactError, match=match):
        ModelArtifact.load(artifact_copy)


def test_missing_meta_key_is_named(artifact_copy: Path) -> None:
    p = artifact_copy / META_FILE
    meta = json.loads(p.read_text())
    del meta["norm_mean"]
    p.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="norm_mean"):
        ModelArtifact.load(artifact_copy)


def test_weights_that_do_not_fit_the_config(artifact_copy: Path) -> None:
    meta = json.loads((artifact_copy / META_FILE).read_text())
    meta["model_config"]["hidden"] = 24
    (artifact_copy / META_FILE).write_text(json.dumps(meta))
    a = ModelArtifact.load(artifact_copy)  # files intact: the mismatch shows when loading weights
    with pytest.raises(ArtifactError, match="does not match the model config"):
        a.build_model()


def test_meta_json_round_trip(make_artifact) -> None:
    m = ModelArtifact.load(make_artifact()).meta
    assert ArtifactMeta.from_dict(json.loads(m.to_json())) == m
    assert issubclass(ArtifactError, EngineError)


def test_in_memory_artifact_has_no_paths(make_artifact) -> None:
    src = ModelArtifact.load(make_artifact())
    a = ModelArtifact.from_model(src.build_model(), norm_mean=np.zeros(32), norm_std=np.ones(32), hop=50, hz=100.0,
                                 encoder_version="e")
    with pytest.raises(ArtifactError, match="save"):
        _ = a.onnx_path
