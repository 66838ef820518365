"""Errors of the data layer (recordings and real-format loaders). Every message names the file."""

from __future__ import annotations

from pathlib import Path

from engine.exceptions import EngineError


class DataError(EngineError):
    """Base of the data errors: ``f"{path}: {detail}"`` (or ``detail`` alone without a path)."""

    def __init__(self, path: str | Path | None, detail: str) -> None:
        self.path = None if path is None else str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail}" if self.path is not None else detail)


class RecordingError(DataError):
    """A sensor recording is corrupt, unsupported, or does not fit the channel list."""


class DatasetError(DataError):
    """A data set's layout or labels are wrong (missing files, bad CSV rows, unknown task)."""


class CorruptSampleError(DatasetError):
    """One image / volume of a data set cannot be decoded."""


class DatasetSpecError(DataError):
    """A ``kind:path?options`` data set spec cannot be parsed."""
