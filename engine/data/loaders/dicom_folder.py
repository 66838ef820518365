"""Folders of DICOM files (e.g. Radiopaedia-style case exports) with a study -> label CSV.

On-disk layout: any nesting of folders under ``root``; each labelled *study folder* holds
DICOM files at any depth, with or without the ``.dcm`` extension (UID-named files too).
Labels: a CSV (default ``root/labels.csv``) with a header naming ``study`` and ``label``
and optionally ``patient``; ``study`` is the folder relative to ``root``
(``case-0042/study-1``), ``label`` 0/1; ``group`` is ``patient`` if given, else the study.

Files are read with :mod:`engine.imaging.reader` (the same checks, de-identification and
VOI LUT / windowing to [0, 1] as image ingest). Skipped without error: hidden files,
``DICOMDIR``, files whose extension marks them as something else (``.txt``, ``.jpg``,
``.json``...), and DICOM objects that hold no picture (structured reports, presentation
states, segmentations: ``no_pixel_data`` / ``unsupported_image``), listed in
``ds.skipped``. Any other unreadable file (not DICOM, truncated, undecodable) raises the
imaging error, which names the file.

Samples follow the slice policy of :mod:`engine.imaging.slices`: within a study the
files are grouped by series; a projection image (CR, DX, ...) is one sample ``(H, W)``; a
series of single-frame CT/MR/PT/NM slices is one volume sample, ordered along the slice
normal (else Instance Number, else name) with its ``slices`` central slices
``(k, H, W)``; a multi-frame file is one sample of its ``slices`` central frames. Colour
images become luma (0.299 R + 0.587 G + 0.114 B).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.loaders.base import ImageDataset, Item, central_indices, parse_label, read_csv_rows

DEFAULT_SLICES = 3
NOT_DICOM_SUFFIXES = frozenset({
    ".txt", ".csv", ".json", ".xml", ".html", ".htm", ".md", ".pdf", ".jpg", ".jpeg", ".png", ".gif", ".bmp",
    ".zip", ".gz", ".ini", ".db", ".log", ".py", ".nii", ".mp4",
})
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def candidate_files(folder: Path) -> list[Path]:
    """Files under ``folder`` that may be DICOM, sorted by relative path."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.name.upper() == "DICOMDIR" or p.suffix.lower() in NOT_DICOM_SUFFIXES:
            continue
        out.append(p)
    return out


def to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else np.clip(img @ _LUMA, 0.0, 1.0).astype(np.float32)


class DicomFolderDataset(ImageDataset):
    """Labelled study folders of DICOM files; one sample per image, volume or multi-frame file."""

    kind = "dicom"

    def __init__(self, root: str | Path, *, labels: str | Path | None = None, slices: int = DEFAULT_SLICES) -> None:
        from engine.imaging.exceptions import NoPixelDataError, UnsupportedImageError
        from engine.imaging.reader import open_dicom
        from engine.imaging.slices import VOLUME_MODALITIES, slice_order

        base = Path(root)
        if not base.is_dir():
            raise DatasetError(base, "no such folder")
        if slices < 0:
            raise DatasetError(base, f"slices={slices}: must be >= 0 (0 = every slice)")
        labels = Path(labels) if labels is not None else base / "labels.csv"
        if not labels.is_file():
            raise DatasetError(labels, "no such label file (CSV with columns study,label[,patient]; see docs/data.md)")
        rows = read_csv_rows(labels, min_columns=2)
        if not rows:
            raise DatasetError(labels, "empty label file")
        header = [h.lower() for h in rows[0][1]]
        if "study" not in header or "label" not in header:
            raise DatasetError(labels, f"line {rows[0][0]}: header must name 'study' and 'label' columns, got {rows[0][1]}")
        si, li = header.index("study"), header.index("label")
        pi = header.index("patient") if "patient" in header else None
        self.slices = int(slices)
        self.skipped: list[tuple[Path, str]] = []
        items: list[Item] = []
        seen: dict[str, int] = {}
        for line, fields in rows[1:]:
            if len(fields) < len(header):
                raise DatasetError(labels, f"line {line} has {len(fields)} column(s), expected {len(header)}")
            study = fields[si].strip("/").replace("\\", "/")
            if study in seen:
                raise DatasetError(labels, f"line {line}: study {study!r} is listed again (line {seen[study]})")
            seen[study] = line
            folder = base / study
            if not folder.is_dir():
                raise DatasetError(labels, f"line {line}: study folder {folder} does not exist")
            label = parse_label(fields[li], labels, line)
            group = fields[pi] if pi is not None and fields[pi] else study
            series: dict[str, list[Any]] = defaultdict(list)
            for path in candidate_files(folder):
                try:
                    src = open_dicom(path)
                except (NoPixelDataError, UnsupportedImageError) as exc:
                    self.skipped.append((path, str(exc)))
                    continue
                series[src.series_key].append(src)
            if not series:
                raise DatasetError(folder, f"no DICOM image in study {study!r} (labels line {line})")
            unit = 0
            for srcs in series.values():
                single = [s for s in srcs if s.n_frames == 1]
                multi = [s for s in srcs if s.n_frames > 1]
                for s in multi:
                    frames = central_indices(s.n_frames, self.slices)
                    items.append(self._item(study, unit, label, group, [s.path], "multiframe", frames, s))
                    unit += 1
                if single and single[0].modality in VOLUME_MODALITIES and len(single) > 1:
                    order = slice_order([s.position for s in single], [s.instance_number for s in single],
                                        [str(s.path) for s in single])
                    chosen = [single[order[i]] for i in central_indices(len(order), self.slices)]
                    items.append(self._item(study, unit, label, group, [s.path for s in chosen], "volume",
                                            [0] * len(chosen), single[0], n=len(single)))
                    unit += 1
                else:
                    for s in single:
                        items.append(self._item(study, unit, label, group, [s.path], "image", [0], s))
                        unit += 1
        if not items:
            raise DatasetError(labels, "no labelled studies")
        super().__init__(base, items)

    @staticmethod
    def _item(study: str, unit: int, label: int, group: str, paths: list[Path], what: str, frames: list[int],
              src: Any, n: int | None = None) -> Item:
        meta = {"study": study, "unit": what, "modality": src.modality, "body_part": src.body_part,
                "frames": frames, "n_slices": n if n is not None else src.n_frames}
        return Item(key=f"{study}#{unit}", label=label, group=group, paths=tuple(paths), meta=meta)

    def _load(self, item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        from engine.imaging.reader import decode_frame, open_dicom

        images = []
        if item.meta["unit"] == "multiframe":
            src = open_dicom(item.paths[0])
            images = [to_gray(decode_frame(src, i)) for i in item.meta["frames"]]
        else:
            images = [to_gray(decode_frame(open_dicom(p), 0)) for p in item.paths]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise CorruptSampleError(item.paths[0], f"slices of one volume differ in size: {sorted(shapes)}")
        if item.meta["unit"] == "image":
            return images[0], {}
        return np.stack(images), {}
