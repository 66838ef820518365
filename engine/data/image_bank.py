"""Image bank: real ResNet50 embeddings of radiographs, computed once and cached on disk.

Training cannot afford one ResNet50 pass per athlete per run, and a model trained on
stand-in features would ignore the embeddings the live system ingests (another
``encoder_version``). So each training run draws every athlete's image from a *bank*:

* **synthetic** (:func:`synthetic_bank`): knee radiographs rendered by
  :func:`engine.imaging.synthetic.render_radiograph` as real DICOM files (CR, 16 bits
  allocated, 12 stored), half of them with a lesion (:func:`random_lesion`: sclerotic,
  lytic, edema-like or a stress fracture at a plausible site), read back with the ingest
  reader (:func:`engine.imaging.reader.open_dicom`, :func:`decode_frame`: de-identification,
  VOI window), letterboxed and embedded by the given encoder, exactly as
  ``injury-monitor embed`` would. Image ``i`` is a pure function of ``i``
  (:func:`bank_image_spec`), so banks of any size share their first images.
* **a real data set** (:func:`dataset_bank`): the images of a ``--data`` spec
  (MURA, MRNet, fastMRI, DICOM folders; :mod:`engine.data.loaders`), label 1 = "lesion".

Each image belongs to one *part* (train / val / test); athletes of a split only get images
of the same part, so a test athlete's image was never seen in training. Train-part images
are augmented before encoding (rotation, translation, horizontal flip), since the
embeddings are computed once: each bank image is a different random view.

Cache: one ``.npz`` per image under ``<cache_dir>/<encoder_version>/<generator>/``, written
atomically, so a bigger bank reuses a smaller one and concurrent runs do not clash.
The cache key holds the encoder version and :data:`BANK_GENERATOR_VERSION`; bump the
latter whenever the rendering or augmentation recipe changes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from engine.data.exceptions import DatasetError
from engine.features import N_REGIONS, REGION_DIM, ImageFeatures

log = logging.getLogger(__name__)

BANK_GENERATOR_VERSION = "knee-cr-v1"
DATASET_BANK_VERSION = "dataset-v1"
BANK_SEED = 7_100_000          # image i is rendered with seed BANK_SEED + i
DEFAULT_CACHE_DIR = Path(".cache/image-bank")
PARTS: tuple[str, ...] = ("train", "val", "test")
Part = Literal["train", "val", "test"]
# pair j = images (2j, 2j + 1), one normal and one with a lesion, goes to part _PAIR_PART[j % 8]
_PAIR_PART = (0, 1, 2, 0, 0, 0, 0, 0)
MIN_SYNTHETIC_BANK = 8         # 4 pairs: every part holds a normal and a lesion image


class Encoder(Protocol):
    """What the bank needs of an image encoder (:class:`engine.imaging.encoder.ResNet50Encoder`)."""

    version: str

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Augment:
    """A geometric augmentation of one image: rotation (deg), translation (fractions), flip."""

    rotate_deg: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    flip: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator, *, max_rotate_deg: float = 8.0, max_shift: float = 0.05) -> Augment:
        return cls(float(rng.uniform(-max_rotate_deg, max_rotate_deg)), float(rng.uniform(-max_shift, max_shift)),
                   float(rng.uniform(-max_shift, max_shift)), bool(rng.random() < 0.5))

    @property
    def identity(self) -> bool:
        return self.rotate_deg == 0.0 and self.shift_x == 0.0 and self.shift_y == 0.0 and not self.flip

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W) or (H, W, C) float in [0, 1] -> same shape; outside the picture is black."""
        if self.identity:
            return image
        from scipy.ndimage import affine_transform

        img = image[:, ::-1] if self.flip else image
        h, w = img.shape[:2]
        a = math.radians(self.rotate_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
        shift = np.array([self.shift_y * h, self.shift_x * w])
        offset = centre - rot @ (centre + shift)  # output pixel o samples input rot @ o + offset

        def one(plane: np.ndarray) -> np.ndarray:
            return affine_transform(plane, rot, offset=offset, order=1, mode="constant", cval=0.0)

        if img.ndim == 2:
            out = one(np.ascontiguousarray(img, dtype=np.float32))
        else:
            out = np.stack([one(np.ascontiguousarray(img[..., c], dtype=np.float32)) for c in range(img.shape[2])], -1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class BankImageSpec:
    """Everything that decides synthetic bank image ``index``."""

    index: int
    seed: int
    lesion: Any  # engine.imaging.synthetic.Lesion | None
    laterality: Literal["L", "R"]
    part: Part
    augment: Augment

    @property
    def has_lesion(self) -> bool:
        return self.lesion is not None


def part_of(index: int) -> Part:
    return PARTS[_PAIR_PART[(index // 2) % len(_PAIR_PART)]]  # type: ignore[return-value]


def bank_image_spec(index: int) -> BankImageSpec:
    """Image ``index``: odd indices carry a lesion; the rest is drawn from ``BANK_SEED + index``."""
    from engine.imaging.synthetic import random_lesion

    rng = np.random.default_rng(BANK_SEED + index)
    lesion = random_lesion(rng, "knee") if index % 2 else None
    laterality: Literal["L", "R"] = "L" if rng.random() < 0.5 else "R"
    part = part_of(index)
    aug = Augment.draw(rng) if part == "train" else Augment()
    return BankImageSpec(index=index, seed=BANK_SEED + index, lesion=lesion, laterality=laterality, part=part, augment=aug)


# --------------------------------------------------------------------------- the bank
@dataclass(frozen=True)
class ImageBank:
    """Embeddings of ``n`` images: pooled (n, D), regions (n, 49, 64), lesion (n,), part (n,)."""

    pooled: np.ndarray
    regions: np.ndarray
    lesion: np.ndarray
    part: np.ndarray             # (n,) int8 index into PARTS
    encoder_version: str
    source: str                  # "synthetic:knee-cr-v1" or the data set spec
    build_s: float = 0.0         # seconds spent rendering / reading and encoding (0 when all cached)

    def __post_init__(self) -> None:
        n = self.lesion.shape[0]
        if self.pooled.shape[0] != n or self.regions.shape != (n, N_REGIONS, REGION_DIM) or self.part.shape != (n,):
            raise ValueError(f"inconsistent bank arrays {self.pooled.shape}, {self.regions.shape}, {self.part.shape}")

    def __len__(self) -> int:
        return int(self.lesion.shape[0])

    @property
    def pooled_dim(self) -> int:
        return int(self.pooled.shape[1])

    def indices(self, part: Part, lesion: bool | None = None) -> np.ndarray:
        m = self.part == PARTS.index(part)
        if lesion is not None:
            m &= self.lesion == lesion
        return np.flatnonzero(m)

    def draw(self, lesion: np.ndarray, part: Part, rng: np.random.Generator) -> np.ndarray:
        """One bank index per entry of ``lesion``: a random image of ``part`` with that status."""
        want = np.asarray(lesion, dtype=bool).ravel()
        out = np.empty(want.size, dtype=np.int64)
        for flag in (False, True):
            sel = np.flatnonzero(want == flag)
            if sel.size == 0:
                continue
            pool = self.indices(part, flag)
            if pool.size == 0:
                raise DatasetError(None, f"image bank {self.source} has no {'lesion' if flag else 'normal'} image "
                                         f"in its {part} part ({len(self)} images): use a bigger bank")
            out[sel] = pool[rng.integers(0, pool.size, size=sel.size)]
        return out

    def features(self, index: int) -> ImageFeatures:
        return ImageFeatures(pooled=self.pooled[index], regions=self.regions[index], encoder_version=self.encoder_version)

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-dimension mean and std of pooled (D,) and region (64,) features over the train part."""
        tr = self.indices("train")
        tr = tr if tr.size >= 2 else np.arange(len(self))
        p, r = self.pooled[tr].astype(np.float64), self.regions[tr].astype(np.float64).reshape(-1, REGION_DIM)
        return (p.mean(0), np.maximum(p.std(0), 1e-6 * (np.abs(p.mean(0)) + 1e-6)),
                r.mean(0), np.maximum(r.std(0), 1e-6 * (np.abs(r.mean(0)) + 1e-6)))

    def counts(self) -> dict[str, dict[str, int]]:
        return {part: {"normal": int(self.indices(part, False).size), "lesion": int(self.indices(part, True).size)}
                for part in PARTS}


def lesion_probe_auroc(bank: ImageBank, *, c: float = 0.1) -> dict[str, float]:
    """How well the embeddings separate lesion from normal: a logistic-regression probe on
    standardised pooled + region features, fit on the train part, AUROC on val + test
    (NaN when a class is missing there)."""
    from sklearn.linear_model import LogisticRegression

    from engine.data.synthetic import auroc

    tr, ho = bank.indices("train"), np.concatenate([bank.indices("val"), bank.indices("test")])
    x = np.hstack([bank.pooled, bank.regions.reshape(len(bank), -1)]).astype(np.float64)
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    if np.unique(bank.lesion[tr]).size < 2:
        return {"probe_auroc": float("nan"), "n_train": int(tr.size), "n_heldout": int(ho.size)}
    clf = LogisticRegression(C=c, max_iter=2000).fit(x[tr], bank.lesion[tr])
    return {"probe_auroc": round(auroc(clf.decision_function(x[ho]), bank.lesion[ho]), 4),
            "n_train": int(tr.size), "n_heldout": int(ho.size)}


# --------------------------------------------------------------------------- cache
def _save_entry(path: Path, pooled: np.ndarray, regions: np.ndarray, lesion: bool, part: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, pooled=pooled.astype(np.float32), regions=regions.astype(np.float32),
                     lesion=np.array(bool(lesion)), part=np.array(int(part), dtype=np.int8))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_entry(path: Path) -> tuple[np.ndarray, np.ndarray, bool, int] | None:
    """A cached entry, or None when absent or unreadable (it is then recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return z["pooled"], z["regions"], bool(z["lesion"]), int(z["part"])
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is recomputed, not fatal
        log.warning("image bank cache entry %s unreadable (%s): recomputing it", path, exc)
        return None


def _assemble(entries: Sequence[tuple[np.ndarray, np.ndarray, bool, int]], encoder_version: str, source: str,
              build_s: float) -> ImageBank:
    return ImageBank(
        pooled=np.stack([e[0] for e in entries]).astype(np.float32),
        regions=np.stack([e[1] for e in entries]).astype(np.float32),
        lesion=np.array([e[2] for e in entries], dtype=bool),
        part=np.array([e[3] for e in entries], dtype=np.int8),
        encoder_version=encoder_version, source=source, build_s=round(build_s, 2),
    )


STAND_IN = "stand-in"  # ``--data stand-in``: the stand-in image features below instead of images


def stand_in_bank(n: int, *, seed: int = 0) -> ImageBank:
    """A bank of ``n`` stand-in embeddings (:func:`engine.data.synthetic.synthetic_image_features`,
    encoder ``synthetic-image-v1``): no images, and a lesion that is plainly visible in feature
    space (odd indices, parts as in the radiograph bank). It exercises everything after the
    encoder, including the live join, with an "encoder" that sees the lesion, which the seeded
    random-init ResNet50 does not (docs/imaging.md, "Lesion-specific risk")."""
    from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION, synthetic_image_features

    lesion = np.arange(n) % 2 == 1
    pooled, regions = synthetic_image_features(lesion, seed=seed)
    part = np.array([PARTS.index(part_of(i)) for i in range(n)], dtype=np.int8)
    return ImageBank(pooled=pooled, regions=regions, lesion=lesion, part=part,
                     encoder_version=SYNTHETIC_ENCODER_VERSION, source=f"{STAND_IN}:{SYNTHETIC_ENCODER_VERSION}")


def _default_encoder() -> Encoder:
    from engine.imaging.encoder import ResNet50Encoder

    return ResNet50Encoder()


# --------------------------------------------------------------------------- synthetic bank
def render_bank_image(index: int, path: str | Path, *, size: int = 384) -> Path:
    """Write synthetic bank image ``index`` as a DICOM file (before augmentation)."""
    from engine.imaging.synthetic import render_radiograph

    spec = bank_image_spec(index)
    return render_radiograph(path, anatomy="knee", lesion=spec.lesion, seed=spec.seed, size=size,
                             laterality=spec.laterality, modality="CR", bits_stored=12)


def encoder_input(path: Path, augment: Augment | None = None) -> np.ndarray:
    """A DICOM file -> the (224, 224, 3) encoder input, as ingest prepares it (+ augmentation)."""
    from engine.imaging.encoder import INPUT_SIZE
    from engine.imaging.pixels import letterbox
    from engine.imaging.reader import decode_frame, open_dicom

    img = decode_frame(open_dicom(path), 0)
    if augment is not None:
        img = augment.apply(img)
    return letterbox(img, INPUT_SIZE)


def synthetic_bank(
    n: int,
    *,
    encoder: Encoder | None = None,
    cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE_DIR,
    size: int = 384,
    dicom_dir: str | os.PathLike[str] | None = None,
    batch: int = 16,
    progress: bool = False,
) -> ImageBank:
    """The first ``n`` synthetic bank images (``n`` even, >= 8), from the cache when there.

    Missing images are rendered to DICOM (in ``dicom_dir`` if given, where they are kept,
    else a temporary folder), read back, augmented (train part), embedded and cached.
    ``cache_dir=None`` disables the cache."""
    if n < MIN_SYNTHETIC_BANK or n % 2:
        raise ValueError(f"a synthetic bank needs an even number >= {MIN_SYNTHETIC_BANK} of images, got {n}")
    enc = encoder or _default_encoder()
    folder = Path(cache_dir) / enc.version / BANK_GENERATOR_VERSION if cache_dir is not None else None
    entries: list[tuple[np.ndarray, np.ndarray, bool, int] | None] = [
        _load_entry(folder / f"{i:06d}.npz") if folder is not None else None for i in range(n)
    ]
    missing = [i for i, e in enumerate(entries) if e is None]
    t0 = time.perf_counter()
    if missing:
        from tqdm.auto import tqdm

        log.info("image bank: rendering and embedding %d of %d images with %s", len(missing), n, enc.version)
        with tempfile.TemporaryDirectory(prefix="image-bank-") as tmp:
            where = Path(dicom_dir) if dicom_dir is not None else Path(tmp)
            bar = tqdm(total=len(missing), desc="image bank", unit="img", disable=not progress, leave=False)
            try:
                for s in range(0, len(missing), batch):
                    chunk = missing[s:s + batch]
                    inputs = []
                    for i in chunk:
                        spec = bank_image_spec(i)
                        path = render_bank_image(i, where / f"bank-{i:06d}.dcm", size=size)
                        inputs.append(encoder_input(path, spec.augment))
                    pooled, regions = enc.encode(np.stack(inputs))
                    for k, i in enumerate(chunk):
                        spec = bank_image_spec(i)
                        entry = (pooled[k], regions[k], spec.has_lesion, PARTS.index(spec.part))
                        entries[i] = entry
                        if folder is not None:
                            _save_entry(folder / f"{i:06d}.npz", *entry)
                    bar.update(len(chunk))
            finally:
                bar.close()
    return _assemble([e for e in entries if e is not None], enc.version, f"synthetic:{BANK_GENERATOR_VERSION}",
                     time.perf_counter() - t0 if missing else 0.0)


# --------------------------------------------------------------------------- real data sets
def stratified_group_split(groups: np.ndarray, labels: np.ndarray, fractions: Sequence[float], *, seed: int
                           ) -> list[np.ndarray]:
    """:func:`engine.data.loaders.split_by_group`, done separately for the groups whose
    majority label is 1 and those whose majority is 0, so every part gets both classes
    (a group still never straddles two parts)."""
    from engine.data.loaders import split_by_group

    g = np.asarray(groups, dtype=object)
    y = np.asarray(labels)
    uniq, inv = np.unique(g.astype(str), return_inverse=True)
    majority = np.bincount(inv, weights=y, minlength=uniq.size) / np.bincount(inv, minlength=uniq.size) >= 0.5
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for flag in (False, True):
        members = np.flatnonzero(majority[inv] == flag)
        if members.size == 0:
            continue
        for k, idx in enumerate(split_by_group(g[members], fractions, seed=seed)):
            parts[k].append(members[idx])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def _item_key(kind: str, root: Path, key: str, augment: Augment, encoder_version: str) -> str:
    text = f"{DATASET_BANK_VERSION}|{kind}|{root.resolve()}|{key}|{augment}|{encoder_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def dataset_bank(
    dataset: Any,
    *,
    encoder: Encoder | None = None,
    cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE_DIR,
    max_images: int = 1500,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    batch: int = 16,
    progress: bool = False,
    on_item: Callable[[int, int], None] | None = None,
) -> ImageBank:
    """A bank from a real data set (a spec string for :func:`engine.data.loaders.open_dataset`
    or an opened :class:`~engine.data.loaders.ImageDataset`): split by patient (group) into
    train / val / test, at most ``max_images`` items (a random subset, kept in each part's
    proportion), label 1 = lesion. Volumes are embedded slice by slice and averaged, like
    DICOM studies at ingest. A corrupt file raises the loader's error naming it."""
    from engine.data.loaders import as_slices, open_dataset
    from engine.imaging.encoder import INPUT_SIZE
    from engine.imaging.pixels import letterbox
    from engine.imaging.slices import mean_features

    ds = open_dataset(dataset) if isinstance(dataset, str) else dataset
    source = dataset if isinstance(dataset, str) else f"{ds.kind}:{ds.root}"
    if len(ds) == 0:
        raise DatasetError(ds.root, "the data set holds no images")
    enc = encoder or _default_encoder()
    parts_idx = stratified_group_split(ds.groups, ds.labels, fractions, seed=seed)
    rng = np.random.default_rng(seed + 11)
    keep = min(1.0, max_images / len(ds))
    chosen: list[tuple[int, int]] = []  # (item index, part)
    labels = ds.labels
    for p, idx in enumerate(parts_idx):
        for flag in (0, 1):  # subsample each class of each part alike
            cls = np.asarray(idx)[labels[np.asarray(idx, dtype=np.int64)] == flag] if len(idx) else np.zeros(0, np.int64)
            k = max(1, round(keep * cls.size)) if cls.size else 0
            chosen += [(int(i), p) for i in rng.choice(cls, size=k, replace=False)]
    chosen.sort()
    for p, name in enumerate(PARTS):
        got = {int(labels[i]) for i, q in chosen if q == p}
        if got != {0, 1}:
            raise DatasetError(ds.root, f"the {name} part of the split (by patient, {fractions}) holds labels {sorted(got)}; "
                                        "it needs normal (0) and abnormal (1) images: use a bigger data set")
    folder = Path(cache_dir) / enc.version / DATASET_BANK_VERSION if cache_dir is not None else None
    aug_rng = np.random.default_rng(seed + 13)
    augments = [Augment.draw(aug_rng) if p == 0 else Augment() for _, p in chosen]
    keys = [_item_key(ds.kind, Path(ds.root), ds.items[i].key, a, enc.version) for (i, _), a in zip(chosen, augments)]
    entries: list[tuple[np.ndarray, np.ndarray, bool, int] | None] = [
        _load_entry(folder / f"{k}.npz") if folder is not None else None for k in keys
    ]
    missing = [j for j, e in enumerate(entries) if e is None]
    t0 = time.perf_counter()
    if missing:
        from tqdm.auto import tqdm

        log.info("image bank: embedding %d of %d images of %s with %s", len(missing), len(chosen), source, enc.version)
        bar = tqdm(total=len(missing), desc="image bank", unit="img", disable=not progress, leave=False)
        try:
            for s in range(0, len(missing), batch):
                todo = missing[s:s + batch]
                inputs, owner = [], []
                for j in todo:
                    sample = ds[chosen[j][0]]
                    for sl in as_slices(sample.image):
                        inputs.append(letterbox(augments[j].apply(sl), INPUT_SIZE))
                        owner.append(j)
                pooled, regions = enc.encode(np.stack(inputs))
                owner_arr = np.array(owner)
                for j in todo:
                    rows = np.flatnonzero(owner_arr == j)
                    p_mean, r_mean = mean_features(list(pooled[rows]), list(regions[rows]))
                    i, part = chosen[j]
                    entry = (np.asarray(p_mean), np.asarray(r_mean), bool(labels[i]), part)
                    entries[j] = entry
                    if folder is not None:
                        _save_entry(folder / f"{keys[j]}.npz", *entry)
                bar.update(len(todo))
                if on_item is not None:
                    on_item(min(s + batch, len(missing)), len(missing))
        finally:
            bar.close()
    return _assemble([e for e in entries if e is not None], enc.version, source,
                     time.perf_counter() - t0 if missing else 0.0)
