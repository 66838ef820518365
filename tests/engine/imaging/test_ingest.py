from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.imaging.events import IngestRequest
from engine.imaging.exceptions import EmbeddingStoreError, InvalidAthleteId
from engine.imaging.ingest import ingest_paths, ingest_request
from engine.imaging.pixels import letterbox
from engine.imaging.reader import decode_frame, open_dicom
from engine.imaging.store import RedisEmbeddingStore, load_embedding
from engine.imaging.synthetic import render_radiograph
from stream.embedded import free_port


def test_folder_with_bad_files_still_ingests_the_rest(dicom_folder, real_dicom, sync_redis, imaging_encoder, caplog):
    half = real_dicom("RG3_J2KI.dcm").read_bytes()
    folder = dicom_folder(
        "inbox", "RG3_UNCI.dcm", "MR2_UNCI.dcm", "rtplan.dcm", "MR_small_jpeg_ls_lossless.dcm",
        extra={"notes.txt": b"radiology notes, not an image\n", "cut.dcm": half[: len(half) // 2], ".DS_Store": b"\0\0"},
    )
    report = ingest_paths([folder], "ath-1", store=RedisEmbeddingStore(sync_redis), encoder=imaging_encoder)

    by_name = {f.path.name: f for f in report.files}
    assert ".DS_Store" not in by_name                                    # hidden files are not read
    assert {n for n, f in by_name.items() if f.status == "embedded"} == {"RG3_UNCI.dcm", "MR2_UNCI.dcm"}
    codes = {n: f.code for n, f in by_name.items() if f.status == "refused"}
    assert codes == {"notes.txt": "not_dicom", "cut.dcm": "truncated", "rtplan.dcm": "no_pixel_data",
                     "MR_small_jpeg_ls_lossless.dcm": "unsupported_transfer_syntax"}
    for name in codes:
        assert str(folder / name) in by_name[name].reason                 # every message names its file
        assert str(folder / name) in caplog.text
    assert "JPEG-LS Lossless Image Compression" in by_name["MR_small_jpeg_ls_lossless.dcm"].reason

    assert len(report.studies) == 2 and report.images == 2 and len(report.events) == 2
    stored, meta = load_embedding(sync_redis, imaging_encoder.version, "ath-1")
    # same study date: the study ingested last is the primary one
    assert meta.study_uid_sha256 == report.studies[-1].meta.study_uid_sha256
    assert {s.meta.modality for s in report.studies} == {"CR", "MR"}
    assert np.allclose(stored.pooled, report.studies[-1].features.pooled, rtol=1e-2, atol=0.05)
    assert [e.primary for e in report.events] == [True, True]
    assert "2 study(ies) embedded" in report.summary() and any("refused" in line for line in report.lines())


def _mr_volume(folder: Path, src: Path, n: int = 7) -> list[Path]:
    """n single-frame MR slices of one series (copies of MR_small), written in shuffled name order."""
    base = pydicom.dcmread(src)
    paths = []
    for i in range(n):
        ds = base.copy()
        ds.SOPInstanceUID = f"{base.SOPInstanceUID}.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-83.9, -91.2, 5.0 * i]
        arr = ds.pixel_array.copy()
        arr[i, :] = arr.max()  # make slices tell apart
        ds.PixelData = arr.tobytes()
        path = folder / f"slice_{(i * 5) % n}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def test_volume_embeds_central_slices_and_falls_back(tmp_path, real_dicom, imaging_encoder):
    slices = _mr_volume(tmp_path, real_dicom("MR_small.dcm"))
    centre = pydicom.dcmread(slices[3])  # blank the central slice: the next ones out replace it
    centre.PixelData = np.zeros((64, 64), np.int16).tobytes()
    centre.save_as(slices[3])
    slices[0].write_bytes(slices[0].read_bytes()[:3000])  # an outer slice is truncated

    report = ingest_paths([tmp_path], "ath-2", store=None, encoder=imaging_encoder)
    status = {slices.index(f.path) + 1: f.status for f in report.files}  # by InstanceNumber
    assert status == {1: "refused", 2: "skipped", 3: "embedded", 4: "refused", 5: "embedded", 6: "embedded", 7: "skipped"}
    refused = {f.path: f for f in report.files if f.status == "refused"}
    assert refused[slices[3]].code == "unsupported_image" and "blank" in refused[slices[3]].reason
    assert refused[slices[0]].code == "truncated"
    (study,) = report.studies
    assert (study.meta.n_images, study.meta.n_instances, study.meta.modality) == (3, 3, "MR")
    assert study.meta.slice_policy == "central3-mean"


def test_study_embedding_is_the_mean_of_its_images(tmp_path, real_dicom, imaging_encoder):
    a = render_radiograph(tmp_path / "ap.dcm", seed=1, size=128, study_seed=5)
    b = render_radiograph(tmp_path / "lat.dcm", seed=2, size=128, study_seed=5)
    emri = real_dicom("emri_small.dcm")
    report = ingest_paths([a, b, emri], "ath-3", store=None, encoder=imaging_encoder)
    studies = {s.meta.modality: s for s in report.studies}
    assert set(studies) == {"CR", "MR"}
    cr = studies["CR"].meta
    assert (cr.n_images, cr.n_instances, cr.body_part, str(cr.study_date)) == (2, 2, "KNEE", "2024-01-15")
    assert studies["MR"].meta.n_images == 3 and {f.path.name: f.images for f in report.files}["emri_small.dcm"] == 3
    direct = imaging_encoder.encode(np.stack([letterbox(decode_frame(open_dicom(p), 0)) for p in (a, b)]))
    assert np.allclose(studies["CR"].features.pooled, direct[0].mean(axis=0), rtol=1e-4, atol=1e-4)
    assert np.allclose(studies["CR"].features.regions, direct[1].mean(axis=0), rtol=1e-4, atol=1e-4)


def test_ingest_request_is_confined_to_allowed_roots(tmp_path, imaging_encoder):
    root = tmp_path / "shared"
    inside = render_radiograph(root / "in.dcm", seed=3, size=64)
    outside = render_radiograph(tmp_path / "elsewhere" / "out.dcm", seed=4, size=64)
    req = IngestRequest(athlete_id="ath-4", paths=[str(inside), str(outside), str(root / ".." / "elsewhere")])
    report = ingest_request(req, allowed_roots=[root], store=None, encoder=imaging_encoder)
    assert [f.status for f in report.files if f.path.name == "in.dcm"] == ["embedded"]
    refused = [f for f in report.files if f.status == "refused"]
    assert len(refused) == 2 and all(f.code == "outside_roots" for f in refused)


def test_bad_athlete_ids_missing_paths_and_store_failures(tmp_path, imaging_encoder):
    with pytest.raises(InvalidAthleteId):
        ingest_paths([], "Jane Doe", store=None, encoder=imaging_encoder)
    report = ingest_paths([tmp_path / "nope"], "ath-5", store=None, encoder=imaging_encoder)
    assert report.files[0].code == "not_found" and not report.ok
    path = render_radiograph(tmp_path / "x.dcm", seed=5, size=64)
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0))
    with pytest.raises(EmbeddingStoreError, match="Redis unavailable"):
        ingest_paths([path], "ath-5", store=RedisEmbeddingStore(dead), encoder=imaging_encoder)
