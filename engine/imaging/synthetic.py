"""Synthetic knee / lower-leg radiographs, with or without a lesion, as real DICOM files.

For the synthetic cohort and the image branch's training: the picture is a projection
of simple 3-D shapes (a soft-tissue cylinder, hollow cylindrical bone shafts with dense
cortex, ellipsoidal condyles and tibial plateau, a faint patella), with trabecular
texture, the heel effect and quantum noise, in MONOCHROME2 (bone bright).

Lesions (``Lesion.kind``):

* ``sclerotic``: a bright focal finding (dense bone island, healing callus);
* ``lytic``: a dark, sharper focal finding (cyst, osteolysis);
* ``edema``: a large fuzzy region of altered density (a bone-bruise-like blob);
* ``stress_fracture``: a thin transverse sclerotic band across the tibial shaft.

:func:`render_radiograph` writes a CR (Computed Radiography Image Storage) or DX
(Digital X-Ray Image Storage - For Presentation) file: 16 bits allocated, 12 stored,
MONOCHROME2, window centre/width, and fake PHI (patient name, id, birth date, accession
number, institution, physicians, a private tag) so de-identification has something to
strip. Everything is deterministic in ``seed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

Anatomy = Literal["knee", "lower_leg"]
LesionKind = Literal["sclerotic", "lytic", "edema", "stress_fracture"]
LESION_KINDS: tuple[str, ...] = ("sclerotic", "lytic", "edema", "stress_fracture")
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
BODY_PART = {"knee": "KNEE", "lower_leg": "LEG"}


@dataclass(frozen=True)
class Lesion:
    """A focal finding at (x, y) (fractions of the image width and height)."""

    kind: LesionKind
    x: float
    y: float
    radius: float = 0.04     # fraction of the image side
    strength: float = 1.0    # relative contrast, about 0.3 (subtle) to 2 (obvious)


@dataclass(frozen=True)
class FakePatient:
    """Invented identity written into synthetic files (never a real person)."""

    name: str = "Doe^Jane"
    patient_id: str = "MRN-000000"
    birth_date: str = "19900214"
    sex: str = "F"
    accession: str = "ACC-000000"
    institution: str = "Fake General Hospital"
    referring: str = "Referrer^Rita"
    operator: str = "Tech^Tom"
    address: str = "1 Imaginary Road, Nowhere"

    @classmethod
    def for_seed(cls, seed: int) -> FakePatient:
        rng = np.random.default_rng(seed + 7919)
        first = ["Jane", "John", "Alex", "Maria", "Sam", "Lee", "Noor", "Ivan"][seed % 8]
        last = ["Doe", "Roe", "Poe", "Moe", "Bloggs", "Smith", "Tanaka", "Okafor"][(seed // 8) % 8]
        born = date(1985, 1, 1) + timedelta(days=int(rng.integers(0, 6000)))
        return cls(
            name=f"{last}{seed}^{first}",
            patient_id=f"MRN-{seed:06d}",
            birth_date=born.strftime("%Y%m%d"),
            sex="F" if seed % 2 else "M",
            accession=f"ACC-{seed:06d}",
            institution=f"Fake General Hospital {seed % 5}",
            referring=f"Referrer{seed}^Rita",
            operator=f"Tech{seed}^Tom",
            address=f"{seed} Imaginary Road, Nowhere",
        )


# ---------------------------------------------------------------- drawing


def _chord(d: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    """Path length through a cylinder of radius ``half_width`` at distance ``d`` from its axis."""
    w = np.asarray(half_width, dtype=np.float64)
    return 2.0 * np.sqrt(np.clip(w * w - d * d, 0.0, None))


def _ellipsoid(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    r2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return 2.0 * rx * np.sqrt(np.clip(1.0 - r2, 0.0, None))


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), unit variance; ``scale`` in pixels."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    g = np.exp(-2.0 * (np.pi * scale) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * g))
    return out / (out.std() + 1e-12)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def random_lesion(rng: np.random.Generator, anatomy: Anatomy = "knee", kind: LesionKind | None = None) -> Lesion:
    """A plausible lesion on bone for this anatomy (location, size and contrast drawn from rng)."""
    kind = kind or LESION_KINDS[int(rng.integers(0, len(LESION_KINDS)))]  # type: ignore[assignment]
    if kind == "stress_fracture":
        return Lesion(kind, x=0.5, y=float(rng.uniform(0.7, 0.85) if anatomy == "knee" else rng.uniform(0.35, 0.7)),
                      radius=0.05, strength=float(rng.uniform(0.6, 1.5)))
    if anatomy == "knee":
        sites = [(0.43, 0.47), (0.57, 0.47), (0.45, 0.58), (0.55, 0.58), (0.5, 0.35)]
    else:
        sites = [(0.47, 0.2), (0.47, 0.5), (0.47, 0.8), (0.63, 0.5)]
    sx, sy = sites[int(rng.integers(0, len(sites)))]
    radius = float(rng.uniform(0.05, 0.09) if kind == "edema" else rng.uniform(0.015, 0.035))
    return Lesion(kind, x=sx + float(rng.normal(0, 0.015)), y=sy + float(rng.normal(0, 0.015)),
                  radius=radius, strength=float(rng.uniform(0.5, 1.5)))


def draw_radiograph(
    anatomy: Anatomy = "knee",
    lesion: Lesion | None = None,
    *,
    size: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """A (size, size) float32 image in [0, 1], bone bright. Pure and deterministic."""
    if anatomy not in BODY_PART:
        raise ValueError(f"anatomy must be one of {sorted(BODY_PART)}, not {anatomy!r}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    shift = rng.normal(0.0, 0.02)
    x = xx - shift
    s = float(rng.uniform(0.9, 1.1))  # bone size
    soft = float(rng.uniform(0.8, 1.2))  # soft-tissue girth

    # soft tissue: a cylinder whose radius narrows from thigh to ankle
    leg_w = soft * (0.27 - 0.06 * yy) if anatomy == "knee" else soft * (0.2 - 0.07 * yy)
    tissue = _chord(x - 0.5, leg_w)

    bone = np.zeros_like(xx)
    if anatomy == "knee":
        # femur shaft coming down, condyles, patella
        fw = s * (0.062 + 0.05 * _smoothstep((yy - 0.28) / 0.18))
        femur = (_chord(x - 0.5, fw) - 0.75 * _chord(x - 0.5, 0.6 * fw)) * (yy < 0.47)
        condyles = 0.8 * (_ellipsoid(x, yy, 0.5 - 0.06 * s, 0.465, 0.075 * s, 0.05 * s)
                          + _ellipsoid(x, yy, 0.5 + 0.06 * s, 0.465, 0.075 * s, 0.05 * s))
        patella = 0.35 * _ellipsoid(x, yy, 0.5, 0.40, 0.055 * s, 0.07 * s)
        # tibia: plateau (y ~ 0.535) tapering into the shaft; fibula laterally
        tw = s * (0.06 + 0.075 * (1.0 - _smoothstep((yy - 0.54) / 0.2)))
        tibia = (_chord(x - 0.5, tw) - 0.7 * _chord(x - 0.5, 0.6 * tw)) * (yy > 0.535)
        plateau = 0.7 * _ellipsoid(x, yy, 0.5, 0.565, 0.13 * s, 0.035) * (yy > 0.535)
        fib_x = 0.5 + 0.13 * s + 0.01 * (yy - 0.6)
        fib_head = 0.8 * _ellipsoid(x, yy, 0.5 + 0.125 * s, 0.6, 0.03 * s, 0.025)
        fibula = (_chord(x - fib_x, 0.017 * s) + fib_head) * (yy > 0.575)
        bone = femur + condyles + patella + tibia + plateau + fibula
    else:
        # tibia and fibula shafts over the whole film, metaphyseal flare and ankle at the bottom
        tw = s * (0.055 + 0.045 * _smoothstep((yy - 0.78) / 0.17))
        tib_x = 0.47 + 0.01 * np.sin(3.0 * yy)
        tibia = (_chord(x - tib_x, tw) - 0.75 * _chord(x - tib_x, 0.6 * tw)) * (yy < 0.95)
        fib_x = 0.47 + 0.15 * s - 0.02 * yy
        fibula = _chord(x - fib_x, 0.016 * s * (1.0 + 0.6 * _smoothstep((yy - 0.85) / 0.1))) * (yy < 0.97)
        talus = 0.8 * _ellipsoid(x, yy, 0.48, 1.0, 0.09 * s, 0.035)
        bone = tibia + fibula + talus

    # trabecular texture inside bone, stronger in the epiphyses
    texture = 1.0 + 0.06 * _smooth_noise(rng, size, 1.2) + 0.04 * _smooth_noise(rng, size, 4.0)
    bone = bone * texture

    if lesion is not None:
        r = max(lesion.radius, 1e-3)
        d = np.sqrt((xx - shift - lesion.x) ** 2 + (yy - lesion.y) ** 2) / r
        on_bone = (bone > 0.01).astype(np.float64)
        if lesion.kind == "sclerotic":
            bone = bone + 0.08 * lesion.strength * np.exp(-0.5 * (d / 0.6) ** 2) * on_bone
        elif lesion.kind == "lytic":
            hole = 1.0 - _smoothstep((d - 0.8) / 0.4)
            bone = bone * (1.0 - 0.25 * min(lesion.strength, 2.0) * hole)
        elif lesion.kind == "edema":
            bone = bone * (1.0 + 0.35 * lesion.strength * np.exp(-0.5 * d**2) * on_bone)
        elif lesion.kind == "stress_fracture":
            band = np.exp(-0.5 * ((yy - lesion.y) / 0.006) ** 2) * (np.abs(xx - shift - lesion.x) < r * 2.5)
            bone = bone + 0.05 * lesion.strength * band * on_bone
        else:
            raise ValueError(f"lesion kind must be one of {LESION_KINDS}, not {lesion.kind!r}")

    # the detector's log transform makes the displayed value about linear in attenuation
    attenuation = 0.55 * tissue + 4.5 * bone
    image = 1.0 - np.exp(-1.4 * attenuation)
    image = image * (0.93 + 0.07 * yy)  # heel effect
    image = 0.04 + 0.92 * image
    image = image + rng.normal(0.0, 0.008, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- DICOM


def _uid(seed: int, what: str) -> str:
    """A deterministic UID under the 2.25 (UUID-derived) root."""
    digest = hashlib.sha256(f"injury-monitor-synthetic:{seed}:{what}".encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def render_radiograph(
    path: str | Path,
    *,
    anatomy: Anatomy = "knee",
    lesion: Lesion | None = None,
    seed: int = 0,
    size: int = 512,
    modality: Literal["CR", "DX"] = "CR",
    bits_stored: int = 12,
    patient: FakePatient | None = None,
    study_date: date = date(2024, 1, 15),
    laterality: Literal["L", "R"] = "R",
    study_seed: int | None = None,
) -> Path:
    """Draw a radiograph and write it as a DICOM file at ``path``; returns the path.

    ``study_seed`` (default ``seed``) fixes the Study Instance UID, so several images can
    share a study. The file has 16 bits allocated, ``bits_stored`` (8..16) stored.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    if modality not in ("CR", "DX"):
        raise ValueError("modality must be CR or DX")
    if not 8 <= bits_stored <= 16:
        raise ValueError("bits_stored must be 8..16")
    img = draw_radiograph(anatomy, lesion, size=size, seed=seed)
    if laterality == "L":
        img = img[:, ::-1]
    top = 2**bits_stored - 1
    stored = np.round(img * top).astype(np.uint16)
    patient = patient or FakePatient.for_seed(seed)
    study_seed = seed if study_seed is None else study_seed
    sop_class = CR_STORAGE if modality == "CR" else DX_PRESENTATION_STORAGE
    sop_uid = _uid(seed, "sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = _uid(study_seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.FrameOfReferenceUID = _uid(seed, "frame")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101530"
    ds.AccessionNumber = patient.accession
    ds.Modality = modality
    ds.Manufacturer = "injury-monitor synthetic"
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = patient.address
    ds.ReferringPhysicianName = patient.referring
    ds.OperatorsName = patient.operator
    ds.StationName = f"XR-ROOM-{seed % 3}"
    ds.StudyDescription = f"{BODY_PART[anatomy]} AP"
    ds.SeriesDescription = f"{BODY_PART[anatomy]} AP {laterality}"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.OtherPatientIDs = f"OTHER-{patient.patient_id}"
    ds.PatientAddress = patient.address
    ds.BodyPartExamined = BODY_PART[anatomy]
    ds.ViewPosition = "AP"
    ds.ImageLaterality = laterality
    ds.Laterality = laterality
    ds.PatientOrientation = ["L", "F"] if laterality == "R" else ["R", "F"]
    ds.StudyID = f"S{seed:05d}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.3 * 512 / size, 0.3 * 512 / size]
    ds.WindowCenter = top // 2
    ds.WindowWidth = top
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "US"
        ds.DetectorType = "SCINTILLATOR"
        ds.PresentationLUTShape = "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # a private block with identity in it, as some vendors write
    block = ds.private_block(0x0011, "INJURY-MONITOR FAKE VENDOR", create=True)
    block.add_new(0x01, "LO", f"{patient.name} {patient.patient_id}")
    ds.PixelData = stored.tobytes()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
