"""Errors of the imaging pipeline. Every message names the file it is about.

Each class carries a short machine-readable ``code`` (used in ingest reports and in the
outcome table of ``docs/imaging.md``) and the ``path`` of the offending file, if any.
"""

from __future__ import annotations

from pathlib import Path

from engine.exceptions import EngineError


class ImagingError(EngineError):
    """Base of the imaging errors: ``f"{path}: {detail}"``."""

    code = "imaging_error"

    def __init__(self, path: str | Path | None, detail: str) -> None:
        self.path = None if path is None else Path(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail}" if self.path is not None else detail)


class NotDicomError(ImagingError):
    """The file is not DICOM at all (no 'DICM' prefix and no readable data set)."""

    code = "not_dicom"


class TruncatedFileError(ImagingError):
    """The file ends inside an element: cut short in transfer or on disk."""

    code = "truncated"


class NoPixelDataError(ImagingError):
    """A DICOM object without an image (RT plan, structured report, waveform, ...)."""

    code = "no_pixel_data"


class UnsupportedTransferSyntaxError(ImagingError):
    """Compressed pixel data that no installed decoder can read; names the syntax."""

    code = "unsupported_transfer_syntax"

    def __init__(self, path: str | Path | None, transfer_syntax_name: str, uid: str, detail: str) -> None:
        self.transfer_syntax_name = transfer_syntax_name
        self.transfer_syntax_uid = uid
        super().__init__(path, f"transfer syntax '{transfer_syntax_name}' ({uid}) {detail}")


class UnsupportedImageError(ImagingError):
    """A readable image this pipeline refuses on purpose (modality, colour model, size, ...)."""

    code = "unsupported_image"


class CorruptPixelDataError(ImagingError):
    """Pixel data that is present but cannot be decoded or is inconsistent with its header."""

    code = "corrupt_pixel_data"


class EncoderError(ImagingError):
    """The ResNet50 encoder cannot be built (bad checkpoint file, ...)."""

    code = "encoder_error"


class EmbeddingStoreError(ImagingError):
    """Redis refused or could not be reached while storing an embedding."""

    code = "store_error"


class InvalidAthleteId(ImagingError):
    """The pseudonymous athlete id does not match the id pattern of the contracts."""

    code = "invalid_athlete_id"


class BadEmbeddingRecord(ImagingError):
    """A stored embedding record is corrupt or was written by another encoder."""

    code = "bad_embedding_record"


class CorruptFileError(ImagingError):
    """A DICOM file whose header cannot be parsed."""

    code = "corrupt_file"
