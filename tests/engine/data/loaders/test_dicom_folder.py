"""DICOM-folder loader on a tiny Radiopaedia-style export written with pydicom."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.exceptions import DatasetError
from engine.data.loaders.dicom_folder import DicomFolderDataset
from engine.exceptions import EngineError

WINDOW = 4095.0  # WC 2048 / WW 4096, LINEAR: y = (x - 2047.5) / 4095 + 0.5


def unit(v: float) -> float:
    return min(max((v - 2047.5) / WINDOW + 0.5, 0.0), 1.0)


def test_units_labels_and_slice_policy(dicom_cases):
    root = dicom_cases()
    ds = DicomFolderDataset(root)
    by_unit = {it.meta["unit"]: i for i, it in enumerate(ds.items)}
    assert len(ds) == 3 and set(by_unit) == {"image", "volume", "multiframe"}
    assert [p.name for p, _ in ds.skipped] == ["report.dcm"]  # the SR holds no picture
    assert ds.groups.tolist() == ["p1", "p1", "p2"]

    image, label, meta = ds[by_unit["image"]]
    assert image.shape == (32, 32) and label == 1 and meta["modality"] == "CR" and meta["study"] == "case-1/study-a"
    assert image[0, 0] == pytest.approx(unit(3000), abs=1e-6)

    vol, label, meta = ds[by_unit["volume"]]
    assert vol.shape == (3, 32, 32) and label == 0 and meta["n_slices"] == 5
    # ordered along z (not by name, not by the reversed Instance Number): z index 1, 2, 3
    np.testing.assert_allclose(vol[:, 0, 0], [unit(200), unit(300), unit(400)], atol=1e-6)

    frames, label, meta = ds[by_unit["multiframe"]]
    assert frames.shape == (3, 32, 32) and meta["frames"] == [0, 1, 2]
    np.testing.assert_allclose(frames[:, 0, 0], [unit(500), unit(600), unit(700)], atol=1e-6)

    every = DicomFolderDataset(root, slices=0)
    assert every[[it.meta["unit"] for it in every.items].index("volume")].image.shape == (5, 32, 32)


def test_label_file_errors(dicom_cases, tmp_path):
    root = dicom_cases()
    labels = root / "labels.csv"
    labels.write_text("study,label\ncase-3,1\n")
    with pytest.raises(DatasetError, match="labels.csv: line 2: study folder .*case-3 does not exist"):
        DicomFolderDataset(root)
    labels.write_text("folder,label\ncase-2,1\n")
    with pytest.raises(DatasetError, match="header must name 'study' and 'label'"):
        DicomFolderDataset(root)
    labels.write_text("study,label\ncase-2,maybe\n")
    with pytest.raises(DatasetError, match="line 2: label 'maybe' is not 0 or 1"):
        DicomFolderDataset(root)
    (root / "case-9").mkdir()
    (root / "case-9" / "notes.txt").write_text("x")
    labels.write_text("study,label\ncase-9,1\n")
    with pytest.raises(DatasetError, match="case-9: no DICOM image in study 'case-9'"):
        DicomFolderDataset(root)
    with pytest.raises(DatasetError, match="no such label file"):
        DicomFolderDataset(root, labels=tmp_path / "none.csv")


def test_corrupt_dicom_names_the_file(dicom_cases):
    root = dicom_cases()
    bad = root / "case-2" / "00000042"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x1a\x00" + b"1.2" * 2)
    with pytest.raises(EngineError) as info:
        DicomFolderDataset(root)
    assert str(bad) in str(info.value)
