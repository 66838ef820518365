from __future__ import annotations

import numpy as np
import pydicom
import pytest

from engine.imaging.reader import decode_frame, open_dicom
from engine.imaging.synthetic import LESION_KINDS, FakePatient, Lesion, draw_radiograph, random_lesion, render_radiograph


def test_drawing_is_deterministic_and_bone_is_bright():
    a = draw_radiograph("knee", seed=3, size=256)
    assert a.shape == (256, 256) and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, draw_radiograph("knee", seed=3, size=256))
    assert not np.array_equal(a, draw_radiograph("knee", seed=4, size=256))
    # centre of the femoral shaft (bone) > soft tissue beside it > air at the edge
    assert a[50, 128] > a[50, 100] > a[50, 5] + 0.1
    leg = draw_radiograph("lower_leg", seed=3, size=256)
    assert leg[128, 100:140].max() > leg[128, 5] + 0.3


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_each_lesion_changes_the_bone_where_it_is(kind):
    lesion = Lesion(kind, x=0.5, y=0.8, radius=0.04, strength=1.5)  # on the tibial shaft
    clean = draw_radiograph("knee", seed=1, size=256)
    sick = draw_radiograph("knee", lesion, seed=1, size=256)
    diff = sick - clean
    y, x = 205, 128
    local = np.abs(diff[y - 8:y + 8, x - 8:x + 8]).mean()
    far = np.abs(diff[20:40, 20:40]).mean()
    assert local > 0.01 and far < 1e-6
    assert (diff[y - 3:y + 3, x - 3:x + 3].mean() < 0) == (kind == "lytic")


def test_random_lesions_are_on_bone_and_reproducible():
    rng = np.random.default_rng(0)
    lesions = [random_lesion(rng, "knee") for _ in range(20)]
    assert {les.kind for les in lesions} == set(LESION_KINDS)
    assert all(0.3 < les.x < 0.7 and 0.3 < les.y < 0.9 for les in lesions)
    assert random_lesion(np.random.default_rng(1), "lower_leg") == random_lesion(np.random.default_rng(1), "lower_leg")


@pytest.mark.parametrize(("modality", "sop"), [("CR", "1.2.840.10008.5.1.4.1.1.1"), ("DX", "1.2.840.10008.5.1.4.1.1.1.1")])
def test_render_writes_a_real_dicom_the_reader_accepts(tmp_path, modality, sop):
    patient = FakePatient.for_seed(11)
    path = render_radiograph(tmp_path / "r.dcm", anatomy="lower_leg", seed=11, size=128, modality=modality,
                             lesion=Lesion("lytic", 0.47, 0.5), patient=patient, laterality="L")
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and ds.SOPClassUID == sop
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PhotometricInterpretation) == (16, 12, 11, "MONOCHROME2")
    assert str(ds.PatientName) == patient.name and ds.PatientID == patient.patient_id
    assert ds.BodyPartExamined == "LEG" and ds.ImageLaterality == "L"
    assert ds.pixel_array.max() <= 4095 and ds.pixel_array.dtype == np.uint16
    img = decode_frame(open_dicom(path), 0)
    # the reader's window (centre 2047, width 4095) reproduces the drawn picture, mirrored for L
    drawn = draw_radiograph("lower_leg", Lesion("lytic", 0.47, 0.5), seed=11, size=128)[:, ::-1]
    assert np.abs(img - drawn).max() < 2e-3


def test_studies_can_share_a_study_uid(tmp_path):
    a = pydicom.dcmread(render_radiograph(tmp_path / "a.dcm", seed=1, size=64, study_seed=9))
    b = pydicom.dcmread(render_radiograph(tmp_path / "b.dcm", seed=2, size=64, study_seed=9))
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
