from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

from engine.imaging.deid import uid_hash
from engine.imaging.exceptions import (
    ImagingError,
    NoPixelDataError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
)
from engine.imaging.reader import decode_frame, open_dicom


def _decode(path: Path, index: int = 0) -> np.ndarray:
    return decode_frame(open_dicom(path), index)


# ---------------------------------------------------------------- refusals name the file


@pytest.mark.parametrize("fraction", [0.02, 0.05, 0.3, 0.6, 0.95])
@pytest.mark.parametrize("name", ["CT_small.dcm", "RG3_J2KI.dcm", "emri_small_RLE.dcm"])
def test_truncated_files_are_refused_naming_the_file(tmp_path, real_dicom, name, fraction):
    raw = real_dicom(name).read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(TruncatedFileError) as info:
        src = open_dicom(cut)
        decode_frame(src, 0)
    assert str(cut) in str(info.value) and "truncated" in str(info.value)
    assert info.value.code == "truncated"


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is a text file\n" * 40, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, bytes(4096)],
    ids=["empty", "text", "png-like", "zeros"],
)
def test_non_dicom_files_are_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "not_an_image.dcm"
    path.write_bytes(content)
    with pytest.raises(NotDicomError) as info:
        open_dicom(path)
    assert str(path) in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(NotDicomError, match="missing.dcm"):
        open_dicom(tmp_path / "missing.dcm")


@pytest.mark.parametrize(("name", "what"), [("rtplan.dcm", "RT Plan Storage"), ("test-SR.dcm", "Comprehensive SR Storage"),
                                            ("waveform_ecg.dcm", "ECG")])
def test_dicom_without_pixel_data_is_refused_with_its_sop_class(real_dicom, name, what):
    with pytest.raises(NoPixelDataError) as info:
        open_dicom(real_dicom(name))
    assert name in str(info.value) and what in str(info.value) and "no pixel data" in str(info.value)


@pytest.mark.parametrize(
    ("name", "syntax"),
    [("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
     ("JPEG-LL.dcm", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
     ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)")],
)
def test_undecodable_transfer_syntaxes_are_refused_by_name(real_dicom, name, syntax):
    with pytest.raises(UnsupportedTransferSyntaxError) as info:
        decode_frame(open_dicom(real_dicom(name)), 0)
    assert name in str(info.value) and syntax in str(info.value)
    assert info.value.transfer_syntax_uid.startswith("1.2.840.10008.1.2.4.")


@pytest.mark.parametrize(("name", "why"), [("liver.dcm", "segmentation"), ("rtdose.dcm", "dose grid"),
                                           ("SC_rgb_small_odd.dcm", "3x3")])
def test_objects_that_are_not_pictures_are_refused(real_dicom, name, why):
    with pytest.raises(UnsupportedImageError, match=why):
        open_dicom(real_dicom(name))


def test_modalities_can_be_restricted(real_dicom):
    with pytest.raises(UnsupportedImageError, match="modality US is not embedded"):
        open_dicom(real_dicom("US1_UNCR.dcm"), modalities=("CR", "DX"))


# ---------------------------------------------------------------- decoding is right


@pytest.mark.parametrize(
    ("a", "b"),
    [("RG3_UNCR.dcm", "RG3_J2KR.dcm"), ("MR_small.dcm", "MR_small_bigendian.dcm"), ("MR_small.dcm", "MR_small_RLE.dcm"),
     ("MR_small.dcm", "MR_small_jp2klossless.dcm"), ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"), ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
     ("US1_UNCR.dcm", "US1_J2KR.dcm"), ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
     ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm")],
)
def test_lossless_encodings_decode_to_the_same_image(real_dicom, a, b):
    src_a, src_b = open_dicom(real_dicom(a)), open_dicom(real_dicom(b))
    index = src_a.n_frames // 2
    assert np.array_equal(decode_frame(src_a, index), decode_frame(src_b, index))


def test_lossy_jpeg2000_is_close_to_the_original(real_dicom):
    diff = np.abs(_decode(real_dicom("MR2_UNCR.dcm")) - _decode(real_dicom("MR2_J2KI.dcm")))
    assert diff.mean() < 0.01


def test_ybr_is_converted_to_rgb(real_dicom):
    rgb = _decode(real_dicom("SC_rgb.dcm"))
    for name in ("SC_ybr_full_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        assert np.abs(_decode(real_dicom(name)) - rgb).mean() < 0.02, name


def test_monochrome1_is_inverted_after_the_window(real_dicom):
    path = real_dicom("RG3_UNCI.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    # pydicom's own windowing maps to [0, 2**BitsStored - 1] for this unsigned, unrescaled image
    expected = 1.0 - apply_voi_lut(ds.pixel_array, ds) / (2**ds.BitsStored - 1)
    ours = _decode(path)
    assert np.abs(ours - expected).max() < 2e-3
    # along row 880: tibia (col 880) brighter than soft tissue (720) brighter than air (1160)
    assert ours[880, 880] > ours[880, 720] + 0.2 > ours[880, 1160] + 0.4


def test_window_and_rescale_from_enhanced_functional_groups(real_dicom):
    path = real_dicom("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds and "RescaleIntercept" not in ds  # only in the functional groups
    hu = ds.pixel_array[1].astype(float) - 1024.0
    c, w = 49.0, 102.0
    expected = np.clip((hu - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    assert np.abs(_decode(path, 1) - expected).max() < 1e-5


def test_voi_lut_and_modality_lut_sequences(real_dicom):
    ds = pydicom.dcmread(real_dicom("vlut_04.dcm"))
    table = apply_voi_lut(np.arange(256), ds)
    lut = apply_voi_lut(ds.pixel_array, ds).astype(float)
    expected = (lut - table.min()) / (table.max() - table.min())
    assert np.abs(_decode(real_dicom("vlut_04.dcm")) - expected).max() < 1e-5
    ds = pydicom.dcmread(real_dicom("mlut_18.dcm"))
    modality = apply_modality_lut(ds.pixel_array, ds).astype(float)
    ours = _decode(real_dicom("mlut_18.dcm"))
    # no VOI in the file: monotonic in the modality values
    order = np.argsort(modality.ravel())
    assert np.all(np.diff(ours.ravel()[order]) >= -1e-6)


def test_ct_window_clips_outside_its_range(real_dicom):
    path = real_dicom("693_UNCI.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    ours = _decode(path)
    assert np.all(ours[hu <= c - 0.5 - (w - 1) / 2] == 0.0)
    assert np.all(ours[hu > c - 0.5 + (w - 1) / 2] == 1.0)


def test_palette_colour_and_dataset_without_file_meta(real_dicom):
    src = open_dicom(real_dicom("OT-PAL-8-face.dcm"))  # no 'DICM' prefix, no file meta
    assert src.transfer_syntax == "Implicit VR Little Endian"
    img = decode_frame(src, 0)
    assert img.shape == (480, 640, 3) and 0.2 < img.mean() < 0.6


def test_multi_frame_decodes_any_frame(real_dicom):
    src = open_dicom(real_dicom("color3d_jpeg_baseline.dcm"))
    assert src.n_frames == 120
    assert decode_frame(src, 60).shape == (480, 640, 3)
    with pytest.raises(ValueError):
        decode_frame(src, 120)


def test_source_carries_hashes_and_codes_not_identity(tmp_path, real_dicom):
    path = real_dicom("RG3_UNCI.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    src = open_dicom(path)
    assert src.study_key == uid_hash(ds.StudyInstanceUID) and src.sop_key == uid_hash(ds.SOPInstanceUID)
    assert open_dicom(path, uid_key=b"k").study_key == uid_hash(ds.StudyInstanceUID, b"k") != src.study_key
    assert (src.modality, src.body_part, str(src.study_date)) == ("CR", "EXTREMITY", "2004-08-26")
    assert "PatientName" not in src.dataset and "StudyInstanceUID" not in src.dataset
    copy = shutil.copy(path, tmp_path / "copy.dcm")
    assert isinstance(open_dicom(copy), object)


def test_every_error_is_an_engine_error():
    from engine.exceptions import EngineError
    from schemas.exceptions import MonitorError

    assert issubclass(ImagingError, EngineError) and issubclass(ImagingError, MonitorError)
