from __future__ import annotations

import pytest
import torch

from engine.model import IMAGE_CLIP, ModelConfig, RiskNet, count_parameters, example_inputs

SMALL = ModelConfig(conv_dim=16, hidden=16, attn_dim=16)


@pytest.fixture(scope="module")
def model() -> RiskNet:
    torch.manual_seed(0)
    return RiskNet(SMALL).eval()


def test_output_shapes_and_ranges(model: RiskNet) -> None:
    x, img, reg, has = example_inputs(5, SMALL)
    with torch.no_grad():
        prob, t_attn, r_attn = model(x, img, reg, has)
    assert prob.shape == (5,) and t_attn.shape == (5, SMALL.time_steps) and r_attn.shape == (5, 49)
    assert ((prob > 0) & (prob < 1)).all()
    torch.testing.assert_close(t_attn.sum(-1), torch.ones(5))


@pytest.mark.parametrize("downsample,steps", [(1, 200), (2, 100), (4, 50), (8, 25)])
def test_time_steps_follow_the_downsampling(downsample: int, steps: int) -> None:
    cfg = ModelConfig(conv_dim=8, hidden=8, attn_dim=8, downsample=downsample)
    assert cfg.time_steps == steps
    with torch.no_grad():
        _, t_attn, _ = RiskNet(cfg).eval()(*example_inputs(2, cfg))
    assert t_attn.shape == (2, steps)


def test_region_attention_is_zero_without_image_and_sums_to_one_with(model: RiskNet) -> None:
    x, img, reg, _ = example_inputs(4, SMALL)
    has = torch.tensor([1.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        _, _, r_attn = model(x, img, reg, has)
    assert torch.all(r_attn[1] == 0) and torch.all(r_attn[3] == 0)
    torch.testing.assert_close(r_attn[[0, 2]].sum(-1), torch.ones(2))


def test_image_features_are_ignored_without_has_img_and_used_with(model: RiskNet) -> None:
    x, img, reg, _ = example_inputs(3, SMALL)
    none = torch.zeros(3)
    with torch.no_grad():
        p_a, t_a, _ = model(x, img, reg, none)
        p_b, t_b, _ = model(x, img * 5 + 1, reg * -2, none)
        p_c, t_c, _ = model(x, img, reg, torch.ones(3))
    torch.testing.assert_close(p_a, p_b)
    torch.testing.assert_close(t_a, t_b)
    assert not torch.allclose(p_a, p_c)
    assert not torch.allclose(t_a, t_c)  # the image forms the time-attention query


def test_temperature_scales_the_logit(model: RiskNet) -> None:
    inputs = example_inputs(4, SMALL)
    with torch.no_grad():
        logit, _, _ = model.forward_logits(*inputs)
        model.temperature.fill_(2.0)
        prob, _, _ = model(*inputs)
        model.temperature.fill_(1.0)
    torch.testing.assert_close(prob, torch.sigmoid(logit / 2.0))


def test_batch_items_are_independent(model: RiskNet) -> None:
    x, img, reg, has = example_inputs(6, SMALL)
    with torch.no_grad():
        full = model(x, img, reg, has)[0]
        single = torch.cat([model(x[i:i + 1], img[i:i + 1], reg[i:i + 1], has[i:i + 1])[0] for i in range(6)])
    torch.testing.assert_close(full, single, atol=1e-5, rtol=1e-5)


def test_config_round_trip_and_validation() -> None:
    cfg = ModelConfig(hidden=24)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="downsample"):
        ModelConfig(downsample=3)
    assert count_parameters(RiskNet(SMALL)) > 0


def test_gradients_reach_every_branch() -> None:
    torch.manual_seed(1)
    m = RiskNet(SMALL)
    x, img, reg, _ = example_inputs(4, SMALL)
    logit, _, _ = m.forward_logits(x, img, reg, torch.ones(4))
    logit.sum().backward()
    for name in ("frontend.0.weight", "gru.weight_hh_l1", "img_proj.1.weight", "k_region.weight", "q_learned"):
        p = dict(m.named_parameters())[name]
        assert p.grad is not None, name
    assert dict(m.named_parameters())["k_region.weight"].grad.abs().sum() > 0


def test_image_statistics_standardise_and_clip() -> None:
    torch.manual_seed(2)
    m = RiskNet(SMALL).eval()
    img = torch.full((1, SMALL.img_dim), 10.0)
    reg = torch.full((1, 49, SMALL.region_dim), -3.0)
    m.set_image_stats(torch.full((SMALL.img_dim,), 9.0), torch.full((SMALL.img_dim,), 0.5),
                      torch.full((SMALL.region_dim,), -3.0), torch.ones(SMALL.region_dim))
    zi, zr = m.standardise_image(img, reg)
    torch.testing.assert_close(zi, torch.full_like(zi, 2.0))
    torch.testing.assert_close(zr, torch.zeros_like(zr))
    m.set_image_stats(torch.zeros(SMALL.img_dim), torch.full((SMALL.img_dim,), 1e-3), torch.zeros(SMALL.region_dim),
                      torch.ones(SMALL.region_dim))
    zi, _ = m.standardise_image(img, reg)
    assert float(zi.max()) == IMAGE_CLIP
    with pytest.raises(ValueError, match="positive"):
        m.set_image_stats(torch.zeros(SMALL.img_dim), torch.zeros(SMALL.img_dim), torch.zeros(SMALL.region_dim),
                          torch.ones(SMALL.region_dim))


def test_image_statistics_travel_in_the_state_dict() -> None:
    a = RiskNet(SMALL)
    a.set_image_stats(torch.arange(SMALL.img_dim, dtype=torch.float32), torch.full((SMALL.img_dim,), 2.0),
                      torch.ones(SMALL.region_dim), torch.full((SMALL.region_dim,), 3.0))
    b = RiskNet(SMALL)
    b.load_state_dict(a.state_dict(), strict=True)
    torch.testing.assert_close(b.img_mean, a.img_mean)
    torch.testing.assert_close(b.region_std, a.region_std)
    x, img, reg, has = example_inputs(3, SMALL, image_fraction=1.0)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x, img, reg, has)[0], b(x, img, reg, has)[0])


def test_a_common_image_offset_is_removed_by_the_statistics() -> None:
    """Embeddings sharing a huge common component (random-init ResNet50) differ only after
    standardisation: shifting every image by the same offset changes nothing once the
    statistics include it."""
    torch.manual_seed(3)
    m = RiskNet(SMALL).eval()
    x, img, reg, has = example_inputs(4, SMALL, image_fraction=1.0)
    m.set_image_stats(img.mean(0), img.std(0), reg.mean((0, 1)), reg.std((0, 1)))
    with torch.no_grad():
        p0 = m(x, img, reg, has)[0]
    m.set_image_stats(img.mean(0) + 100.0, img.std(0), reg.mean((0, 1)), reg.std((0, 1)))
    with torch.no_grad():
        p1 = m(x, img + 100.0, reg, has)[0]
    torch.testing.assert_close(p0, p1, atol=1e-5, rtol=1e-4)
