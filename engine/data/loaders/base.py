"""Common shape of the real-format image data sets (torch-free).

A data set is an indexed list of :class:`Item` (built when it is opened: CSVs read, folder
layout checked, missing files reported) whose pixels load lazily. ``ds[i]`` is a
:class:`Sample` ``(image, label, meta)``:

* ``image``: float32 in [0, 1]; ``(H, W)`` for one 2-D image, ``(S, H, W)`` for slices of a
  volume (the slice policy of each loader says which slices). :func:`as_slices` turns
  either into ``(S, H, W)`` so a caller can embed every slice and average, as
  :mod:`engine.imaging.slices` does for DICOM studies.
* ``label``: int, 1 = abnormal / positive.
* ``meta``: a dict (the item's metadata: ids, body part, the file, slice indices).

Subclasses implement :meth:`ImageDataset._load` (image and load-time metadata); the public ``__getitem__`` checks what
it returns and turns any decoding failure into a :class:`CorruptSampleError` naming the
file. ``group`` is the patient (or the nearest thing the data set has): splits never put
one group on both sides (:func:`split_by_group`).
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.exceptions import EngineError


class Sample(NamedTuple):
    image: np.ndarray
    label: int
    meta: dict[str, Any]


@dataclass(frozen=True)
class Item:
    key: str
    label: int
    group: str
    paths: tuple[Path, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)


class ImageDataset:
    """Base of the loaders: ``len``, ``ds[i] -> Sample``, iteration, labels, groups, subsets."""

    kind = "base"

    def __init__(self, root: str | Path, items: Sequence[Item]) -> None:
        self.root = Path(root)
        self.items: list[Item] = list(items)

    # ---- public API (checks) -------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        try:
            image, extra = self._load(item)
        except EngineError:  # ours and engine.imaging's errors already name the file
            raise
        except Exception as exc:  # decoders raise anything: name the file
            raise CorruptSampleError(item.paths[0], f"cannot be decoded ({type(exc).__name__}: {exc})") from None
        image = check_image(image, item.paths[0])
        meta = {"key": item.key, "group": item.group, "kind": self.kind, **item.meta, **extra}
        return Sample(image, int(item.label), meta)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self.items)):
            yield self[i]

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([it.group for it in self.items], dtype=object)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageDataset:
        """A data set of the same kind over ``items[indices]`` (shares the loader's settings)."""
        out = copy.copy(self)
        out.items = [self.items[int(i)] for i in indices]
        return out

    def split(self, fractions: Sequence[float], *, seed: int = 0) -> list[ImageDataset]:
        """Random split by group (patient) into ``len(fractions)`` data sets."""
        return [self.subset(idx) for idx in split_by_group(self.groups, fractions, seed=seed)]

    def describe(self) -> dict[str, Any]:
        labels = self.labels
        return {
            "kind": self.kind,
            "root": str(self.root),
            "samples": len(self),
            "positives": int(labels.sum()),
            "groups": len(set(self.groups.tolist())),
        }

    # ---- hook -----------------------------------------------------------------
    def _load(self, item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode ``item``: the image (float32 in [0, 1]) and metadata known only after reading."""
        raise NotImplementedError


def check_image(image: np.ndarray, path: Path) -> np.ndarray:
    """float32, 2-D or 3-D, finite, within [0, 1]; else CorruptSampleError naming ``path``."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or min(arr.shape) == 0:
        raise CorruptSampleError(path, f"decoded to shape {arr.shape}, expected (H, W) or (S, H, W)")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise CorruptSampleError(path, "decoded image holds NaN or infinite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise CorruptSampleError(path, f"decoded values span [{arr.min():g}, {arr.max():g}], outside [0, 1]")
    return np.ascontiguousarray(arr)


def as_slices(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` -> ``(1, H, W)``; ``(S, H, W)`` unchanged."""
    return image[None] if image.ndim == 2 else image


def central_indices(n: int, k: int) -> list[int]:
    """The ``k`` central indices of ``n`` ascending (all when ``k <= 0`` or ``n <= k``).

    The same rule as :func:`engine.imaging.slices.central_indices`: slices ordered by their
    distance from the centre, ties to the lower index.
    """
    if k <= 0 or n <= k:
        return list(range(n))
    mid = (n - 1) / 2.0
    return sorted(sorted(range(n), key=lambda i: (abs(i - mid), i))[:k])


def split_by_group(groups: Sequence[str] | np.ndarray, fractions: Sequence[float], *, seed: int = 0) -> list[np.ndarray]:
    """Index arrays, one per fraction, with every group wholly on one side.

    Groups are shuffled with ``seed`` and dealt out in order until each part holds about
    its fraction of the samples; fractions are normalised to sum to 1.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError("fractions must be non-negative with a positive sum")
    fr = fr / fr.sum()
    g = np.asarray(groups, dtype=object)
    uniq = sorted(set(g.tolist()))
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = {u: 0 for u in uniq}
    for v in g.tolist():
        sizes[v] += 1
    bounds = np.cumsum(fr) * len(g)
    assign: dict[str, int] = {}
    done = 0
    part = 0
    for k in order:
        u = uniq[k]
        while part < len(fr) - 1 and done >= bounds[part] - 1e-9:
            part += 1
        assign[u] = part
        done += sizes[u]
    parts = np.array([assign[v] for v in g.tolist()], dtype=np.int64) if len(g) else np.empty(0, dtype=np.int64)
    return [np.flatnonzero(parts == p) for p in range(len(fr))]


def read_csv_rows(path: Path, *, min_columns: int) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-empty row; DatasetError naming the file if unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot be read as text ({exc})") from None
    rows = []
    reader = csv.reader(text.splitlines())
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        fields = [f.strip() for f in fields]
        if len(fields) < min_columns:
            raise DatasetError(path, f"line {reader.line_num} has {len(fields)} column(s), expected {min_columns}")
        rows.append((reader.line_num, fields))
    return rows


def parse_label(value: str, path: Path, line: int) -> int:
    """'0'/'1' (also '0.0', 'negative'/'positive', 'normal'/'abnormal') -> 0/1."""
    v = value.strip().lower()
    named = {"negative": 0, "normal": 0, "false": 0, "positive": 1, "abnormal": 1, "true": 1}
    if v in named:
        return named[v]
    try:
        f = float(v)
    except ValueError:
        f = float("nan")
    if f in (0.0, 1.0):
        return int(f)
    raise DatasetError(path, f"line {line}: label {value!r} is not 0 or 1")
