"""Ingest: DICOM files or folders -> de-identified ResNet50 study embeddings in Redis.

``ingest_paths(paths, athlete_id, store=..., encoder=...)`` is what ``injury-monitor
embed --athlete ID PATH...`` runs. Per file it reports ``embedded`` (its pixels were
used), ``skipped`` (a slice of an embedded volume that the slice policy did not pick)
or ``refused`` (with the error code and a message naming the file). A bad file never
stops the others.

Per study (grouped by a keyed hash of the Study Instance UID) it stores one embedding:
the mean over the study's units (see :mod:`engine.imaging.slices`), with de-identified
:class:`StudyMeta`, through the store's policy, and returns a :class:`StudyEvent` for
each stored study (publish them on ``imaging.studies`` so workers drop their cache).

Raw pixels live only in this process, as 224 x 224 display images, and are dropped once
encoded: nothing with pixels is stored or published.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from engine.features import ImageFeatures
from engine.imaging import pixels
from engine.imaging.encoder import INPUT_SIZE, ResNet50Encoder
from engine.imaging.events import IngestRequest, StudyEvent, build_study_event
from engine.imaging.exceptions import ImagingError
from engine.imaging.meta import StudyMeta
from engine.imaging.reader import DEFAULT_MODALITIES, SourceImage, decode_frame, open_dicom
from engine.imaging.slices import (
    CENTRAL_SLICES,
    VOLUME_MODALITIES,
    center_out,
    mean_features,
    policy_name,
    slice_order,
)
from engine.imaging.store import StoreResult, check_athlete_id

log = logging.getLogger(__name__)

Status = Literal["embedded", "skipped", "refused"]
FLUSH_IMAGES = 32


class EmbeddingStore(Protocol):
    def put(self, athlete_id: str, features: ImageFeatures, meta: StudyMeta) -> StoreResult: ...


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file."""

    path: Path
    status: Status
    code: str | None = None       # refusal code (ImagingError.code), e.g. "truncated"
    reason: str | None = None     # message naming the file
    modality: str | None = None
    images: int = 0               # frames or slices of this file that were embedded
    study: str | None = None      # first 12 hex digits of the study hash

    def line(self) -> str:
        if self.status == "refused":
            return f"refused  {self.reason}"
        what = f"{self.modality}, {self.images} image(s)" if self.status == "embedded" else "not a central slice"
        return f"{self.status:<8} {self.path} ({what}, study {self.study})"


@dataclass
class StudyResult:
    """One study's embedding, its metadata, and what the store did with it."""

    meta: StudyMeta
    features: ImageFeatures
    stored: StoreResult | None = None
    event: StudyEvent | None = None


@dataclass
class IngestReport:
    athlete_id: str
    encoder_version: str
    files: list[FileOutcome] = field(default_factory=list)
    studies: list[StudyResult] = field(default_factory=list)
    seconds: float = 0.0
    decode_seconds: float = 0.0
    encode_seconds: float = 0.0
    store_seconds: float = 0.0

    @property
    def embedded(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "embedded"]

    @property
    def refused(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "refused"]

    @property
    def skipped(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def images(self) -> int:
        return sum(f.images for f in self.files)

    @property
    def events(self) -> list[StudyEvent]:
        return [s.event for s in self.studies if s.event is not None]

    @property
    def ok(self) -> bool:
        """At least one study embedded."""
        return bool(self.studies)

    def summary(self) -> str:
        return (
            f"athlete {self.athlete_id}: {len(self.studies)} study(ies) embedded with {self.encoder_version} "
            f"from {len(self.embedded)} file(s), {self.images} image(s); {len(self.refused)} refused, "
            f"{len(self.skipped)} skipped; {self.seconds:.2f} s"
        )

    def lines(self) -> list[str]:
        """One line per file, then one per study, then the summary (for the CLI)."""
        out = [f.line() for f in self.files]
        for s in self.studies:
            where = "" if s.stored is None else f" -> {s.stored.key}" + (" (primary)" if s.stored.primary else "")
            out.append(
                f"study    {s.meta.study_uid_sha256[:12]} {s.meta.modality} {s.meta.body_part} "
                f"{s.meta.study_date or 'no date'}: {s.meta.n_images} image(s){where}"
            )
        out.append(self.summary())
        return out


# ---------------------------------------------------------------- planning


@dataclass
class _Unit:
    """Images that are embedded and averaged together: one file, or a volume of files."""

    study: str
    sources: list[SourceImage]
    want: int                      # images to embed
    volume: bool                   # True: candidates are files; False: frames of one file
    images: list[int] = field(default_factory=list)     # index into the pending batch
    used: dict[Path, int] = field(default_factory=dict)  # file -> images embedded


def expand(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileOutcome]]:
    """Files to read (folders walked recursively, hidden names skipped) and missing paths."""
    files: list[Path] = []
    missing: list[FileOutcome] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            found = [p]
        else:
            missing.append(FileOutcome(p, "refused", "not_found", f"{p}: no such file or folder"))
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, missing


def plan_units(sources: Sequence[SourceImage], k: int) -> list[_Unit]:
    """Group sources into units per the slice policy (volumes, multi-frame files, images)."""
    units: list[_Unit] = []
    volumes: dict[tuple, list[SourceImage]] = defaultdict(list)
    for src in sources:
        if src.n_frames > 1:
            units.append(_Unit(src.study_key, [src], min(k, src.n_frames), volume=False))
        elif src.modality in VOLUME_MODALITIES:
            volumes[(src.study_key, src.series_key, src.modality, src.rows, src.cols)].append(src)
        else:
            units.append(_Unit(src.study_key, [src], 1, volume=False))
    for members in volumes.values():
        order = slice_order(
            [m.position for m in members], [m.instance_number for m in members], [str(m.path) for m in members]
        )
        ordered = [members[i] for i in order]
        units.append(_Unit(ordered[0].study_key, ordered, min(k, len(ordered)), volume=True))
    return units


def _combined_hash(hashes: Iterable[str]) -> str:
    items = sorted(set(hashes))
    if len(items) == 1:
        return items[0]
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def _most_common(values: Sequence[str], skip: str | None = None) -> str | None:
    counted = Counter(v for v in values if v != skip)
    return counted.most_common(1)[0][0] if counted else None


# ---------------------------------------------------------------- ingest


def ingest_paths(
    paths: Iterable[str | Path],
    athlete_id: str,
    *,
    store: EmbeddingStore | None,
    encoder: ResNet50Encoder,
    uid_key: bytes | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    slices: int = CENTRAL_SLICES,
    clock: Callable[[], float] = time.time,
) -> IngestReport:
    """Embed DICOM files and folders for one athlete; store each study (unless ``store`` is None).

    ``uid_key``: secret for keyed UID hashes (HMAC-SHA-256); without it plain SHA-256.
    Raises only for a bad athlete id or a store failure (EmbeddingStoreError); every
    per-file problem becomes a refused :class:`FileOutcome`.
    """
    check_athlete_id(athlete_id)
    t_start = time.perf_counter()
    report = IngestReport(athlete_id=athlete_id, encoder_version=encoder.version)
    files, missing = expand(paths)
    outcomes: dict[Path, FileOutcome] = {}
    for m in missing:
        log.warning("refused %s", m.reason)
        outcomes[m.path] = m

    def refuse(path: Path, err: ImagingError) -> None:
        log.warning("refused %s [%s]", err, err.code)
        outcomes[path] = FileOutcome(path, "refused", err.code, str(err))

    # 1. read, check, de-identify (pixels stay on disk)
    t0 = time.perf_counter()
    sources: list[SourceImage] = []
    for path in files:
        try:
            sources.append(open_dicom(path, uid_key=uid_key, modalities=modalities))
        except ImagingError as err:
            refuse(path, err)
    units = plan_units(sources, max(1, slices))

    # 2. decode the chosen frames/slices to 224 x 224, encode in batches
    pending: list[np.ndarray] = []
    pooled_all: list[np.ndarray] = []
    regions_all: list[np.ndarray] = []
    decode_s = time.perf_counter() - t0
    encode_s = 0.0

    def flush() -> None:
        nonlocal encode_s
        if not pending:
            return
        t = time.perf_counter()
        p, r = encoder.encode(np.stack(pending))
        encode_s += time.perf_counter() - t
        pooled_all.extend(p)
        regions_all.extend(r)
        pending.clear()

    for unit in units:
        t = time.perf_counter()
        if unit.volume:
            for i in center_out(len(unit.sources)):
                if len(unit.images) >= unit.want:
                    break
                src = unit.sources[i]
                try:
                    img = decode_frame(src, 0)
                except ImagingError as err:
                    refuse(src.path, err)
                    continue
                pending.append(pixels.letterbox(img, INPUT_SIZE))
                unit.images.append(len(pooled_all) + len(pending) - 1)
                unit.used[src.path] = 1
        else:
            src = unit.sources[0]
            try:
                frames = sorted(center_out(src.n_frames)[: unit.want])
                imgs = [pixels.letterbox(decode_frame(src, i), INPUT_SIZE) for i in frames]
            except ImagingError as err:
                refuse(src.path, err)
                imgs = []
            for img in imgs:
                pending.append(img)
                unit.images.append(len(pooled_all) + len(pending) - 1)
            if imgs:
                unit.used[src.path] = len(imgs)
        decode_s += time.perf_counter() - t
        if len(pending) >= FLUSH_IMAGES:
            flush()
    flush()

    # 3. pool per unit, then per study; record file outcomes
    by_study: dict[str, list[_Unit]] = defaultdict(list)
    for unit in units:
        for src in unit.sources:
            if src.path in outcomes:
                continue
            n = unit.used.get(src.path, 0)
            status: Status = "embedded" if n else "skipped"
            outcomes[src.path] = FileOutcome(src.path, status, modality=src.modality, images=n, study=src.study_key[:12])
        if unit.images:
            by_study[unit.study].append(unit)

    results: list[StudyResult] = []
    for study_key, study_units in by_study.items():
        unit_means = [
            mean_features([pooled_all[i] for i in u.images], [regions_all[i] for i in u.images]) for u in study_units
        ]
        pooled, regions = mean_features([m[0] for m in unit_means], [m[1] for m in unit_means])
        used = [s for u in study_units for s in u.sources if s.path in u.used]
        dates = [s.study_date for s in used if s.study_date is not None]
        meta = StudyMeta(
            study_uid_sha256=study_key,
            sop_uid_sha256=_combined_hash(s.sop_key for s in used),
            study_date=max(dates) if dates else None,
            body_part=_most_common([s.body_part for s in used], skip="UNKNOWN") or "UNKNOWN",
            modality=_most_common([s.modality for s in used]) or "OT",
            n_instances=len(used),
            n_images=sum(len(u.images) for u in study_units),
            slice_policy=policy_name(max(1, slices)),
            encoder_version=encoder.version,
            ingested_at=clock(),
        )
        feats = ImageFeatures(pooled=pooled, regions=regions, encoder_version=encoder.version)
        results.append(StudyResult(meta=meta, features=feats))

    # 4. store, oldest study first, and build the events
    t = time.perf_counter()
    for result in sorted(results, key=lambda r: r.meta.rank()):
        if store is not None:
            result.stored = store.put(athlete_id, result.features, result.meta)
            result.event = build_study_event(athlete_id, result.meta, primary=result.stored.primary)
            log.info(
                "stored study %s (%s %s, %d image(s)) for athlete %s at %s%s",
                result.meta.study_uid_sha256[:12], result.meta.modality, result.meta.body_part,
                result.meta.n_images, athlete_id, result.stored.key, " (primary)" if result.stored.primary else "",
            )
        report.studies.append(result)
    report.store_seconds = time.perf_counter() - t
    report.files = [outcomes[p] for p in [m.path for m in missing] + files if p in outcomes]
    report.decode_seconds = decode_s
    report.encode_seconds = encode_s
    report.seconds = time.perf_counter() - t_start
    log.info("%s", report.summary())
    return report


def ingest_request(
    request: IngestRequest,
    *,
    allowed_roots: Sequence[str | Path],
    store: EmbeddingStore | None,
    encoder: ResNet50Encoder,
    **kwargs: object,
) -> IngestReport:
    """Run an :class:`IngestRequest` from ``imaging.studies``; paths must lie under ``allowed_roots``.

    A path outside every root (after resolving symlinks and ``..``) is refused, so a
    message cannot make the service read arbitrary files.
    """
    roots = [Path(r).resolve() for r in allowed_roots]
    inside: list[Path] = []
    refused: list[FileOutcome] = []
    for raw in request.paths:
        p = Path(raw).resolve()
        if any(p == r or r in p.parents for r in roots):
            inside.append(p)
        else:
            refused.append(FileOutcome(Path(raw), "refused", "outside_roots", f"{raw}: outside the allowed ingest folders"))
    for r in refused:
        log.warning("refused %s", r.reason)
    report = ingest_paths(inside, request.athlete_id, store=store, encoder=encoder, **kwargs)  # type: ignore[arg-type]
    report.files = refused + report.files
    return report
