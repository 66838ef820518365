"""MRNet loader on a tiny tree in the distributed layout."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.mrnet import MRNetDataset

CASES = {0: 7, 1: 4, 2: 1}
LABELS = {"abnormal": {0: 1, 1: 0, 2: 1}, "acl": {0: 0, 1: 0, 2: 1}, "meniscus": {0: 1, 1: 1, 2: 0}}


def test_task_plane_and_central_slices(mrnet_tree):
    root = mrnet_tree(CASES, LABELS)
    ds = MRNetDataset(root, task="acl", plane="coronal")
    assert ds.labels.tolist() == [0, 0, 1]
    assert ds.groups.tolist() == ["0000", "0001", "0002"]
    image, label, meta = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert meta["slice_indices"] == [2, 3, 4] and meta["n_slices"] == 7
    np.testing.assert_allclose(image[:, 0, 0], np.array([20, 30, 40]) / 255.0, rtol=1e-6)
    assert meta["plane"] == "coronal" and meta["task"] == "acl" and meta["case"] == "0000"
    assert ds[1].meta["slice_indices"] == [0, 1, 2]  # 4 slices: ties go to the lower index
    assert ds[2].image.shape == (1, 32, 32)
    everything = MRNetDataset(root.parent, task="meniscus", slices=0)
    assert everything[0].image.shape == (7, 32, 32)
    assert everything.labels.tolist() == [1, 1, 0]


def test_layout_errors_name_the_file(mrnet_tree):
    root = mrnet_tree(CASES, LABELS)
    with pytest.raises(DatasetError, match="task 'tear'"):
        MRNetDataset(root, task="tear")
    with pytest.raises(DatasetError, match="valid-abnormal.csv: no such file"):
        MRNetDataset(root, split="valid")
    (root / "train-acl.csv").write_text("0000,0\n0001,2\n")
    with pytest.raises(DatasetError, match="train-acl.csv: line 2: label '2' is not 0 or 1"):
        MRNetDataset(root, task="acl")
    (root / "train-acl.csv").write_text("0000,0\n0000,1\n")
    with pytest.raises(DatasetError, match="line 2: case 0000 is listed again"):
        MRNetDataset(root, task="acl")
    (root / "train-acl.csv").write_text("0000,0\n0005,1\n")
    with pytest.raises(DatasetError, match="1 case\\(s\\) of train-acl.csv have no volume, e.g. 0005.npy"):
        MRNetDataset(root, task="acl")


def test_corrupt_volumes_name_the_file(mrnet_tree):
    root = mrnet_tree(CASES, LABELS)
    ds = MRNetDataset(root)
    path0, path1 = ds.items[0].paths[0], ds.items[1].paths[0]
    path0.write_bytes(path0.read_bytes()[:200])  # truncated
    with pytest.raises(CorruptSampleError, match=f"^{path0}: cannot be decoded"):
        ds[0]
    np.save(path1, np.zeros((4, 8, 8), dtype=np.float32))
    with pytest.raises(CorruptSampleError, match=f"^{path1}: array is float32, MRNet volumes are uint8"):
        ds[1]
