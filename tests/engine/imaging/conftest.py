"""Fixtures of the imaging tests: one encoder per session, real DICOM files, real Redis."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ENCODER = "resnet50-rand0-p0"


def _features(seed: int = 0, encoder: str = ENCODER, scale: float = 40.0):
    from engine.features import ImageFeatures

    rng = np.random.default_rng(seed)
    return ImageFeatures(
        pooled=(rng.random(2048) * scale).astype(np.float32),
        regions=rng.normal(0, scale / 4, (49, 64)).astype(np.float32),
        encoder_version=encoder,
    )


def _meta(encoder: str = ENCODER, **kw):
    from engine.imaging.meta import StudyMeta

    base = dict(study_uid_sha256="a" * 64, sop_uid_sha256="b" * 64, study_date="2024-01-15", body_part="KNEE",
                modality="CR", n_instances=1, n_images=1, slice_policy="central3-mean", encoder_version=encoder,
                ingested_at=1700000000.0)
    return StudyMeta(**{**base, **kw})


@pytest.fixture
def make_features():
    """``make_features(seed=0, encoder=..., scale=40.0) -> ImageFeatures`` with random values."""
    return _features


@pytest.fixture
def make_meta():
    """``make_meta(**overrides) -> StudyMeta`` (a KNEE CR study of 2024-01-15 by default)."""
    return _meta


@pytest.fixture(scope="session")
def imaging_encoder():
    """The default encoder (seeded random ResNet50), built once for the session."""
    from engine.imaging.encoder import ResNet50Encoder

    enc = ResNet50Encoder(batch_size=8)
    enc.trunk()
    return enc


@pytest.fixture(scope="session")
def real_dicom() -> Callable[[str], Path]:
    """``real_dicom("RG3_UNCI.dcm")`` -> path of a file shipped by pydicom or pydicom-data (no download)."""
    from pydicom.data import get_testdata_file

    def get(name: str) -> Path:
        path = get_testdata_file(name, download=False)
        if path is None:
            pytest.fail(f"{name} is not installed (pydicom-data missing?)")
        return Path(path)

    return get


@pytest.fixture
def dicom_folder(tmp_path: Path, real_dicom) -> Callable[..., Path]:
    """``dicom_folder(name, *real_names, synthetic=n, extra={file: bytes})`` -> a folder of copies."""

    def make(name: str, *real_names: str, synthetic: int = 0, extra: dict[str, bytes] | None = None, **kw) -> Path:
        from engine.imaging.synthetic import render_radiograph

        folder = tmp_path / name
        folder.mkdir()
        for real in real_names:
            shutil.copy(real_dicom(real), folder / real)
        for i in range(synthetic):
            render_radiograph(folder / f"synthetic{i}.dcm", seed=i, size=kw.get("size", 256))
        for fname, data in (extra or {}).items():
            (folder / fname).write_bytes(data)
        return folder

    return make


@pytest.fixture
def sync_redis(redis_url):
    """A sync redis-py client on the test's own Redis server."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
