"""fastMRI loader on tiny HDF5 files in the distributed layout, labels from a user CSV."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.fastmri import FastMRIDataset


def test_volume_labels_central_slices_and_scale(fastmri_folder, tmp_path):
    folder = fastmri_folder({"file1000001.h5": 5, "file1000002.h5": 2}, patient={"file1000001.h5": "pat-9"})
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nfile1000001,1\nfile1000002.h5,0\n")
    ds = FastMRIDataset(folder, labels=labels)
    assert ds.labels.tolist() == [1, 0]
    assert ds.groups.tolist() == ["pat-9", "file1000002"]
    image, label, meta = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert meta["slice_indices"] == [1, 2, 3] and meta["acquisition"] == "CORPD_FBK"
    # slice s is (s + 1) * ramp, the volume maximum is 5: one scale for the whole volume
    np.testing.assert_allclose(image[:, -1, -1], [2 / 5, 3 / 5, 4 / 5], rtol=1e-6)
    assert ds[1].image.shape == (2, 32, 32)


def test_slice_labels(fastmri_folder, tmp_path):
    folder = fastmri_folder({"file1.h5": 4})
    labels = tmp_path / "slices.csv"
    labels.write_text("file,slice,label\nfile1.h5,0,0\nfile1.h5,3,1\n")
    ds = FastMRIDataset(folder, labels=labels, slices=1)
    assert len(ds) == 2 and ds.groups.tolist() == ["file1", "file1"]
    img = ds[1].image
    assert img.shape == (32, 32) and img.max() == pytest.approx(1.0)
    assert ds[0].image.max() == pytest.approx(0.25)
    labels.write_text("file,slice,label\nfile1.h5,4,1\n")
    with pytest.raises(DatasetError, match="line 2: slice 4 out of range, file1.h5 has 4 slices"):
        FastMRIDataset(folder, labels=labels)
    labels.write_text("file,slice,label\nfile1.h5,1,1\nfile1.h5,1,0\n")
    with pytest.raises(DatasetError, match="line 3: file1.h5 slice 1 is listed again"):
        FastMRIDataset(folder, labels=labels)


def test_labels_are_required_and_checked(fastmri_folder, tmp_path):
    folder = fastmri_folder({"file1.h5": 3})
    with pytest.raises(DatasetError, match="fastMRI has no labels"):
        FastMRIDataset(folder)
    labels = tmp_path / "l.csv"
    labels.write_text("name,y\nfile1,1\n")
    with pytest.raises(DatasetError, match="header must name 'file' and 'label'"):
        FastMRIDataset(folder, labels=labels)
    labels.write_text("file,label\nfile9,1\n")
    with pytest.raises(DatasetError, match="line 2: .*file9.h5 does not exist"):
        FastMRIDataset(folder, labels=labels)


def test_corrupt_or_unusable_files_name_the_file(fastmri_folder, tmp_path):
    import h5py

    folder = fastmri_folder({"file1.h5": 3})
    (folder / "garbage.h5").write_bytes(b"not hdf5 at all" * 20)
    with h5py.File(folder / "test_file.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((2, 8, 8), dtype=np.complex64))
    labels = tmp_path / "l.csv"
    labels.write_text("file,label\ngarbage.h5,1\n")
    with pytest.raises(CorruptSampleError, match=f"^{folder / 'garbage.h5'}: not a readable HDF5 file"):
        FastMRIDataset(folder, labels=labels)
    labels.write_text("file,label\ntest_file.h5,1\n")
    with pytest.raises(CorruptSampleError, match="test_file.h5: no dataset 'reconstruction_rss' \\(has kspace\\)"):
        FastMRIDataset(folder, labels=labels)
    labels.write_text("file,label\nfile1.h5,1\n")
    ds = FastMRIDataset(folder, labels=labels)
    path = folder / "file1.h5"
    with h5py.File(path, "r+") as f:
        f["reconstruction_rss"][1, 0, 0] = np.nan
    with pytest.raises(CorruptSampleError, match=f"^{path}: reconstruction_rss holds NaN"):
        ds[0]
