"""Shared loader logic: group splits, image checks, central slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.exceptions import CorruptSampleError
from engine.data.loaders.base import ImageDataset, Item, as_slices, central_indices, check_image, split_by_group


def test_split_by_group_keeps_groups_whole_and_sizes_close():
    rng = np.random.default_rng(1)
    groups = np.array([f"p{g}" for g in rng.integers(0, 60, 600)], dtype=object)
    parts = split_by_group(groups, [0.7, 0.15, 0.15], seed=5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(600))
    sets = [set(groups[p].tolist()) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    sizes = [len(p) / 600 for p in parts]
    assert sizes == pytest.approx([0.7, 0.15, 0.15], abs=0.06)
    again = split_by_group(groups, [0.7, 0.15, 0.15], seed=5)
    assert all((a == b).all() for a, b in zip(parts, again))
    with pytest.raises(ValueError):
        split_by_group(groups, [0.0, 0.0])


def test_central_indices_match_the_imaging_slice_policy():
    from engine.imaging.slices import central_indices as imaging_central

    for n in range(1, 12):
        for k in range(1, 5):
            assert central_indices(n, k) == imaging_central(n, k)
    assert central_indices(5, 0) == [0, 1, 2, 3, 4]


def test_check_image_refuses_what_the_encoder_cannot_take(tmp_path):
    p = tmp_path / "x.png"
    assert check_image(np.ones((4, 4), dtype=np.float64), p).dtype == np.float32
    for bad, msg in [(np.full((4, 4), 1.5), "outside \\[0, 1\\]"), (np.full((4, 4), np.nan), "NaN"),
                     (np.ones((2, 2, 2, 2)), "shape"), (np.ones((0, 4)), "shape")]:
        with pytest.raises(CorruptSampleError, match=f"^{p}: .*{msg}"):
            check_image(bad, p)
    assert as_slices(np.zeros((3, 4))).shape == (1, 3, 4)
    assert as_slices(np.zeros((2, 3, 4))).shape == (2, 3, 4)


class _Boom(ImageDataset):
    kind = "boom"

    def _load(self, item):
        raise ValueError("bad bytes")


def test_decoder_failures_become_errors_naming_the_file():
    ds = _Boom("/data", [Item("a", 1, "g", (Path("/data/a.bin"),))])
    with pytest.raises(CorruptSampleError, match="^/data/a.bin: cannot be decoded \\(ValueError: bad bytes\\)"):
        ds[0]
    assert ds.describe() == {"kind": "boom", "root": "/data", "samples": 1, "positives": 1, "groups": 1}
