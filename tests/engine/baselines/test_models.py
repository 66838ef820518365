from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.baselines import FULL_MODEL, MODELS, model_spec
from engine.baselines.ablations import RiskNetAblation
from engine.baselines.sequence import BiLSTMNet, CNNLSTM
from engine.baselines.vgg16 import VGG16_POOLED_DIM
from engine.model import RiskNet, example_inputs
from engine.model_config import ModelConfig

SMALL = ModelConfig(conv_dim=16, hidden=16, attn_dim=16)


def _inputs(cfg: ModelConfig, batch: int = 4):
    return example_inputs(batch, cfg, image_fraction=1.0)


@pytest.mark.parametrize("spec", [m for m in MODELS if m.kind == "torch"], ids=lambda m: m.name)
def test_every_model_scores_a_batch_and_learns(spec) -> None:
    torch.manual_seed(0)
    model = spec.build(SMALL)
    cfg = model.config
    x, img, reg, has = _inputs(cfg)
    res = model.forward_logits(x, img, reg, has)
    logit = res[0] if isinstance(res, tuple) else res
    assert logit.shape == (4,) and torch.isfinite(logit).all()
    logit.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert hasattr(model, "temperature") and hasattr(model, "set_image_stats")


def test_registry() -> None:
    names = [m.name for m in MODELS]
    assert names[0] == FULL_MODEL and len(set(names)) == len(names)
    assert {"Logistic regression, workload", "CNN-LSTM", "BiLSTM", "VGG16 image branch"} <= set(names)
    assert model_spec("CNN-LSTM").image_encoder == "resnet50"
    assert model_spec("VGG16 image branch").build(SMALL).config.img_dim == VGG16_POOLED_DIM
    with pytest.raises(KeyError):
        model_spec("nope")


def test_no_attention_weighs_every_step_and_region_alike() -> None:
    torch.manual_seed(1)
    m = RiskNetAblation(SMALL, mode="no_attention").eval()
    with torch.no_grad():
        _, a_t, a_r = m(*_inputs(SMALL))
    torch.testing.assert_close(a_t, torch.full_like(a_t, 1 / SMALL.time_steps))
    torch.testing.assert_close(a_r, torch.full_like(a_r, 1 / 49))
    m = RiskNetAblation(SMALL, mode="no_region_attention").eval()
    with torch.no_grad():
        _, a_t, a_r = m(*_inputs(SMALL))
    assert not torch.allclose(a_t, torch.full_like(a_t, 1 / SMALL.time_steps))
    torch.testing.assert_close(a_r, torch.full_like(a_r, 1 / 49))


def test_single_modality_ablations_ignore_the_other_modality() -> None:
    torch.manual_seed(2)
    x, img, reg, has = _inputs(SMALL)
    sensors = RiskNetAblation(SMALL, mode="sensors_only").eval()
    image = RiskNetAblation(SMALL, mode="image_only").eval()
    with torch.no_grad():
        torch.testing.assert_close(sensors(x, img, reg, has)[0], sensors(x, img * 3 + 1, -reg, has)[0])
        torch.testing.assert_close(image(x, img, reg, has)[0], image(x * 5 + 2, img, reg, has)[0])
        assert not torch.allclose(image(x, img, reg, has)[0], image(x, img * 3 + 1, -reg, has)[0])
    with pytest.raises(ValueError):
        RiskNetAblation(SMALL, mode="bogus")  # type: ignore[arg-type]


def test_the_ablation_with_every_part_is_risknet() -> None:
    """An ablation only changes what its mode says: with the same weights and a mode that does
    not apply to these inputs, it equals RiskNet."""
    torch.manual_seed(3)
    full = RiskNet(SMALL).eval()
    abl = RiskNetAblation(SMALL, mode="sensors_only").eval()
    abl.load_state_dict(full.state_dict())
    x, img, reg, _ = _inputs(SMALL)
    none = torch.zeros(4)
    with torch.no_grad():
        torch.testing.assert_close(full(x, img, reg, none)[0], abl(x, img, reg, torch.ones(4))[0])


@pytest.mark.parametrize("cls", [CNNLSTM, BiLSTMNet])
def test_recurrent_baselines_use_the_image_only_when_present(cls) -> None:
    torch.manual_seed(4)
    m = cls(SMALL).eval()
    x, img, reg, _ = _inputs(SMALL)
    none, ones = torch.zeros(4), torch.ones(4)
    with torch.no_grad():
        torch.testing.assert_close(m.forward_logits(x, img, reg, none)[0], m.forward_logits(x, img * 2, reg, none)[0])
        assert not torch.allclose(m.forward_logits(x, img, reg, ones)[0], m.forward_logits(x, img * 2 + 1, reg, ones)[0])
        m.temperature.fill_(2.0)
        torch.testing.assert_close(m(x, img, reg, ones), torch.sigmoid(m.forward_logits(x, img, reg, ones)[0] / 2))
    m.set_image_stats(np.full(SMALL.img_dim, 1.0), np.full(SMALL.img_dim, 2.0))
    assert float(m.img_std[0]) == 2.0


def test_bilstm_summary_is_independent_of_the_batch() -> None:
    torch.manual_seed(5)
    m = BiLSTMNet(replace(SMALL, downsample=8)).eval()
    x, img, reg, has = _inputs(SMALL, 3)
    with torch.no_grad():
        full = m.forward_logits(x, img, reg, has)[0]
        one = torch.cat([m.forward_logits(x[i:i + 1], img[i:i + 1], reg[i:i + 1], has[i:i + 1])[0] for i in range(3)])
    torch.testing.assert_close(full, one, atol=1e-5, rtol=1e-5)
