from __future__ import annotations

import pydicom
import pytest
from pydicom.datadict import keyword_dict
from pydicom.dataelem import RawDataElement

from engine.imaging.deid import (
    BASIC_PROFILE_KEYWORDS,
    KEPT_UIDS,
    RETAINED_KEYWORDS,
    code_string,
    deidentify,
    uid_hash,
)
from engine.imaging.synthetic import FakePatient, render_radiograph


def _all_elements(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _all_elements(item)


def test_profile_list_is_made_of_real_dicom_keywords():
    unknown = sorted(k for k in BASIC_PROFILE_KEYWORDS if k not in keyword_dict)
    assert unknown == []
    for must in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
                 "ReferringPhysicianName", "OtherPatientIDs", "StudyInstanceUID", "SOPInstanceUID"):
        assert must in BASIC_PROFILE_KEYWORDS
    assert len(BASIC_PROFILE_KEYWORDS) > 250


@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm", "RG3_UNCI.dcm", "eCT_Supplemental.dcm", "priv_SQ.dcm"])
def test_deidentify_removes_every_profile_attribute_at_any_depth(real_dicom, name):
    ds = pydicom.dcmread(real_dicom(name), force=True)
    summary = deidentify(ds)
    assert summary.removed > 0
    for elem in _all_elements(ds):
        assert elem.keyword not in BASIC_PROFILE_KEYWORDS or elem.keyword in RETAINED_KEYWORDS, elem
        assert elem.VR not in ("PN", "AE", "UN"), elem
        assert elem.tag.group % 2 == 0, f"private element left: {elem}"
        if elem.VR == "UI":
            assert elem.keyword in KEPT_UIDS, elem
        if elem.VR in ("DA", "DT", "TM"):
            assert elem.keyword == "StudyDate", elem
    assert "MediaStorageSOPInstanceUID" not in ds.file_meta
    assert ds.PatientIdentityRemoved == "YES"
    assert "DICOM PS3.15 E.1 Basic Application Confidentiality Profile" in ds.DeidentificationMethod


def test_deidentify_keeps_what_decoding_needs_and_the_study_date(tmp_path):
    path = render_radiograph(tmp_path / "x.dcm", seed=3, size=64, patient=FakePatient.for_seed(3))
    ds = pydicom.dcmread(path, defer_size=1024)
    deidentify(ds)
    # pixel data was not read: it is still a deferred raw element
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    assert isinstance(raw, RawDataElement) and raw.value is None
    for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation", "WindowCenter",
               "Modality", "BodyPartExamined", "SOPClassUID", "StudyDate"):
        assert kw in ds, kw
    assert ds.StudyDate == "20240115"
    # the private block with the name in it and every person name are gone
    assert not any(e.tag.is_private for e in ds)
    assert "PatientName" not in ds and "OtherPatientIDs" not in ds and "InstitutionAddress" not in ds
    assert ds.pixel_array.shape == (64, 64)


def test_uid_hash_plain_and_keyed():
    uid = "1.2.840.113619.2.55.3.1234"
    plain = uid_hash(uid)
    assert len(plain) == 64 and uid not in plain
    assert plain == uid_hash(uid + " ")  # DICOM padding does not matter
    assert uid_hash(uid, b"site-secret") != plain
    assert uid_hash(uid, b"site-secret") == uid_hash(uid, b"site-secret")
    assert uid_hash(uid, b"other") != uid_hash(uid, b"site-secret")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("KNEE", "KNEE"), ("whole body", "WHOLE_BODY"), (" l-spine ", "L_SPINE"), (None, "UNKNOWN"), ("", "UNKNOWN"),
     ("A" * 40, "A" * 16), ("Doe^Jane", "DOE_JANE")],
)
def test_code_string(raw, expected):
    assert code_string(raw) == expected
