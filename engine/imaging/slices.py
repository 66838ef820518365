"""Slice policy: which frames of a study are embedded, and how they are pooled. Pure logic.

* A single-frame projection image (CR, DX, MG, RF, XA, a US still, a secondary capture)
  is one image.
* A multi-frame file (enhanced CT/MR, US cine, NM) contributes its ``k`` central frames.
* Single-frame files of a cross-sectional modality (CT, MR, PT, NM) that share a series
  form a volume: the slices are ordered along the slice normal (Image Position Patient
  projected on the normal of Image Orientation Patient), or by Instance Number, or by
  file name, and the ``k`` central slices are embedded.
* The embedding of a unit (an image, a multi-frame file or a volume) is the mean of its
  images' embeddings; the study embedding is the mean over its units, each unit weighing
  the same. Pooled (2048) and region (49 x 64) features are averaged alike.

``k`` is :data:`CENTRAL_SLICES` (3) unless the caller says otherwise. When a chosen slice
cannot be decoded, the next slice outward from the centre replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CENTRAL_SLICES = 3
VOLUME_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})


def policy_name(k: int) -> str:
    """The slice policy as recorded in the stored metadata, e.g. ``central3-mean``."""
    return f"central{k}-mean"


def center_out(n: int) -> list[int]:
    """Indices 0..n-1 ordered by distance from the centre (the centre first)."""
    if n <= 0:
        return []
    mid = (n - 1) / 2.0
    return sorted(range(n), key=lambda i: (abs(i - mid), i))


def central_indices(n: int, k: int = CENTRAL_SLICES) -> list[int]:
    """The ``k`` central indices of ``n`` (all when ``n <= k``), ascending."""
    return sorted(center_out(n)[: max(1, k)])


def slice_order(
    positions: Sequence[float | None],
    instance_numbers: Sequence[int | None],
    names: Sequence[str],
) -> list[int]:
    """Order the files of a volume: by position if all have one, else Instance Number, else name."""
    idx = list(range(len(names)))
    if positions and all(p is not None for p in positions):
        return sorted(idx, key=lambda i: (positions[i], names[i]))
    if instance_numbers and all(n is not None for n in instance_numbers):
        return sorted(idx, key=lambda i: (instance_numbers[i], names[i]))
    return sorted(idx, key=lambda i: names[i])


def slice_position(position: Sequence[float] | None, orientation: Sequence[float] | None) -> float | None:
    """Position of a slice along its normal: IPP . (row x col) of IOP; None if either is missing."""
    if position is None or orientation is None or len(position) != 3 or len(orientation) != 6:
        return None
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    normal = np.cross(row, col)
    if not np.isfinite(normal).all() or np.linalg.norm(normal) == 0:
        return None
    return float(np.dot(np.asarray(position, dtype=np.float64), normal))


def mean_features(pooled: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of several embeddings: ((2048,), (49, 64)) float32."""
    if not pooled or len(pooled) != len(regions):
        raise ValueError("mean_features needs the same, non-zero number of pooled and region arrays")
    p = np.mean(np.stack(pooled).astype(np.float64), axis=0).astype(np.float32)
    r = np.mean(np.stack(regions).astype(np.float64), axis=0).astype(np.float32)
    return p, r
