"""Fixture factories: tiny data sets written in the exact on-disk layouts of the real ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest


def _png(path: Path, rng: np.random.Generator, mode: str = "L", size: tuple[int, int] = (12, 16)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    if mode == "RGB":
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(path)
    elif mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").save(path)


@pytest.fixture
def mura_tree(tmp_path: Path) -> Callable[..., Path]:
    """``mura_tree(studies, csv=True)`` -> ``.../MURA-v1.1``.

    ``studies``: (split, body part, patient number, study number, "positive"/"negative",
    number of images[, PNG mode]). With ``csv``, writes ``<split>_image_paths.csv`` and
    ``<split>_labeled_studies.csv`` as distributed (paths prefixed with ``MURA-v1.1/``).
    """

    def make(studies: Sequence[tuple], csv: bool = True) -> Path:
        root = tmp_path / "MURA-v1.1"
        rng = np.random.default_rng(0)
        images: dict[str, list[str]] = {"train": [], "valid": []}
        labeled: dict[str, list[str]] = {"train": [], "valid": []}
        for split, body, patient, study, result, n, *mode in studies:
            rel = f"{split}/{body}/patient{patient:05d}/study{study}_{result}/"
            labeled[split].append(f"MURA-v1.1/{rel},{1 if result == 'positive' else 0}")
            for k in range(1, n + 1):
                _png(root / rel / f"image{k}.png", rng, *(mode or ["L"]))
                images[split].append(f"MURA-v1.1/{rel}image{k}.png")
        (root / "train").mkdir(parents=True, exist_ok=True)
        (root / "valid").mkdir(parents=True, exist_ok=True)
        if csv:
            for split in ("train", "valid"):
                (root / f"{split}_image_paths.csv").write_text("".join(p + "\n" for p in images[split]))
                (root / f"{split}_labeled_studies.csv").write_text("".join(p + "\n" for p in labeled[split]))
        return root

    return make


@pytest.fixture
def mrnet_tree(tmp_path: Path) -> Callable[..., Path]:
    """``mrnet_tree({case: n_slices}, labels={task: {case: label}}, split="train", side=32)`` -> ``.../MRNet-v1.0``.

    Volume ``case`` holds uint8 slices whose every pixel of slice ``s`` is ``10 * s + case % 10``.
    """

    def make(cases: dict[int, int], labels: dict[str, dict[int, int]], split: str = "train", side: int = 32) -> Path:
        root = tmp_path / "MRNet-v1.0"
        for plane in ("axial", "coronal", "sagittal"):
            (root / split / plane).mkdir(parents=True, exist_ok=True)
            for case, n in cases.items():
                vol = np.empty((n, side, side), dtype=np.uint8)
                for s in range(n):
                    vol[s] = 10 * s + case % 10
                np.save(root / split / plane / f"{case:04d}.npy", vol)
        for task, rows in labels.items():
            (root / f"{split}-{task}.csv").write_text("".join(f"{case:04d},{y}\n" for case, y in rows.items()))
        return root

    return make


@pytest.fixture
def fastmri_folder(tmp_path: Path) -> Callable[..., Path]:
    """``fastmri_folder({name: n_slices}, patient={name: id})`` -> a folder of fastMRI-layout HDF5 files.

    Each file has ``kspace`` (complex64), ``reconstruction_rss`` float32 (n, 32, 32) whose
    slice ``s`` is ``(s + 1) * ramp`` (volume maximum = n), and fastMRI's attributes.
    """

    def make(files: dict[str, int], patient: dict[str, str] | None = None, side: int = 32) -> Path:
        import h5py

        folder = tmp_path / "knee_singlecoil_train"
        folder.mkdir(exist_ok=True)
        ramp = np.linspace(0.0, 1.0, side * side, dtype=np.float32).reshape(side, side)
        for name, n in files.items():
            rss = np.stack([(s + 1) * ramp for s in range(n)]).astype(np.float32)
            with h5py.File(folder / name, "w") as f:
                f.create_dataset("kspace", data=np.zeros((n, side, side), dtype=np.complex64))
                f.create_dataset("reconstruction_rss", data=rss)
                f.attrs["acquisition"] = "CORPD_FBK"
                f.attrs["max"] = float(rss.max())
                f.attrs["norm"] = float(np.linalg.norm(rss))
                if patient and name in patient:
                    f.attrs["patient_id"] = patient[name]
        return folder

    return make


CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
BASIC_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def write_dicom(path: Path, pixels: np.ndarray | None, *, modality: str, study_uid: str, series_uid: str,
                z: float | None = None, instance: int | None = None) -> Path:
    """A minimal valid Part-10 file (explicit VR little endian), 12-bit MONOCHROME2 with a fixed window."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = BASIC_SR if pixels is None else (MR_IMAGE if modality == "MR" else CR_IMAGE)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "SR" if pixels is None else modality
    ds.PatientID = "TEST-PATIENT"
    ds.PatientName = "Test^Patient"
    ds.BodyPartExamined = "KNEE"
    if instance is not None:
        ds.InstanceNumber = instance
    if pixels is not None:
        frames = pixels if pixels.ndim == 3 else pixels[None]
        ds.Rows, ds.Columns = frames.shape[1:]
        if pixels.ndim == 3:
            ds.NumberOfFrames = frames.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        if z is not None:
            ds.ImagePositionPatient = [0.0, 0.0, z]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelData = frames.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def marked(value: int, side: int = 32) -> np.ndarray:
    """A 12-bit image with a ramp (never blank) and ``value`` at pixel (0, 0)."""
    img = (np.arange(side * side).reshape(side, side) % 1000 + 1000).astype(np.uint16)
    img[0, 0] = value
    return img


@pytest.fixture
def dicom_cases(tmp_path: Path) -> Callable[..., Path]:
    """``dicom_cases()`` -> a Radiopaedia-style export folder with ``labels.csv``.

    * ``case-1/study-a/``: a CR projection ``IMG0001.dcm`` and a basic SR (no pixels);
    * ``case-1/study-b/series-1/``: 5 MR slices without extension, named so that the name
      order differs from the position order; slice at z=k has value ``100 * (k + 1)`` at (0, 0);
      plus ``README.txt``;
    * ``case-2/``: one 4-frame MR file (frame f marked ``500 + 100 * f``), UID-named.
    """

    def make() -> Path:
        from pydicom.uid import generate_uid

        root = tmp_path / "cases"
        study_a, study_b, study_c = generate_uid(), generate_uid(), generate_uid()
        write_dicom(root / "case-1/study-a/IMG0001.dcm", marked(3000), modality="CR", study_uid=study_a,
                    series_uid=generate_uid())
        write_dicom(root / "case-1/study-a/report.dcm", None, modality="SR", study_uid=study_a, series_uid=generate_uid())
        series = generate_uid()
        for name, k in zip("edcba", (0, 3, 1, 4, 2)):  # names sort a..e, positions do not
            write_dicom(root / f"case-1/study-b/series-1/{name}", marked(100 * (k + 1)), modality="MR",
                        study_uid=study_b, series_uid=series, z=2.5 * k, instance=10 - k)
        (root / "case-1/study-b/series-1/README.txt").write_text("exported by a viewer\n")
        multi = np.stack([marked(500 + 100 * f) for f in range(4)])
        write_dicom(root / "case-2" / generate_uid(), multi, modality="MR", study_uid=study_c, series_uid=generate_uid())
        (root / "labels.csv").write_text("study,label,patient\ncase-1/study-a,1,p1\ncase-1/study-b,0,p1\ncase-2,1,p2\n")
        return root

    return make
