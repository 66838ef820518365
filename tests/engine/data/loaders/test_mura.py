"""MURA loader on a tiny tree in the distributed layout."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.mura import MuraDataset

STUDIES = [
    ("train", "XR_ELBOW", 1, 1, "positive", 2),
    ("train", "XR_ELBOW", 2, 1, "negative", 1, "RGB"),
    ("train", "XR_WRIST", 2, 2, "positive", 1, "I;16"),
    ("train", "XR_HAND", 3, 1, "negative", 3),
    ("train", "XR_SHOULDER", 4, 1, "negative", 1),
    ("valid", "XR_ELBOW", 9, 1, "positive", 1),
]


def test_items_labels_groups_and_pixels(mura_tree):
    root = mura_tree(STUDIES)
    ds = MuraDataset(root, split="train")
    assert len(ds) == 8
    assert ds.labels.tolist() == [1, 1, 0, 1, 0, 0, 0, 0]  # the CSV's order
    assert ds.groups.tolist()[:4] == ["patient00001", "patient00001", "patient00002", "patient00002"]
    image, label, meta = ds[0]
    assert image.dtype == np.float32 and image.shape == (12, 16)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label == 1
    assert meta["body_part"] == "ELBOW" and meta["patient"] == "patient00001" and meta["study"] == "study1"
    assert meta["study_key"] == "train/XR_ELBOW/patient00001/study1_positive"
    assert meta["key"] == "train/XR_ELBOW/patient00001/study1_positive/image1.png"
    from PIL import Image

    raw = np.asarray(Image.open(meta_path := ds.items[0].paths[0]))
    np.testing.assert_allclose(image, raw / 255.0, atol=1e-7)
    rgb = ds[2].image  # colour PNG -> luma
    assert rgb.ndim == 2
    wide = ds[3]  # 16-bit PNG -> / 65535
    raw16 = np.asarray(Image.open(ds.items[3].paths[0]), dtype=np.float64)
    np.testing.assert_allclose(wide.image, raw16 / 65535.0, atol=1e-6)
    assert meta_path.name == "image1.png"
    assert len(MuraDataset(root, split="valid")) == 1


def test_parent_folder_and_walk_without_csv_give_the_same_items(mura_tree):
    root = mura_tree(STUDIES, csv=False)
    walked = MuraDataset(root.parent, split="train")
    assert walked.root == root
    assert sorted(it.key for it in walked.items) == sorted(
        f"train/{b}/patient{p:05d}/study{s}_{r}/image{k}.png" for sp, b, p, s, r, n, *_ in STUDIES if sp == "train"
        for k in range(1, n + 1))


def test_body_part_filter_and_patient_split(mura_tree):
    ds = MuraDataset(mura_tree(STUDIES), body_parts=["elbow", "XR_WRIST"])
    assert {it.meta["body_part"] for it in ds.items} == {"ELBOW", "WRIST"}
    with pytest.raises(DatasetError, match="unknown body part"):
        MuraDataset(ds.root, body_parts=["KNEE"])
    full = MuraDataset(ds.root)
    a, b = full.split([0.5, 0.5], seed=3)
    assert len(a) + len(b) == len(full)
    assert not set(a.groups.tolist()) & set(b.groups.tolist())


def test_label_csv_contradicting_the_folder_names_the_line(mura_tree):
    root = mura_tree(STUDIES)
    csv = root / "train_labeled_studies.csv"
    csv.write_text(csv.read_text().replace("study1_positive/,1", "study1_positive/,0", 1))
    with pytest.raises(DatasetError, match=r"train_labeled_studies.csv: line 1: label 0 contradicts"):
        MuraDataset(root)


def test_missing_and_misplaced_images(mura_tree):
    root = mura_tree(STUDIES)
    (root / "train/XR_HAND/patient00003/study1_negative/image2.png").unlink()
    with pytest.raises(DatasetError, match="1 listed image\\(s\\) missing, e.g. .*image2.png"):
        MuraDataset(root)
    csv = root / "train_image_paths.csv"
    csv.write_text("MURA-v1.1/train/XR_HAND/imageX.png\n")
    with pytest.raises(DatasetError, match="train_image_paths.csv: line 1: train/XR_HAND/imageX.png is not"):
        MuraDataset(root)
    with pytest.raises(DatasetError, match="split 'test'"):
        MuraDataset(root, split="test")


def test_corrupt_png_names_the_file(mura_tree):
    root = mura_tree(STUDIES)
    ds = MuraDataset(root)
    bad = ds.items[4].paths[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(CorruptSampleError) as info:
        ds[4]
    assert str(info.value).startswith(f"{bad}: cannot be decoded")
    ds[5]  # the others still load
