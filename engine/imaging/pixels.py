"""Pixel values -> display-ready images -> encoder input. Pure numpy (and Pillow for resize).

The grayscale chain follows DICOM PS3.3 C.11 (and PS3.4 N.2):

1. stored values -> modality values: Modality LUT Sequence if present, else
   Rescale Slope / Intercept (CT Hounsfield units, ...);
2. modality values -> [0, 1] display values: VOI LUT Sequence if present, else the first
   Window Center / Width (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID), else a robust
   min-max (0.5th to 99.5th percentile) when the file carries no VOI at all;
3. MONOCHROME1 is inverted (``1 - y``) so that bone is bright for every input.

Colour images (RGB, YBR already converted to RGB by the decoder, PALETTE COLOR after its
lookup table) are scaled by their nominal maximum (``2**bits - 1``).

:func:`letterbox` pads the display image to a square (black borders, aspect ratio kept)
and resizes it to the encoder's input size with an anti-aliased bilinear filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


@dataclass(frozen=True)
class Lut:
    """A lookup table: input value ``first_mapped + i`` maps to ``table[i]``."""

    first_mapped: int
    table: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.rint(x).astype(np.int64) - self.first_mapped, 0, len(self.table) - 1)
        return self.table[idx]


@dataclass(frozen=True)
class Window:
    """Window Center / Width with its VOI LUT Function (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class GrayTransform:
    """Everything needed to turn one grayscale frame into [0, 1] display values."""

    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: Lut | None = None
    window: Window | None = None
    voi_lut: Lut | None = None
    invert: bool = False


def apply_window(x: np.ndarray, w: Window) -> np.ndarray:
    """Window to [0, 1] with the formulas of PS3.3 C.11.2.1.2.1 (LINEAR) and C.11.2.1.3."""
    fn = (w.function or "LINEAR").upper()
    if fn == "SIGMOID":
        width = max(w.width, 1e-6)
        return 1.0 / (1.0 + np.exp(-4.0 * (x - w.center) / width))
    if fn == "LINEAR_EXACT":
        width = max(w.width, 1e-6)
        return np.clip((x - w.center) / width + 0.5, 0.0, 1.0)
    # LINEAR: c - 0.5 and w - 1, width >= 1 by definition
    width = max(w.width - 1.0, 1e-6)
    return np.clip((x - (w.center - 0.5)) / width + 0.5, 0.0, 1.0)


def auto_window(x: np.ndarray) -> np.ndarray:
    """Robust min-max to [0, 1] for images that carry no VOI (percentiles, not extremes)."""
    lo, hi = np.percentile(x, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def gray_to_unit(frame: np.ndarray, t: GrayTransform) -> np.ndarray:
    """One grayscale frame (stored values) -> float32 (H, W) in [0, 1], bone bright."""
    x = frame.astype(np.float64, copy=False)
    if t.modality_lut is not None:
        x = t.modality_lut.apply(x).astype(np.float64)
    elif t.slope != 1.0 or t.intercept != 0.0:
        x = x * t.slope + t.intercept
    if t.voi_lut is not None:
        y = t.voi_lut.apply(x).astype(np.float64)
        lo, hi = float(t.voi_lut.table.min()), float(t.voi_lut.table.max())
        y = np.clip((y - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(y)
    elif t.window is not None:
        y = apply_window(x, t.window)
    else:
        y = auto_window(x)
    if t.invert:
        y = 1.0 - y
    return np.ascontiguousarray(y, dtype=np.float32)


def color_to_unit(frame: np.ndarray, max_value: float) -> np.ndarray:
    """An (H, W, 3) colour frame -> float32 in [0, 1] (divided by its nominal maximum)."""
    y = frame.astype(np.float64, copy=False) / float(max_value)
    return np.ascontiguousarray(np.clip(y, 0.0, 1.0), dtype=np.float32)


def is_blank(img: np.ndarray) -> bool:
    """True when every pixel has the same value (nothing to embed)."""
    return bool(np.ptp(img) == 0)


def letterbox(img: np.ndarray, size: int = 224) -> np.ndarray:
    """(H, W) or (H, W, 3) in [0, 1] -> (size, size, 3) float32: padded square, resized."""
    from PIL import Image

    if img.ndim == 2:
        img = img[:, :, None]
    h, w, c = img.shape
    side = max(h, w)
    scale = size / side
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    channels = []
    for ch in range(c):
        plane = Image.fromarray(np.ascontiguousarray(img[:, :, ch], dtype=np.float32))
        channels.append(np.asarray(plane.resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.float32))
    resized = np.stack(channels, axis=-1)
    if c == 1:
        resized = np.repeat(resized, 3, axis=-1)
    out[top:top + nh, left:left + nw, :] = np.clip(resized, 0.0, 1.0)
    return out
