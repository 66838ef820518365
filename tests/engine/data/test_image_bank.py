from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.exceptions import CorruptSampleError, DatasetError
from engine.data.image_bank import (
    BANK_GENERATOR_VERSION,
    PARTS,
    Augment,
    ImageBank,
    bank_image_spec,
    dataset_bank,
    encoder_input,
    lesion_probe_auroc,
    render_bank_image,
    stand_in_bank,
    synthetic_bank,
)
from engine.features import N_REGIONS, REGION_DIM


class PixelEncoder:
    """A cheap deterministic encoder of the bank's interface (counts its calls): the 7 x 7
    block means of the image, tiled to pooled (2048,) and regions (49, 64)."""

    version = "pixels-test-v1"

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = images.shape[0]
        self.encoded += n
        g = images[..., 0].reshape(n, 7, 32, 7, 32).mean(axis=(2, 4))  # (n, 7, 7)
        pooled = np.tile(g.reshape(n, 49), 42)[:, :2048].astype(np.float32)
        regions = np.repeat(g.reshape(n, 49, 1), REGION_DIM, axis=2).astype(np.float32)
        return pooled, regions


def test_bank_image_specs_are_pure_and_balanced() -> None:
    specs = [bank_image_spec(i) for i in range(32)]
    assert [s.has_lesion for s in specs] == [bool(i % 2) for i in range(32)]
    assert bank_image_spec(5) == specs[5]
    parts = [s.part for s in specs]
    for part in PARTS:  # every part holds normal and lesion images, pairs never straddle parts
        assert {s.has_lesion for s in specs if s.part == part} == {False, True}
    assert all(parts[2 * j] == parts[2 * j + 1] for j in range(16))
    assert parts.count("train") == 24 and parts.count("val") == parts.count("test") == 4
    assert all(s.augment.identity for s in specs if s.part != "train")
    assert not all(s.augment.identity for s in specs if s.part == "train")


def test_rendered_bank_image_is_a_real_12_bit_dicom(tmp_path: Path) -> None:
    import pydicom

    path = render_bank_image(3, tmp_path / "b.dcm", size=128)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "CR" and ds.BitsAllocated == 16 and ds.BitsStored == 12
    assert ds.pixel_array.shape == (128, 128) and ds.pixel_array.max() <= 4095
    x = encoder_input(path)
    assert x.shape == (224, 224, 3) and 0.0 <= x.min() and x.max() <= 1.0


def test_augment_flip_rotate_shift() -> None:
    img = np.zeros((40, 60), np.float32)
    img[10:20, 5:15] = 1.0
    assert Augment().apply(img) is img
    flipped = Augment(flip=True).apply(img)
    np.testing.assert_array_equal(flipped, img[:, ::-1])
    shifted = Augment(shift_x=0.1).apply(img)  # 6 px to the right
    np.testing.assert_allclose(shifted[10:20, 11:21], 1.0, atol=1e-6)
    rotated = Augment(rotate_deg=90.0).apply(np.ones((30, 30), np.float32))
    assert rotated.shape == (30, 30) and rotated.min() >= 0.0 and rotated.max() <= 1.0
    assert Augment.draw(np.random.default_rng(1)) == Augment.draw(np.random.default_rng(1))


def test_synthetic_bank_caches_and_grows(tmp_path: Path) -> None:
    enc = PixelEncoder()
    a = synthetic_bank(8, encoder=enc, cache_dir=tmp_path, size=96)
    assert enc.encoded == 8 and len(a) == 8 and a.build_s > 0
    assert a.pooled.shape == (8, 2048) and a.regions.shape == (8, N_REGIONS, REGION_DIM)
    assert a.encoder_version == enc.version and a.source == f"synthetic:{BANK_GENERATOR_VERSION}"
    files = sorted((tmp_path / enc.version / BANK_GENERATOR_VERSION).glob("*.npz"))
    assert len(files) == 8
    b = synthetic_bank(12, encoder=enc, cache_dir=tmp_path, size=96)
    assert enc.encoded == 12  # only the 4 new images were encoded
    np.testing.assert_array_equal(b.pooled[:8], a.pooled)
    c = synthetic_bank(8, encoder=enc, cache_dir=tmp_path, size=96)
    assert enc.encoded == 12 and c.build_s == 0.0
    files[0].write_bytes(b"torn")  # a corrupt cache entry is recomputed, not fatal
    d = synthetic_bank(8, encoder=enc, cache_dir=tmp_path, size=96)
    assert enc.encoded == 13
    np.testing.assert_allclose(d.pooled, a.pooled)
    with pytest.raises(ValueError, match="even"):
        synthetic_bank(7, encoder=enc, cache_dir=None)


def test_lesions_change_the_embedding_and_parts_draw_their_own_images(tmp_path: Path) -> None:
    bank = synthetic_bank(16, encoder=PixelEncoder(), cache_dir=None, size=96)
    rng = np.random.default_rng(0)
    want = np.array([True, False] * 20)
    for part in PARTS:
        idx = bank.draw(want, part, rng)
        assert (bank.lesion[idx] == want).all()
        assert (bank.part[idx] == PARTS.index(part)).all()
    mu, sd, rmu, rsd = bank.stats()
    assert mu.shape == (2048,) and rmu.shape == (REGION_DIM,) and (sd > 0).all() and (rsd > 0).all()
    f = bank.features(3)
    assert f.encoder_version == bank.encoder_version and f.pooled.shape == (2048,)
    probe = lesion_probe_auroc(bank)
    assert probe["n_train"] == 12 and probe["n_heldout"] == 4


def test_draw_names_a_missing_part() -> None:
    bank = ImageBank(pooled=np.zeros((2, 4), np.float32), regions=np.zeros((2, 49, 64), np.float32),
                     lesion=np.array([False, True]), part=np.array([0, 0], np.int8), encoder_version="e", source="s")
    with pytest.raises(DatasetError, match="test part"):
        bank.draw(np.array([True]), "test", np.random.default_rng(0))


def test_bank_features_equal_what_ingest_stores(tmp_path: Path) -> None:
    """A test-part bank image (no augmentation) embeds exactly as `injury-monitor embed` would."""
    from engine.imaging.encoder import ResNet50Encoder
    from engine.imaging.ingest import ingest_paths

    enc = ResNet50Encoder()
    index = next(i for i in range(16) if bank_image_spec(i).part == "test")
    bank = synthetic_bank(max(8, index + 1 + (index + 1) % 2), encoder=enc, cache_dir=tmp_path, size=128)
    path = render_bank_image(index, tmp_path / "study.dcm", size=128)
    report = ingest_paths([path], "ath-1", store=None, encoder=enc)
    assert report.ok
    np.testing.assert_allclose(report.studies[0].features.pooled, bank.pooled[index], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(report.studies[0].features.regions, bank.regions[index], rtol=1e-4, atol=1e-4)


def _mura(root: Path, patients: int, corrupt: bool = False) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    base = root / "MURA-v1.1"
    for p in range(patients):
        result = "positive" if p % 2 else "negative"
        d = base / "train" / "XR_WRIST" / f"patient{p:05d}" / f"study1_{result}"
        d.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8), "L").save(d / "image1.png")
    (base / "valid").mkdir(parents=True)
    if corrupt:
        (base / "train" / "XR_WRIST" / "patient00001" / "study1_positive" / "image1.png").write_bytes(b"not a png")
    return base


def test_dataset_bank_from_a_mura_folder(tmp_path: Path) -> None:
    root = _mura(tmp_path, 20)
    enc = PixelEncoder()
    bank = dataset_bank(f"mura:{root}?split=train", encoder=enc, cache_dir=tmp_path / "cache", seed=1)
    assert len(bank) == 20 and enc.encoded == 20
    assert set(bank.lesion.tolist()) == {False, True}
    for part in PARTS:
        assert {bool(v) for v in bank.lesion[bank.part == PARTS.index(part)]} == {False, True}
    again = dataset_bank(f"mura:{root}?split=train", encoder=enc, cache_dir=tmp_path / "cache", seed=1)
    assert enc.encoded == 20
    np.testing.assert_array_equal(again.pooled, bank.pooled)
    small = dataset_bank(f"mura:{root}?split=train", encoder=enc, cache_dir=None, seed=1, max_images=12)
    assert 10 <= len(small) <= 14


def test_dataset_bank_names_a_corrupt_file_and_a_one_class_part(tmp_path: Path) -> None:
    root = _mura(tmp_path / "a", 20, corrupt=True)
    with pytest.raises(CorruptSampleError, match="patient00001"):
        dataset_bank(f"mura:{root}?split=train", encoder=PixelEncoder(), cache_dir=None, seed=1)
    tiny = _mura(tmp_path / "b", 3)
    with pytest.raises(DatasetError, match="needs normal"):
        dataset_bank(f"mura:{tiny}?split=train", encoder=PixelEncoder(), cache_dir=None)



def test_stand_in_bank_shows_the_lesion_and_trains_through_build_bank() -> None:
    from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION
    from engine.train import TrainConfig, build_bank

    bank = stand_in_bank(64)
    assert bank.encoder_version == SYNTHETIC_ENCODER_VERSION and len(bank) == 64
    assert bank.lesion.sum() == 32 and all(bank.counts()[p]["lesion"] > 0 for p in ("train", "val", "test"))
    same, info = build_bank(TrainConfig(data="stand-in", bank_images=64))
    np.testing.assert_array_equal(same.pooled, bank.pooled)
    assert info["probe_auroc"] > 0.9  # unlike the random-init ResNet50's (about 0.5)
