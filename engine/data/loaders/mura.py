"""MURA v1.1 (Stanford musculoskeletal radiographs): PNG images, one label per study.

On-disk layout (as distributed)::

    MURA-v1.1/
      train_image_paths.csv       MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/image1.png
      train_labeled_studies.csv   MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/,1
      valid_image_paths.csv, valid_labeled_studies.csv
      train/XR_<BODYPART>/patient<id>/study<n>_{positive,negative}/image<k>.png
      valid/...

One sample per image; the label is the study's (``positive`` = abnormal = 1), taken from
the folder name and cross-checked against ``<split>_labeled_studies.csv`` when present.
The image list is ``<split>_image_paths.csv`` when present (the official list and order),
else the folders are walked. ``group`` is the patient, across body parts. MURA's own
``train`` and ``valid`` splits share no patient; its test set is not public, so ``valid``
serves as the test set and validation comes from ``ds.split`` by patient. MURA covers
the upper extremity only (elbow, finger, forearm, hand, humerus, shoulder, wrist).

Pixels: 8-bit grayscale / colour PNGs become ``value / 255`` (colour converted to luma by
Pillow), 16-bit ones ``value / 65535``; the image is ``(H, W)`` float32.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.base import ImageDataset, Item, parse_label, read_csv_rows

SPLITS = ("train", "valid")
BODY_PARTS = ("XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND", "XR_HUMERUS", "XR_SHOULDER", "XR_WRIST")
_BODY = re.compile(r"^XR_[A-Z]+$")
_PATIENT = re.compile(r"^patient\d+$")
_STUDY = re.compile(r"^study(\d+)_(positive|negative)$")
_IMAGE = re.compile(r"^image\d+\.png$", re.IGNORECASE)


def find_root(root: Path, split: str) -> Path:
    """``root`` itself, or ``root/MURA-v1.1`` when the user named the folder above it."""
    if not (root / split).is_dir() and (root / "MURA-v1.1" / split).is_dir():
        return root / "MURA-v1.1"
    if not root.is_dir():
        raise DatasetError(root, "no such folder (expected MURA-v1.1/)")
    if not (root / split).is_dir():
        raise DatasetError(root, f"no {split}/ folder: not a MURA-v1.1 folder")
    return root


def relative_from_split(text: str, split: str) -> tuple[str, ...] | None:
    """``MURA-v1.1/train/XR_X/...`` -> ``('train', 'XR_X', ...)`` (the part from the split folder)."""
    parts = tuple(p for p in text.replace("\\", "/").split("/") if p)
    if split not in parts:
        return None
    return parts[parts.index(split):]


def parse_image_path(parts: tuple[str, ...], split: str) -> dict[str, Any] | None:
    """``(split, XR_BODY, patientN, studyK_label, imageJ.png)`` -> fields, or None if not that layout."""
    if len(parts) != 5 or parts[0] != split:
        return None
    body, patient, study, image = parts[1:]
    m = _STUDY.match(study)
    if not (_BODY.match(body) and _PATIENT.match(patient) and m and _IMAGE.match(image)):
        return None
    return {"body_part": body[3:], "patient": patient, "study": f"study{m.group(1)}",
            "study_label": 1 if m.group(2) == "positive" else 0, "image": image}


def load_png(path: Path) -> np.ndarray:
    """A PNG as float32 (H, W) in [0, 1] (colour -> luma, 16-bit / 65535)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16L", "I;16B", "I"):
            arr = np.asarray(im, dtype=np.float64) / 65535.0
            return np.clip(arr, 0.0, 1.0).astype(np.float32)
        if im.mode == "F":
            raise CorruptSampleError(path, "32-bit float PNG mode 'F' is not a radiograph export")
        gray = im if im.mode == "L" else im.convert("L")
        return np.asarray(gray, dtype=np.float32) / 255.0


class MuraDataset(ImageDataset):
    """MURA images of one official split, optionally restricted to some body parts."""

    kind = "mura"

    def __init__(self, root: str | Path, *, split: str = "train", body_parts: Sequence[str] | None = None) -> None:
        if split not in SPLITS:
            raise DatasetError(root, f"split {split!r}: MURA has {', '.join(SPLITS)}")
        wanted = None
        if body_parts:
            wanted = {b.upper() if b.upper().startswith("XR_") else "XR_" + b.upper() for b in body_parts}
            unknown = sorted(wanted - set(BODY_PARTS))
            if unknown:
                raise DatasetError(root, f"unknown body part(s) {', '.join(unknown)} (MURA has {', '.join(BODY_PARTS)})")
        base = find_root(Path(root), split)
        self.official_split = split
        rels = self._image_list(base, split)
        studies = self._study_labels(base, split)
        items = []
        missing: list[Path] = []
        for rel, where in rels:
            fields = parse_image_path(rel, split)
            if fields is None:
                raise DatasetError(where, f"{'/'.join(rel)} is not {split}/XR_<BODY>/patient<id>/study<n>_<label>/image<k>.png")
            if wanted is not None and "XR_" + fields["body_part"] not in wanted:
                continue
            study_dir = "/".join(rel[:4])
            label = fields.pop("study_label")
            listed = studies.get(study_dir)
            if listed is not None and listed[0] != label:
                csv_path, line = listed[1]
                raise DatasetError(csv_path, f"line {line}: label {listed[0]} contradicts the folder name {rel[3]}")
            path = base.joinpath(*rel)
            if not path.is_file():
                missing.append(path)
                continue
            items.append(Item(key="/".join(rel), label=label, group=fields["patient"], paths=(path,),
                              meta={**fields, "split": split, "study_key": study_dir}))
        if missing:
            raise DatasetError(base, f"{len(missing)} listed image(s) missing, e.g. {missing[0]}")
        if not items:
            raise DatasetError(base, f"no images in {split}/" + (f" for {', '.join(sorted(wanted))}" if wanted else ""))
        super().__init__(base, items)

    @staticmethod
    def _image_list(base: Path, split: str) -> list[tuple[tuple[str, ...], Any]]:
        csv_path = base / f"{split}_image_paths.csv"
        if csv_path.is_file():
            out = []
            for line, fields in read_csv_rows(csv_path, min_columns=1):
                rel = relative_from_split(fields[0], split)
                if rel is None:
                    raise DatasetError(csv_path, f"line {line}: {fields[0]!r} has no {split}/ folder in it")
                out.append((rel, f"{csv_path}: line {line}"))
            return out
        paths = sorted((base / split).glob("*/*/*/*"))
        return [(p.relative_to(base).parts, p) for p in paths
                if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file()]

    @staticmethod
    def _study_labels(base: Path, split: str) -> dict[str, tuple[int, tuple[Path, int]]]:
        csv_path = base / f"{split}_labeled_studies.csv"
        if not csv_path.is_file():
            return {}
        out = {}
        for line, fields in read_csv_rows(csv_path, min_columns=2):
            rel = relative_from_split(fields[0], split)
            if rel is None or len(rel) != 4:
                raise DatasetError(csv_path, f"line {line}: {fields[0]!r} is not {split}/XR_<BODY>/patient<id>/study<n>_<label>/")
            out["/".join(rel)] = (parse_label(fields[1], csv_path, line), (csv_path, line))
        return out

    def _load(self, item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        return load_png(item.paths[0]), {}
