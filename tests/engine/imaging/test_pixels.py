from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.pixels import (
    GrayTransform,
    Lut,
    Window,
    apply_window,
    auto_window,
    color_to_unit,
    gray_to_unit,
    is_blank,
    letterbox,
)


def test_linear_window_follows_ps33_formula():
    # PS3.3 C.11.2.1.2.1: c=2048, w=4096 -> x <= c - 0.5 - (w-1)/2 is 0, x > c - 0.5 + (w-1)/2 is 1
    w = Window(center=2048, width=4096)
    x = np.array([0.0, 0.5, 2047.5, 4095.0, 5000.0])
    y = apply_window(x, w)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[-2] == pytest.approx(1.0)
    assert y[2] == pytest.approx(0.5)
    # narrow CT bone window: 300 +- 750 HU
    y = apply_window(np.array([-1000.0, 300.0, 2000.0]), Window(300, 1500))
    assert y.tolist() == pytest.approx([0.0, 0.5 + 0.5 / 1499, 1.0])


def test_linear_exact_and_sigmoid():
    x = np.array([0.0, 50.0, 100.0])
    assert apply_window(x, Window(50, 100, "LINEAR_EXACT")).tolist() == pytest.approx([0.0, 0.5, 1.0])
    s = apply_window(x, Window(50, 100, "SIGMOID"))
    assert s[1] == pytest.approx(0.5) and 0 < s[0] < 0.5 < s[2] < 1
    assert s[0] == pytest.approx(1 / (1 + np.exp(2.0)))


def test_rescale_then_window_then_invert_for_monochrome1():
    stored = np.array([[0, 1024], [2048, 4095]], dtype=np.uint16)
    t = GrayTransform(slope=1.0, intercept=-1024.0, window=Window(0, 2048, "LINEAR_EXACT"))
    y = gray_to_unit(stored, t)
    assert y.dtype == np.float32 and np.allclose(y, [[0.0, 0.5], [1.0, 1.0]])
    inv = gray_to_unit(stored, GrayTransform(slope=1.0, intercept=-1024.0, window=Window(0, 2048, "LINEAR_EXACT"), invert=True))
    assert np.allclose(inv, [[1.0, 0.5], [0.0, 0.0]])


def test_luts_map_values_and_voi_lut_uses_the_table_range():
    mod = Lut(first_mapped=-2, table=np.array([10.0, 20.0, 30.0, 40.0]))
    assert mod.apply(np.array([-5, -2, 0, 1, 9])).tolist() == [10, 10, 30, 40, 40]
    voi = Lut(first_mapped=0, table=np.linspace(100, 200, 256))
    y = gray_to_unit(np.array([[0, 255], [128, 300]]), GrayTransform(voi_lut=voi))
    assert y[0, 0] == 0.0 and y[0, 1] == 1.0 and y[1, 1] == 1.0 and 0.45 < y[1, 0] < 0.55


def test_auto_window_ignores_outliers():
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 10.0, 10_000)
    x[:3] = 1e6  # a few hot pixels must not squash the image
    y = auto_window(x)
    assert 0.4 < np.median(y) < 0.6
    assert is_blank(auto_window(np.full((4, 4), 7.0)))


def test_color_to_unit_divides_by_nominal_maximum():
    rgb = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert np.allclose(color_to_unit(rgb, 255), [[[0.0, 128 / 255, 1.0]]])
    rgb16 = np.array([[[0, 65535, 32768]]], dtype=np.uint16)
    assert color_to_unit(rgb16, 65535)[0, 0, 1] == 1.0


def test_letterbox_keeps_aspect_ratio_and_pads_black():
    tall = np.ones((300, 100), dtype=np.float32)
    out = letterbox(tall, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    cols = np.where(out[:, :, 0].max(axis=0) > 0.5)[0]
    assert 70 <= len(cols) <= 76  # 100 * 224/300 = 74.7 columns of image, centred
    assert out[:, : cols[0]].max() == 0.0 and out[:, cols[-1] + 1:].max() == 0.0
    assert np.array_equal(out[..., 0], out[..., 2])  # grey replicated to 3 channels
    rgb = np.zeros((50, 50, 3), dtype=np.float32)
    rgb[..., 1] = 1.0
    o = letterbox(rgb, 32)
    assert o[..., 1].min() == pytest.approx(1.0) and o[..., 0].max() == 0.0
