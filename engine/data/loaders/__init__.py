"""Real-format image data sets (MURA, MRNet, fastMRI, DICOM folders), torch-free.

:func:`open_dataset` opens one from a spec string ``KIND:PATH[?OPTION=VALUE&...]``, the
value of ``injury-monitor train --data`` (see docs/data.md), e.g.::

    mura:/data/MURA-v1.1?split=train&body_parts=XR_ELBOW,XR_WRIST
    mrnet:/data/MRNet-v1.0?split=train&task=acl&plane=sagittal&slices=3
    fastmri:/data/knee_singlecoil_train?labels=/data/fastmri_labels.csv
    dicom:/data/cases?labels=/data/cases/labels.csv&slices=3

Every data set yields :class:`~engine.data.loaders.base.Sample` ``(image, label, meta)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.data.exceptions import DatasetSpecError
from engine.data.loaders.base import ImageDataset, Item, Sample, as_slices, split_by_group
from engine.data.loaders.dicom_folder import DicomFolderDataset
from engine.data.loaders.fastmri import FastMRIDataset
from engine.data.loaders.mrnet import MRNetDataset
from engine.data.loaders.mura import MuraDataset

__all__ = [
    "DATASETS", "DicomFolderDataset", "FastMRIDataset", "ImageDataset", "Item", "MRNetDataset", "MuraDataset",
    "Sample", "as_slices", "open_dataset", "parse_dataset_spec", "split_by_group",
]

DATASETS: dict[str, type[ImageDataset]] = {
    "mura": MuraDataset,
    "mrnet": MRNetDataset,
    "fastmri": FastMRIDataset,
    "dicom": DicomFolderDataset,
}


def _int(v: str) -> int:
    return int(v)


def _names(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in v.split(",") if p.strip())


def _path(v: str) -> Path:
    return Path(v).expanduser()


OPTIONS: dict[str, dict[str, Callable[[str], Any]]] = {
    "mura": {"split": str, "body_parts": _names},
    "mrnet": {"split": str, "task": str, "plane": str, "slices": _int},
    "fastmri": {"labels": _path, "key": str, "slices": _int},
    "dicom": {"labels": _path, "slices": _int},
}


def parse_dataset_spec(spec: str) -> tuple[str, Path, dict[str, Any]]:
    """``KIND:PATH[?K=V&...]`` -> (kind, path, keyword arguments of the data set class)."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in DATASETS:
        raise DatasetSpecError(None, f"data set spec {spec!r}: expected KIND:PATH[?option=value&...] with KIND one of "
                                     f"{', '.join(DATASETS)}")
    path_text, _, query = rest.partition("?")
    if not path_text.strip():
        raise DatasetSpecError(None, f"data set spec {spec!r}: no path after '{kind}:'")
    options: dict[str, Any] = {}
    allowed = OPTIONS[kind]
    for pair in filter(None, query.split("&")):
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or name not in allowed:
            raise DatasetSpecError(None, f"data set spec {spec!r}: {pair!r} is not an option of {kind} "
                                         f"(options: {', '.join(f'{k}=...' for k in allowed)})")
        try:
            options[name] = allowed[name](value.strip())
        except ValueError:
            raise DatasetSpecError(None, f"data set spec {spec!r}: {name}={value!r} is not valid") from None
    return kind, Path(path_text.strip()).expanduser(), options


def open_dataset(spec: str) -> ImageDataset:
    """Open the data set a spec names (layout and labels are checked now, pixels load lazily)."""
    kind, path, options = parse_dataset_spec(spec)
    return DATASETS[kind](path, **options)
