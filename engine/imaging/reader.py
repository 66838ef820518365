"""Read one DICOM file: check it, de-identify it, decode chosen frames to display values.

:func:`open_dicom` reads the header (pixel data stays on disk, deferred), refuses what the
pipeline cannot or should not embed with a specific :class:`ImagingError`, keys the UIDs
it needs into hashes and then de-identifies the data set in place. :func:`decode_frame`
decodes one frame and maps it to [0, 1] (see :mod:`engine.imaging.pixels`).

Checks, in order (each failure names the file):

1. not DICOM: empty, no ``DICM`` prefix and no plausible data set -> ``not_dicom``;
2. the file ends inside an element or the parser stopped short -> ``truncated``;
3. no Pixel Data / Float Pixel Data -> ``no_pixel_data`` (with the SOP class);
4. compressed pixel data that no installed plugin decodes -> ``unsupported_transfer_syntax``
   (with its name and UID);
5. an object that is not an embeddable picture (segmentation, dose grid, 1-bit, a colour
   model other than MONOCHROME1/2, RGB, YBR_* or PALETTE COLOR, smaller than 32 pixels,
   a modality not accepted) -> ``unsupported_image``.

pydicom's own warnings can quote element values, so the reader silences warnings while
it parses and redacts quoted values in records of the ``pydicom`` logger.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.imaging import pixels
from engine.imaging.deid import code_string, deidentify, uid_hash
from engine.imaging.exceptions import (
    CorruptFileError,
    CorruptPixelDataError,
    NoPixelDataError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
)
from engine.imaging.slices import slice_position

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

DEFAULT_MODALITIES: tuple[str, ...] = ("CR", "DX", "CT", "MR", "US", "MG", "RF", "XA", "PT", "NM", "OT")
MIN_SIDE = 32
DEFER_SIZE = 4096
UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
PHOTOMETRIC = frozenset({
    "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR",
})
NOT_PICTURES = {
    "SEG": "a segmentation (label masks), not an image",
    "RTDOSE": "a radiotherapy dose grid, not an image",
    "RTSTRUCT": "radiotherapy structures, not an image",
    "RTPLAN": "a radiotherapy plan, not an image",
    "SR": "a structured report, not an image",
    "PR": "a presentation state, not an image",
    "KO": "a key object selection, not an image",
}
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
DEFLATED = "1.2.840.10008.1.2.1.99"


class _RedactValues(logging.Filter):
    """Replace quoted values in pydicom's log records by <redacted> (they may be PHI)."""

    _quoted = re.compile(r"'[^']*'|\"[^\"]*\"")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: drop its arguments
            message = str(record.msg)
        record.msg = self._quoted.sub("<redacted>", message)
        record.args = None
        return True


def _install_redaction() -> None:
    log = logging.getLogger("pydicom")
    if not any(isinstance(f, _RedactValues) for f in log.filters):
        log.addFilter(_RedactValues())


_install_redaction()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class SourceImage:
    """A checked, de-identified DICOM image whose pixels are still on disk."""

    path: Path
    dataset: Dataset
    modality: str
    sop_class: str
    transfer_syntax: str
    photometric: str
    rows: int
    cols: int
    n_frames: int
    samples: int
    bits_stored: int
    study_key: str
    series_key: str
    sop_key: str
    study_date: date | None
    body_part: str
    instance_number: int | None
    position: float | None


def decodable_transfer_syntaxes() -> list[tuple[str, str, str]]:
    """(name, UID, how) for every transfer syntax the installed plugins can decode."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import AllTransferSyntaxes, UID

    out = []
    for value in AllTransferSyntaxes:
        uid = UID(value)
        if not uid.is_compressed:
            out.append((uid.name, str(uid), "numpy (native)"))
            continue
        try:
            dec = get_decoder(uid)
        except NotImplementedError:
            continue
        if dec.is_available:
            out.append((uid.name, str(uid), ", ".join(dec.available_plugins)))
    return out


def undecodable_transfer_syntaxes() -> list[tuple[str, str, str]]:
    """(name, UID, what would decode it) for the syntaxes refused here."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import AllTransferSyntaxes, UID

    out = []
    for value in AllTransferSyntaxes:
        uid = UID(value)
        if not uid.is_compressed:
            continue
        try:
            dec = get_decoder(uid)
        except NotImplementedError:
            out.append((uid.name, str(uid), "no pydicom decoder"))
            continue
        if not dec.is_available:
            out.append((uid.name, str(uid), "; ".join(dec.missing_dependencies)))
    return out


# ---------------------------------------------------------------- reading and checks


def _read(path: Path, size: int) -> tuple[Dataset, bool, int]:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    with open(path, "rb") as fp, _quiet():
        try:
            ds = dcmread(fp, defer_size=DEFER_SIZE)
            strict = True
        except InvalidDicomError:
            fp.seek(0)
            try:
                ds = dcmread(fp, defer_size=DEFER_SIZE, force=True)
            except Exception:
                raise NotDicomError(path, "not a DICOM file (no 'DICM' prefix and no readable data set)") from None
            strict = False
        except EOFError:
            raise TruncatedFileError(path, f"file ends inside its header ({size} bytes)") from None
        except Exception as exc:
            raise CorruptFileError(path, f"DICOM header cannot be parsed ({type(exc).__name__})") from None
        stop = fp.tell()
    return ds, strict, stop


def _element_ends(ds: Dataset) -> list[tuple[int, int | None]]:
    """(tag, end offset or None) of each top-level element, in file order."""
    from pydicom.dataelem import RawDataElement

    out: list[tuple[int, int | None]] = []
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.length != UNDEFINED_LENGTH and raw.value_tell is not None:
            out.append((int(tag), raw.value_tell + raw.length))
        else:
            out.append((int(tag), None))
    return out


def _plausible_dataset(ds: Dataset, size: int, stop: int) -> bool:
    """Is a data set read without a 'DICM' prefix a real one (not text parsed as tags)?"""
    from pydicom.datadict import dictionary_has_tag

    tags = [int(t) for t in ds.keys()]
    if len(tags) < 3 or stop > size or (tags[0] >> 16) > 0x0010:
        return False
    if any(end is not None and end > size for _, end in _element_ends(ds)):
        return False
    even = [t for t in tags if (t >> 16) % 2 == 0]
    return bool(even) and sum(dictionary_has_tag(t) for t in even) / len(even) >= 0.5


def _has_pixels(ds: Dataset) -> bool:
    return any(k in ds for k in PIXEL_KEYWORDS)


def _check_complete(path: Path, ds: Dataset, size: int, stop: int) -> None:
    if len(ds) == 0:
        raise TruncatedFileError(
            path,
            f"no data set could be read after the file meta information (stopped at byte {stop} of {size}): "
            "truncated or corrupt",
        )
    ends = _element_ends(ds)
    for tag, end in ends:
        if end is not None and end > size:
            raise TruncatedFileError(
                path, f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) needs bytes up to {end}, the file has {size}: truncated"
            )
    if stop > size:
        raise TruncatedFileError(path, f"file is truncated: its elements need {stop} bytes, the file has {size}")
    last_end = ends[-1][1]
    if last_end is None:
        last_end = stop
    if last_end < size and not _has_pixels(ds):
        raise TruncatedFileError(
            path, f"{size - last_end} bytes after the last complete element cannot be parsed: truncated or corrupt"
        )


def _transfer_syntax(ds: Dataset) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    ts = meta.get("TransferSyntaxUID")
    if ts:
        return UID(ts)
    implicit, little = ds.original_encoding
    guessed = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    meta.TransferSyntaxUID = guessed
    return UID(guessed)


def _check_transfer_syntax(path: Path, ds: Dataset, ts: Any) -> None:
    from pydicom.pixels.decoders.base import get_decoder

    if not ts.is_compressed:
        return
    name = ts.name if ts.is_transfer_syntax else "unknown transfer syntax"
    try:
        dec = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(path, name, str(ts), "has no decoder in pydicom") from None
    if not dec.is_available:
        missing = "; ".join(dec.missing_dependencies)
        raise UnsupportedTransferSyntaxError(
            path, name, str(ts), f"cannot be decoded with the installed packages (it needs one of: {missing})"
        )
    if str(ts) == JPEG_EXTENDED and int(ds.get("BitsStored", 8) or 8) > 8 and set(dec.available_plugins) == {"pillow"}:
        raise UnsupportedTransferSyntaxError(
            path, name, str(ts),
            "with 12-bit samples cannot be decoded by Pillow, the only installed plugin (install pylibjpeg-libjpeg)",
        )


def _sop_class_name(ds: Dataset) -> str:
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if not uid:
        return "unknown SOP class"
    name = UID(str(uid)).name
    return name if name != str(uid) else f"SOP class {uid}"


def _check_picture(path: Path, ds: Dataset, modality: str, modalities: Sequence[str], min_side: int) -> None:
    if modality in NOT_PICTURES:
        raise UnsupportedImageError(path, f"modality {modality}: {NOT_PICTURES[modality]}")
    if modality not in modalities:
        raise UnsupportedImageError(path, f"modality {modality} is not embedded (accepted: {', '.join(modalities)})")
    if int(ds.get("BitsAllocated", 0) or 0) == 1:
        raise UnsupportedImageError(path, "1-bit pixel data is a binary mask, not an image")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in PHOTOMETRIC:
        raise UnsupportedImageError(
            path,
            f"photometric interpretation {photometric or 'missing'} is not supported "
            f"(supported: {', '.join(sorted(PHOTOMETRIC))})",
        )
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples not in (1, 3):
        raise UnsupportedImageError(path, f"{samples} samples per pixel (1 or 3 supported)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows == 0 or cols == 0:
        raise CorruptPixelDataError(path, "Rows or Columns is missing or zero")
    if min(rows, cols) < min_side:
        raise UnsupportedImageError(path, f"image is {rows}x{cols}, smaller than the {min_side}-pixel minimum side")


def _study_date(value: object) -> date | None:
    text = str(value or "").strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _body_part(ds: Dataset) -> str:
    value = ds.get("BodyPartExamined")
    if value:
        return code_string(value)
    for item in ds.get("AnatomicRegionSequence", None) or []:
        if item.get("CodeMeaning"):
            return code_string(item.CodeMeaning)
    return "UNKNOWN"


def _floats(value: object) -> list[float] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, bytes, int, float)) else value
    try:
        return [float(v) for v in items]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def open_dicom(
    path: str | Path,
    *,
    uid_key: bytes | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    min_side: int = MIN_SIDE,
) -> SourceImage:
    """Read, check and de-identify one file; pixels are not decoded yet."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NotDicomError(path, f"cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise NotDicomError(path, "empty file")
    ds, strict, stop = _read(path, size)
    if not strict and not _plausible_dataset(ds, size, stop):
        raise NotDicomError(path, "not a DICOM file (no 'DICM' prefix and no readable data set)")
    ts = _transfer_syntax(ds)
    with _quiet():
        if str(ts) != DEFLATED:  # offsets of a deflated file refer to the inflated stream
            _check_complete(path, ds, size, stop)
        if not _has_pixels(ds):
            modality = code_string(ds.get("Modality"), default="")
            what = f"{_sop_class_name(ds)}" + (f", modality {modality}" if modality else "")
            raise NoPixelDataError(path, f"no pixel data: the object ({what}) holds no image")
        modality = code_string(ds.get("Modality"), default="OT")
        _check_picture(path, ds, modality, modalities, min_side)
        _check_transfer_syntax(path, ds, ts)

        study_uid = str(ds.get("StudyInstanceUID", "") or "")
        series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        # a file without UIDs still needs stable keys: fall back to its own path
        src = SourceImage(
            path=path,
            dataset=ds,
            modality=modality,
            sop_class=_sop_class_name(ds),
            transfer_syntax=ts.name if ts.is_transfer_syntax else str(ts),
            photometric=str(ds.PhotometricInterpretation).strip().upper(),
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            n_frames=max(1, _int_or_none(ds.get("NumberOfFrames")) or 1),
            samples=int(ds.get("SamplesPerPixel", 1) or 1),
            bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8),
            study_key=uid_hash(study_uid or f"file:{path.resolve()}", uid_key),
            series_key=uid_hash(series_uid or f"file:{path.resolve()}", uid_key),
            sop_key=uid_hash(sop_uid or f"file:{path.resolve()}", uid_key),
            study_date=_study_date(ds.get("StudyDate")),
            body_part=_body_part(ds),
            instance_number=_int_or_none(ds.get("InstanceNumber")),
            position=slice_position(_floats(ds.get("ImagePositionPatient")), _floats(ds.get("ImageOrientationPatient"))),
        )
        deidentify(ds)
    return src


# ---------------------------------------------------------------- decoding


def _functional(ds: Dataset, index: int, sequence: str, keyword: str) -> Any:
    """A value from the per-frame, then shared functional groups, then the top level."""
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and index < len(per_frame):
        groups.append(per_frame[index])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(sequence)
        if items and keyword in items[0]:
            return items[0][keyword].value
    return ds.get(keyword)


def _first(value: Any) -> float | None:
    vals = _floats(value)
    return vals[0] if vals else None


def _lut_from(ds: Dataset, sequence: str) -> pixels.Lut | None:
    from pydicom.pixels.processing import apply_modality_lut, apply_voi

    items = ds.get(sequence)
    if not items:
        return None
    desc = [int(v) for v in items[0].LUTDescriptor]
    n = desc[0] or 2**16
    first = desc[1]
    domain = np.arange(first, first + n, dtype=np.int64)
    table = apply_modality_lut(domain, ds) if sequence == "ModalityLUTSequence" else apply_voi(domain, ds, 0)
    return pixels.Lut(first_mapped=first, table=np.asarray(table, dtype=np.float64))


def gray_transform(src: SourceImage, index: int) -> pixels.GrayTransform:
    """The modality and VOI transforms of frame ``index`` (functional groups honoured)."""
    ds = src.dataset
    slope = _first(_functional(ds, index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first(_functional(ds, index, "PixelValueTransformationSequence", "RescaleIntercept"))
    center = _first(_functional(ds, index, "FrameVOILUTSequence", "WindowCenter"))
    width = _first(_functional(ds, index, "FrameVOILUTSequence", "WindowWidth"))
    function = _functional(ds, index, "FrameVOILUTSequence", "VOILUTFunction")
    window = None
    if center is not None and width is not None and width > 0:
        window = pixels.Window(center=center, width=width, function=str(function or "LINEAR").strip().upper())
    return pixels.GrayTransform(
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        modality_lut=_lut_from(ds, "ModalityLUTSequence"),
        window=window,
        voi_lut=_lut_from(ds, "VOILUTSequence"),
        invert=src.photometric == "MONOCHROME1",
    )


def _decode_error(src: SourceImage, exc: Exception) -> Exception:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines)
    if isinstance(exc, ValueError) and "less than expected" in text:
        return TruncatedFileError(src.path, "pixel data is shorter than its header says: the file is truncated")
    if isinstance(exc, RuntimeError) and "does not support" in text:
        return UnsupportedTransferSyntaxError(
            src.path, src.transfer_syntax, str(src.dataset.file_meta.TransferSyntaxUID),
            f"could not be decoded by the installed plugins ({lines[-1][:200]})",
        )
    if isinstance(exc, RuntimeError) and len(lines) > 1:
        return CorruptPixelDataError(
            src.path,
            f"{src.transfer_syntax} pixel data could not be decoded by the installed plugins "
            f"({'; '.join(lines[1:])[:200]})",
        )
    return CorruptPixelDataError(src.path, f"pixel data cannot be decoded ({type(exc).__name__}: {text[:200]})")


def palette_to_rgb(arr: np.ndarray, ds: Dataset) -> tuple[np.ndarray, int]:
    """PALETTE COLOR indices -> (RGB array, nominal maximum). Big-endian tables handled.

    pydicom's ``apply_color_lut`` reads non-segmented OW tables as little-endian even in
    Explicit VR Big Endian files, so those are decoded here; segmented tables go to pydicom.
    """
    from pydicom.pixels.processing import apply_color_lut

    desc = [int(v) for v in ds.RedPaletteColorLookupTableDescriptor]
    n, first, bits = desc[0] or 2**16, desc[1], desc[2]
    max_value = 2 ** (16 if bits > 8 else 8) - 1
    if "RedPaletteColorLookupTableData" not in ds:
        return apply_color_lut(arr, ds), max_value
    little = bool(ds.original_encoding[1])
    if ds.file_meta.get("TransferSyntaxUID"):
        little = bool(ds.file_meta._tsyntax_encoding[1])
    tables = []
    for colour in ("Red", "Green", "Blue"):
        raw = bytes(ds[f"{colour}PaletteColorLookupTableData"].value)
        width = max(1, len(raw) // n)
        dtype = np.dtype("u1") if width == 1 else np.dtype("<u2" if little else ">u2")
        tables.append(np.frombuffer(raw, dtype=dtype, count=n))
    lut = np.stack(tables, axis=-1)
    idx = np.clip(arr.astype(np.int64) - first, 0, n - 1)
    return lut[idx], max_value


def decode_frame(src: SourceImage, index: int = 0) -> np.ndarray:
    """Frame ``index`` as float32 in [0, 1]: (H, W) grayscale or (H, W, 3) RGB, bone bright."""
    from pydicom.pixels import pixel_array

    if not 0 <= index < src.n_frames:
        raise ValueError(f"frame {index} of {src.n_frames}")
    ds = src.dataset
    with _quiet():
        try:
            arr = pixel_array(ds, index=index if src.n_frames > 1 else None)
        except Exception as exc:
            raise _decode_error(src, exc) from None
        try:
            if src.photometric == "PALETTE COLOR":
                rgb, max_value = palette_to_rgb(arr, ds)
                unit = pixels.color_to_unit(rgb, max_value)
            elif src.samples == 3:
                unit = pixels.color_to_unit(arr, 2 ** min(src.bits_stored, 32) - 1)
            else:
                unit = pixels.gray_to_unit(arr, gray_transform(src, index))
        except Exception as exc:
            raise CorruptPixelDataError(
                src.path, f"pixel values cannot be mapped for display ({type(exc).__name__}: {exc})"
            ) from None
    if unit.shape[:2] != (src.rows, src.cols):
        raise CorruptPixelDataError(src.path, f"decoded frame is {unit.shape[:2]}, header says {src.rows}x{src.cols}")
    if pixels.is_blank(unit):
        raise UnsupportedImageError(src.path, f"frame {index} is blank (every pixel has the same value)")
    return unit
