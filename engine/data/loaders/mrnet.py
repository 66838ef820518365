"""Stanford MRNet v1.0: knee MRI exams as ``.npy`` volumes, three binary tasks.

On-disk layout (as distributed)::

    MRNet-v1.0/
      train-abnormal.csv  train-acl.csv  train-meniscus.csv     0000,0   (case,label; no header)
      valid-abnormal.csv  valid-acl.csv  valid-meniscus.csv
      train/{axial,coronal,sagittal}/0000.npy                   uint8 (slices, 256, 256)
      valid/{axial,coronal,sagittal}/1130.npy

One sample per exam, for one ``task`` (``abnormal``, ``acl`` or ``meniscus``) and one
``plane``. Slice policy: the ``slices`` central slices (default 3, the same central-k rule
as :mod:`engine.imaging.slices`; ``slices=0`` keeps every slice), as a float32
``(k, 256, 256)`` volume ``value / 255``; the chosen indices are in ``meta["slice_indices"]``.
MRNet does not publish patient ids; its official split is by patient and each exam is
taken as one patient (``group`` = case). The test set is not public: ``valid`` serves as
the test set and validation comes from ``ds.split``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.base import ImageDataset, Item, central_indices, parse_label, read_csv_rows

SPLITS = ("train", "valid")
TASKS = ("abnormal", "acl", "meniscus")
PLANES = ("axial", "coronal", "sagittal")
DEFAULT_SLICES = 3


def find_root(root: Path, split: str) -> Path:
    if not (root / split).is_dir() and (root / "MRNet-v1.0" / split).is_dir():
        return root / "MRNet-v1.0"
    if not root.is_dir():
        raise DatasetError(root, "no such folder (expected MRNet-v1.0/)")
    return root


def case_id(text: str) -> str:
    """CSV case ids are zero-padded to 4 digits like the file names (``7`` -> ``0007``)."""
    return text.zfill(4) if text.isdigit() else text


def load_volume(path: Path, k: int) -> tuple[np.ndarray, list[int], int]:
    """The ``k`` central slices of a uint8 (S, H, W) ``.npy`` as float32 / 255, their indices, S."""
    vol = np.load(path, mmap_mode="r", allow_pickle=False)
    if vol.ndim != 3:
        raise CorruptSampleError(path, f"array has shape {vol.shape}, expected (slices, H, W)")
    if vol.dtype != np.uint8:
        raise CorruptSampleError(path, f"array is {vol.dtype}, MRNet volumes are uint8")
    idx = central_indices(int(vol.shape[0]), k)
    return np.asarray(vol[idx], dtype=np.float32) / 255.0, idx, int(vol.shape[0])


class MRNetDataset(ImageDataset):
    """MRNet exams of one split, task and plane."""

    kind = "mrnet"

    def __init__(self, root: str | Path, *, split: str = "train", task: str = "abnormal", plane: str = "sagittal",
                 slices: int = DEFAULT_SLICES) -> None:
        for name, value, allowed in (("split", split, SPLITS), ("task", task, TASKS), ("plane", plane, PLANES)):
            if value not in allowed:
                raise DatasetError(root, f"{name} {value!r}: MRNet has {', '.join(allowed)}")
        if slices < 0:
            raise DatasetError(root, f"slices={slices}: must be >= 0 (0 = every slice)")
        base = find_root(Path(root), split)
        labels = base / f"{split}-{task}.csv"
        if not labels.is_file():
            raise DatasetError(labels, "no such file (MRNet labels are <split>-<task>.csv next to train/ and valid/)")
        self.official_split, self.task, self.plane, self.slices = split, task, plane, int(slices)
        items = []
        seen: dict[str, int] = {}
        missing: list[Path] = []
        for line, fields in read_csv_rows(labels, min_columns=2):
            case = case_id(fields[0])
            if case in seen:
                raise DatasetError(labels, f"line {line}: case {case} is listed again (first on line {seen[case]})")
            seen[case] = line
            label = parse_label(fields[1], labels, line)
            path = base / split / plane / f"{case}.npy"
            if not path.is_file():
                missing.append(path)
                continue
            items.append(Item(key=f"{split}/{plane}/{case}", label=label, group=case, paths=(path,),
                              meta={"case": case, "split": split, "task": task, "plane": plane}))
        if missing:
            raise DatasetError(base / split / plane, f"{len(missing)} case(s) of {labels.name} have no volume, "
                                                     f"e.g. {missing[0].name}")
        if not items:
            raise DatasetError(labels, "no cases listed")
        super().__init__(base, items)

    def _load(self, item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        image, idx, n = load_volume(item.paths[0], self.slices)
        return image, {"slice_indices": idx, "n_slices": n}
