"""``open_dataset(spec)``: the ``--data KIND:PATH?options`` strings of ``injury-monitor train``."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.exceptions import DatasetSpecError
from engine.data.loaders import (
    DicomFolderDataset,
    FastMRIDataset,
    MRNetDataset,
    MuraDataset,
    open_dataset,
    parse_dataset_spec,
)


def test_parse():
    kind, path, opts = parse_dataset_spec("mrnet:/d/MRNet-v1.0?task=acl&plane=axial&slices=5&split=valid")
    assert (kind, path, opts) == ("mrnet", Path("/d/MRNet-v1.0"), {"task": "acl", "plane": "axial", "slices": 5,
                                                                    "split": "valid"})
    assert parse_dataset_spec("MURA:rel/MURA-v1.1?body_parts=XR_ELBOW, XR_HAND")[2] == {
        "body_parts": ("XR_ELBOW", "XR_HAND")}
    assert parse_dataset_spec("fastmri:/x?labels=~/l.csv")[2]["labels"] == Path("~/l.csv").expanduser()
    assert parse_dataset_spec("dicom:/x")[2] == {}


@pytest.mark.parametrize("spec, msg", [
    ("/data/MURA-v1.1", "expected KIND:PATH"),
    ("imagenet:/data", "KIND one of mura, mrnet, fastmri, dicom"),
    ("mura:", "no path"),
    ("mura:/d?task=acl", "'task=acl' is not an option of mura \\(options: split=..., body_parts=...\\)"),
    ("mrnet:/d?slices=three", "slices='three' is not valid"),
    ("mrnet:/d?slices", "'slices' is not an option"),
])
def test_bad_specs(spec, msg):
    with pytest.raises(DatasetSpecError, match=msg):
        parse_dataset_spec(spec)


def test_every_kind_opens_from_a_spec(mura_tree, mrnet_tree, fastmri_folder, dicom_cases, tmp_path):
    mura = mura_tree([("train", "XR_ELBOW", 1, 1, "positive", 1), ("valid", "XR_HAND", 2, 1, "negative", 1)])
    assert isinstance(ds := open_dataset(f"mura:{mura}?split=valid"), MuraDataset) and len(ds) == 1
    mrnet = mrnet_tree({0: 3}, {"acl": {0: 1}})
    assert isinstance(ds := open_dataset(f"mrnet:{mrnet}?task=acl&slices=1"), MRNetDataset)
    assert ds[0].image.shape == (1, 32, 32)
    folder = fastmri_folder({"f.h5": 2})
    (tmp_path / "fl.csv").write_text("file,label\nf,1\n")
    assert isinstance(open_dataset(f"fastmri:{folder}?labels={tmp_path / 'fl.csv'}"), FastMRIDataset)
    assert isinstance(ds := open_dataset(f"dicom:{dicom_cases()}?slices=1"), DicomFolderDataset)
    assert len(ds) == 3
