"""De-identified study metadata stored next to an embedding (JSON in the Redis hash).

Only these fields exist; each is a code string, a date, a count, a keyed hash or a clock
value. ``extra="forbid"`` keeps anything else (a name, a raw UID) from slipping in.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
CodeString = Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,16}$")]


class StudyMeta(BaseModel):
    """What is known about the study an embedding came from, with no patient identity."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="StudyMeta")

    study_uid_sha256: Sha256Hex = Field(description="Hash of the Study Instance UID (keyed if a key was given).")
    sop_uid_sha256: Sha256Hex = Field(
        description=(
            "Hash of the source image's SOP Instance UID; for several instances, "
            "SHA-256 of their sorted hashes joined by newlines."
        )
    )
    study_date: date | None = Field(None, description="Study Date (retained under the full-dates option), day only.")
    body_part: CodeString = Field("UNKNOWN", description="Body Part Examined (code string), UNKNOWN if absent.")
    modality: CodeString = Field(description="Modality of the images used (CR, DX, CT, MR, US, ...).")
    n_instances: int = Field(ge=1, description="DICOM instances (files) that contributed images.")
    n_images: int = Field(ge=1, description="Images (frames or slices) embedded and pooled.")
    slice_policy: str = Field(description="How frames were chosen and pooled, e.g. central3-mean.")
    encoder_version: str
    ingested_at: float = Field(description="Wall clock of ingest (epoch s).")

    def rank(self) -> tuple[str, float]:
        """Order of recency: study date (missing = oldest), then ingest time."""
        return (self.study_date.isoformat() if self.study_date else "", self.ingested_at)
