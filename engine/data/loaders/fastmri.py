"""fastMRI (NYU) HDF5 volumes, with labels from a CSV the user provides.

On-disk layout (as distributed): a flat folder of HDF5 files, e.g.
``knee_singlecoil_train/file1000001.h5`` or ``multicoil_train/file1000001.h5``, each with a
``kspace`` dataset, the image dataset ``reconstruction_rss`` (float32 ``(slices, 320, 320)``;
single-coil files also hold ``reconstruction_esc``) and attributes (``acquisition``,
``max``, ``norm``, ``patient_id`` in recent releases). Test-set files carry no
reconstruction and cannot be used.

fastMRI has **no diagnostic labels**. Labels come from a CSV the user writes, for
example from the fastMRI+ annotations (per-slice boxes with a finding name, e.g.
``Meniscus Tear``): a header row with ``file`` and ``label`` (0/1), and optionally
``slice``:

* without ``slice``: one sample per file, its ``slices`` central slices (default 3) as a
  float32 ``(k, H, W)`` volume;
* with ``slice``: one sample per row, that slice as ``(H, W)``.

``file`` is the file name relative to the folder (``.h5`` may be omitted). Pixels are
divided by the volume's own maximum (so a volume's slices share one scale) and lie in
[0, 1]. ``group`` is the ``patient_id`` attribute when the file has one, else the file
name (so every slice of a volume stays on one side of a split). Every labelled file is
opened once when the data set is built, to check the dataset and slice numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.base import ImageDataset, Item, central_indices, parse_label, read_csv_rows

DEFAULT_KEY = "reconstruction_rss"
DEFAULT_SLICES = 3


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def probe(path: Path, key: str) -> tuple[int, dict[str, Any]]:
    """Number of slices of ``key`` and the file's scalar attributes; errors name the file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise CorruptSampleError(path, f"no dataset {key!r} (has {', '.join(sorted(f.keys())) or 'none'}); "
                                               "fastMRI test files carry no reconstruction")
            ds = f[key]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                raise CorruptSampleError(path, f"{key} has shape {getattr(ds, 'shape', None)}, expected (slices, H, W)")
            if not np.issubdtype(ds.dtype, np.floating) and not np.issubdtype(ds.dtype, np.integer):
                raise CorruptSampleError(path, f"{key} is {ds.dtype}, expected real magnitudes")
            attrs = {k: _attr(v) for k, v in f.attrs.items() if np.ndim(v) == 0}
            return int(ds.shape[0]), attrs
    except CorruptSampleError:
        raise
    except OSError as exc:
        raise CorruptSampleError(path, f"not a readable HDF5 file ({exc})") from None


def load_slices(path: Path, key: str, indices: list[int]) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        vol = np.asarray(f[key][()], dtype=np.float64)
    top = float(vol.max())
    if not np.isfinite(vol).all():
        raise CorruptSampleError(path, f"{key} holds NaN or infinite values")
    if top <= 0:
        raise CorruptSampleError(path, f"{key} is blank (maximum {top:g})")
    return np.clip(vol[indices] / top, 0.0, 1.0).astype(np.float32)


class FastMRIDataset(ImageDataset):
    """fastMRI volumes or slices listed in a user label CSV."""

    kind = "fastmri"

    def __init__(self, root: str | Path, *, labels: str | Path | None = None, key: str = DEFAULT_KEY,
                 slices: int = DEFAULT_SLICES) -> None:
        base = Path(root)
        if not base.is_dir():
            raise DatasetError(base, "no such folder (expected a folder of fastMRI .h5 files)")
        if labels is None:
            raise DatasetError(base, "fastMRI has no labels: pass labels=CSV with columns file,label[,slice] "
                                     "(see docs/data.md)")
        if slices < 0:
            raise DatasetError(base, f"slices={slices}: must be >= 0 (0 = every slice)")
        labels = Path(labels)
        rows = read_csv_rows(labels, min_columns=2)
        if not rows:
            raise DatasetError(labels, "empty label file")
        header = [h.lower() for h in rows[0][1]]
        if "file" not in header or "label" not in header:
            raise DatasetError(labels, f"line {rows[0][0]}: header must name 'file' and 'label' columns, got {rows[0][1]}")
        fi, li = header.index("file"), header.index("label")
        si = header.index("slice") if "slice" in header else None
        self.key, self.slices = key, int(slices)
        probed: dict[Path, tuple[int, dict[str, Any]]] = {}
        seen: dict[tuple[str, int | None], int] = {}
        items = []
        for line, fields in rows[1:]:
            if len(fields) < len(header):
                raise DatasetError(labels, f"line {line} has {len(fields)} column(s), expected {len(header)}")
            name = fields[fi] if Path(fields[fi]).suffix else fields[fi] + ".h5"
            path = base / name
            if path not in probed:
                if not path.is_file():
                    raise DatasetError(labels, f"line {line}: {path} does not exist")
                probed[path] = probe(path, key)
            n, attrs = probed[path]
            slice_no = None
            if si is not None:
                try:
                    slice_no = int(fields[si])
                except ValueError:
                    raise DatasetError(labels, f"line {line}: slice {fields[si]!r} is not an integer") from None
                if not 0 <= slice_no < n:
                    raise DatasetError(labels, f"line {line}: slice {slice_no} out of range, {name} has {n} slices")
            dup = seen.get((name, slice_no))
            if dup is not None:
                raise DatasetError(labels, f"line {line}: {name} slice {slice_no} is listed again (line {dup})")
            seen[(name, slice_no)] = line
            label = parse_label(fields[li], labels, line)
            group = str(attrs.get("patient_id") or Path(name).stem)
            meta = {"file": name, "n_slices": n, "acquisition": attrs.get("acquisition"), "slice": slice_no}
            key_ = name if slice_no is None else f"{name}#{slice_no}"
            items.append(Item(key=key_, label=label, group=group, paths=(path,), meta=meta))
        if not items:
            raise DatasetError(labels, "no labelled rows")
        super().__init__(base, items)

    def _load(self, item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        slice_no = item.meta["slice"]
        if slice_no is not None:
            return load_slices(item.paths[0], self.key, [slice_no])[0], {"slice_indices": [slice_no]}
        idx = central_indices(int(item.meta["n_slices"]), self.slices)
        return load_slices(item.paths[0], self.key, idx), {"slice_indices": idx}
