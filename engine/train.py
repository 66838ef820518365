"""Train RiskNet on the synthetic cohort (sensors) with real ResNet50 image embeddings.

What a run does (:func:`train`):

1. **Image bank** (:mod:`engine.data.image_bank`): knee radiographs rendered as DICOM
   files, half with a lesion, embedded once by the real ResNet50 encoder
   (:class:`engine.imaging.encoder.ResNet50Encoder`, local weights when
   ``encoder_checkpoint`` is given, else its seeded init; nothing is downloaded) and
   cached under ``.cache/image-bank/<encoder_version>/``; or, with ``data=SPEC``, the
   images of a real data set (MURA, MRNet, fastMRI, DICOM folders; label 1 = lesion).
   With ``finetune_last_stage`` the encoder's last stage (``layer4``) is first fine-tuned
   on the bank's training images (:mod:`engine.finetune`) and saved as ``encoder.pt`` in
   the run folder; the ingest service embeds studies with that file.
2. **Windows** (:func:`engine.data.synthetic.window_dataset`): labelled 2 s windows of
   synthetic athletes; each athlete gets a bank image with a lesion exactly when their
   ``image_lesion`` trait is set. Split **by athlete** into train / val / test (no
   athlete, and no bank image, on two sides: bank images are split into parts too).
3. **Fit** (:func:`fit`): BCE + Adam, augmentation (sensor: time shift, jitter, channel
   dropout; image: a fresh bank image of the right status per training example, bank
   images themselves rotated / shifted / flipped), modality dropout (an example keeps
   its image with probability ``image_fraction``), early stopping on validation AUROC,
   temperature scaling on validation.
4. **Evaluate** the test split with bootstrap intervals, the Bayes AUROC of every split,
   the alert threshold at 90% validation specificity; write the run folder: the artifact
   (``model.pt``, ``model.onnx``, ``meta.json``), ``config.json`` and ``metrics.json``.

Presets: :meth:`TrainConfig.full` (the default of :func:`train`, report quality, under
10 minutes on 2 cores), :meth:`TrainConfig.demo` (``ensure_default_model``: under 2
minutes including the first image-bank build) and :meth:`TrainConfig.tiny` (tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.data.image_bank import DEFAULT_CACHE_DIR, PARTS, STAND_IN, ImageBank, lesion_probe_auroc, stand_in_bank
from engine.data.synthetic import SyntheticWindows, auroc, window_dataset
from engine.evaluate import (
    METRICS,
    bootstrap_metrics,
    classification_metrics,
    cluster_resamples,
    threshold_at_specificity,
)
from engine.exceptions import ArtifactError, EngineError
from engine.model_config import ModelConfig

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
ENCODER_FILE = "encoder.pt"

__all__ = [
    "CONFIG_FILE", "ENCODER_FILE", "METRICS_FILE", "FitResult", "TrainConfig", "TrainingData", "build_bank",
    "classification_metrics", "ensure_default_model", "fit", "fit_temperature", "predict_logits",
    "prepare_data", "split_by_athlete", "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on besides the seed (written to ``config.json``)."""

    n_windows: int = 24000
    n_athletes: int | None = None        # default n_windows // 20
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8                    # epochs without a better validation AUROC
    time_budget_s: float | None = 420.0  # of the epoch loop; None = no limit
    total_budget_s: float | None = 570.0  # of the whole run: the epoch loop gets what is left (minus 10 s, at least 5 s)
    image_fraction: float = 0.6          # modality dropout: share of training examples given their image
    channel_dropout: float = 0.2         # share of training examples with 1-4 channels zeroed
    time_shift: int = 25                 # frames: windows shifted by up to +- this (edge-padded)
    jitter: float = 0.05                 # std of Gaussian noise added to the normalised sensors
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    hop: int = 50
    hz: float = 100.0
    threads: int = 1                     # torch threads of the fit: 1 is far more robust on a shared 2-core machine
    encode_threads: int = 2              # torch threads while the image bank is encoded (ResNet50 gains from 2)
    bank_images: int = 256               # synthetic bank size (half with a lesion)
    bank_size_px: int = 384              # rendered radiograph side
    bank_cache_dir: str | None = str(DEFAULT_CACHE_DIR)
    encoder_checkpoint: str | None = None  # local ResNet50 weights (ImageNet / RadImageNet style); never downloaded
    finetune_last_stage: bool = False    # fine-tune layer4 on the bank's training images (writes encoder.pt)
    finetune_epochs: int = 8
    data: str | None = None              # a real image data set spec (engine.data.loaders.open_dataset), or "stand-in"
    data_max_images: int = 1500
    n_boot: int = 1000                   # bootstrap resamples of the test intervals
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def full(cls) -> TrainConfig:
        """Report quality: 24k windows of 1200 athletes, a 256-image bank, < 10 min on 2 cores."""
        return cls()

    @classmethod
    def demo(cls) -> TrainConfig:
        """The demo's default model: under 2 minutes on 2 cores, the first bank build included."""
        return cls(n_windows=6000, batch_size=64, epochs=25, patience=5, time_budget_s=75.0, total_budget_s=105.0,
                   bank_images=64, n_boot=200)

    @classmethod
    def tiny(cls) -> TrainConfig:
        """A seconds-long run for tests: small data, small model, 8 bank images, few epochs."""
        return cls(n_windows=480, epochs=3, batch_size=32, patience=3, time_budget_s=30.0, total_budget_s=None,
                   bank_images=8, n_boot=50, model=ModelConfig(conv_dim=16, hidden=16, attn_dim=16))

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        presets = {"full": cls.full, "demo": cls.demo, "tiny": cls.tiny}
        if name not in presets:
            raise EngineError(f"unknown training preset {name!r}: one of {', '.join(presets)}")
        return presets[name]()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


# --------------------------------------------------------------------------- entry points
def train(
    out_dir: str | os.PathLike[str],
    *,
    n_windows: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    time_budget_s: float | None = None,
    tiny: bool = False,
    preset: str | None = None,
    data: str | None = None,
    encoder_checkpoint: str | os.PathLike[str] | None = None,
    finetune_last_stage: bool | None = None,
    bank_cache_dir: str | os.PathLike[str] | None = None,
    config: TrainConfig | None = None,
) -> Path:
    """Train, calibrate, evaluate and save an artifact to ``out_dir`` (the run folder);
    returns ``out_dir``. The config is ``config``, else the ``preset`` ("full", "demo",
    "tiny"), else :meth:`TrainConfig.tiny` when ``tiny``, else :meth:`TrainConfig.full`;
    the keyword overrides apply on top.

    ``time_budget_s`` caps the epoch loop (``math.inf`` removes the cap); the best epoch by
    validation AUROC is kept. ``data`` trains the image path on a real data set
    (``"mura:/data/MURA-v1.1?split=train"``; see docs/data.md). ``encoder_checkpoint`` is a
    local ResNet50 weights file."""
    cfg = config or (TrainConfig.preset(preset) if preset else TrainConfig.tiny() if tiny else TrainConfig.full())
    overrides: dict[str, Any] = {}
    if n_windows is not None:
        overrides["n_windows"] = n_windows
    if epochs is not None:
        overrides["epochs"] = epochs
    if time_budget_s is not None:
        overrides["time_budget_s"] = None if math.isinf(time_budget_s) else float(time_budget_s)
    if data is not None:
        overrides["data"] = data
    if encoder_checkpoint is not None:
        overrides["encoder_checkpoint"] = str(encoder_checkpoint)
    if finetune_last_stage is not None:
        overrides["finetune_last_stage"] = finetune_last_stage
    if bank_cache_dir is not None:
        overrides["bank_cache_dir"] = str(bank_cache_dir)
    cfg = replace(cfg, **overrides)
    return _train(Path(out_dir), cfg, seed=seed, progress=progress)


def ensure_default_model(model_dir: str | os.PathLike[str], *, progress: bool = True,
                         config: TrainConfig | None = None) -> Path:
    """Return ``model_dir`` if it holds a valid artifact, else train the demo model
    (:meth:`TrainConfig.demo`, or ``config``) there. A lock file serialises concurrent
    callers (two workers starting together train once)."""
    d = Path(model_dir)
    try:
        ModelArtifact.load(d)
        return d
    except ArtifactError as exc:
        reason = str(exc)
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d / ".train.lock"):
        try:
            ModelArtifact.load(d)
            return d
        except ArtifactError:
            pass
        log.warning("no usable model in %s (%s): training the default model (under 2 minutes)", d, reason)
        return _train(d, config or TrainConfig.demo(), seed=0, progress=progress)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _train(out: Path, cfg: TrainConfig, *, seed: int, progress: bool) -> Path:
    import torch

    from engine.model import RiskNet, count_parameters

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    bank, bank_info = build_bank(cfg, out_dir=out, seed=seed, progress=progress)
    data = prepare_data(cfg, seed=seed, bank=bank)
    if cfg.total_budget_s is not None:
        left = cfg.total_budget_s - (time.perf_counter() - t_start) - 10.0
        budget = max(5.0, left if cfg.time_budget_s is None else min(cfg.time_budget_s, left))
        cfg_fit = replace(cfg, time_budget_s=budget)
    else:
        cfg_fit = cfg
    with torch_threads(cfg.threads):
        torch.manual_seed(seed)
        model = RiskNet(cfg.model)
        model.set_image_stats(*bank.stats())
        result = fit(model, data, cfg_fit, seed=seed, progress=progress, desc="train RiskNet")
        summary = summarize(model, data, result, cfg, seed=seed)
    summary["n_params"] = count_parameters(model)
    summary["fit_budget_s"] = cfg_fit.time_budget_s
    summary["image_bank"] = bank_info
    summary["train_total_s"] = round(time.perf_counter() - t_start, 2)
    artifact = ModelArtifact.from_model(model, norm_mean=data.norm_mean, norm_std=data.norm_std, hop=cfg.hop, hz=cfg.hz,
                                        encoder_version=bank.encoder_version, training=summary)
    artifact.save(out)
    (out / CONFIG_FILE).write_text(json.dumps({"seed": seed, **cfg.to_dict()}, indent=2), encoding="utf-8")
    (out / METRICS_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("trained %s in %.1f s: test AUROC %.3f (Bayes %.3f), image encoder %s -> %s",
             artifact.meta.model_version, summary["train_total_s"], summary["test"]["auroc"],
             summary["test"]["bayes_auroc"], bank.encoder_version, out)
    return out


# --------------------------------------------------------------------------- image bank
def build_bank(cfg: TrainConfig, *, out_dir: Path | None = None, seed: int = 0, progress: bool = False
               ) -> tuple[ImageBank, dict[str, Any]]:
    """The run's image bank and a description of it (recorded in the artifact)."""
    from engine.data.image_bank import dataset_bank, synthetic_bank
    from engine.imaging.encoder import ResNet50Encoder

    t0 = time.perf_counter()
    if cfg.data == STAND_IN:
        bank = stand_in_bank(cfg.bank_images, seed=seed)
        info: dict[str, Any] = dict(source=bank.source, encoder_version=bank.encoder_version, images=len(bank),
                                    counts=bank.counts(), build_s=0.0, **lesion_probe_auroc(bank))
        return bank, info
    checkpoint = Path(cfg.encoder_checkpoint) if cfg.encoder_checkpoint else None
    cache = cfg.bank_cache_dir
    with torch_threads(cfg.encode_threads):
        encoder = ResNet50Encoder(checkpoint)
        info = {"base_encoder": encoder.version}
        if cfg.finetune_last_stage:
            from engine.finetune import finetune_last_stage

            if out_dir is None:
                raise EngineError("fine-tuning the last stage needs a run folder to write encoder.pt to")
            ft = finetune_last_stage(encoder, out_dir / ENCODER_FILE, data=cfg.data, n_images=cfg.bank_images,
                                     size=cfg.bank_size_px, epochs=cfg.finetune_epochs, seed=seed,
                                     max_images=cfg.data_max_images, progress=progress)
            info["finetune"] = ft
            checkpoint = out_dir / ENCODER_FILE
            encoder = ResNet50Encoder(checkpoint)
        if cfg.data:
            bank = dataset_bank(cfg.data, encoder=encoder, cache_dir=cache, max_images=cfg.data_max_images,
                                seed=seed, progress=progress)
            info.update(data=cfg.data, max_images=cfg.data_max_images, seed=seed)
        else:
            bank = synthetic_bank(cfg.bank_images, encoder=encoder, cache_dir=cache, size=cfg.bank_size_px,
                                  progress=progress)
            info.update(n=cfg.bank_images, size_px=cfg.bank_size_px)
    info.update(
        source=bank.source, encoder_version=bank.encoder_version,
        encoder_checkpoint=str(checkpoint) if checkpoint is not None else None,
        images=len(bank), counts=bank.counts(), build_s=bank.build_s, seconds=round(time.perf_counter() - t0, 2),
        **lesion_probe_auroc(bank),
    )
    log.info("image bank %s: %d images, encoder %s, lesion probe AUROC %s (%.1f s)", bank.source, len(bank),
             bank.encoder_version, info["probe_auroc"], info["seconds"])
    return bank, info


# --------------------------------------------------------------------------- data
def split_by_athlete(athlete: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window indices of train / val / test; no athlete is in two parts."""
    ids = np.unique(athlete)
    if ids.size < 3:
        raise EngineError(f"need at least 3 athletes to split by athlete, got {ids.size}")
    rng = np.random.default_rng(seed + 7)
    rng.shuffle(ids)
    n_test = max(1, round(test_fraction * ids.size))
    n_val = max(1, round(val_fraction * ids.size))
    test_ids, val_ids = ids[:n_test], ids[n_test:n_test + n_val]
    idx = np.arange(athlete.size)
    in_test, in_val = np.isin(athlete, test_ids), np.isin(athlete, val_ids)
    return idx[~in_test & ~in_val], idx[in_val], idx[in_test]


@dataclass
class TrainingData:
    """Windows (normalised in place), the split, the bank and every athlete's image."""

    windows: SyntheticWindows
    norm_mean: np.ndarray            # (C,) float64, of the training windows
    norm_std: np.ndarray
    split: dict[str, np.ndarray]     # "train" / "val" / "test" -> window indices
    bank: ImageBank
    athlete_part: np.ndarray         # (n_athletes,) index into PARTS
    athlete_image: np.ndarray        # (n_athletes,) the athlete's bank image (fixed; training resamples)
    x: Any                           # torch (n, T, C) float32, shares memory with windows.x
    y: Any                           # torch (n,) float32
    pooled: Any                      # torch (n_bank, D)
    regions: Any                     # torch (n_bank, 49, 64)
    data_s: float = 0.0

    def raw(self, idx: np.ndarray) -> np.ndarray:
        """Windows ``idx`` in physical units (n, T, C) float32."""
        return (self.windows.x[idx] * self.norm_std.astype(np.float32) + self.norm_mean.astype(np.float32)).astype(np.float32)

    def image_of(self, idx: np.ndarray) -> np.ndarray:
        return self.athlete_image[self.windows.athlete[idx]]

    def batch(self, idx: np.ndarray, has: np.ndarray, image: np.ndarray | None = None) -> tuple[Any, Any, Any, Any]:
        """(x, img, regions, has_img) tensors of windows ``idx``; ``image`` overrides the bank rows."""
        import torch

        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        b = torch.from_numpy(np.asarray(self.image_of(idx) if image is None else image, dtype=np.int64))
        return self.x[i], self.pooled[b], self.regions[b], torch.from_numpy(np.asarray(has, dtype=np.float32))


def prepare_data(cfg: TrainConfig, *, seed: int, bank: ImageBank, windows: SyntheticWindows | None = None) -> TrainingData:
    """Generate (or take) the windows, split by athlete, normalise, assign bank images."""
    import torch

    t0 = time.perf_counter()
    data = windows if windows is not None else window_dataset(
        cfg.n_windows, seed=seed, window=cfg.model.window, hz=cfg.hz, n_athletes=cfg.n_athletes)
    tr, va, te = split_by_athlete(data.athlete, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=seed)
    mean = data.x[tr].mean(axis=(0, 1), dtype=np.float64)
    std = np.maximum(data.x[tr].std(axis=(0, 1), dtype=np.float64), 1e-3)
    x = data.x  # normalised in place: the raw windows are not kept twice
    x -= mean.astype(np.float32)
    x /= std.astype(np.float32)
    n_ath = len(data.profiles)
    part = np.zeros(n_ath, dtype=np.int64)
    part[np.unique(data.athlete[va])] = PARTS.index("val")
    part[np.unique(data.athlete[te])] = PARTS.index("test")
    lesion = np.array([p.image_lesion for p in data.profiles], dtype=bool)
    rng = np.random.default_rng(seed + 2)
    image = np.zeros(n_ath, dtype=np.int64)
    for k, name in enumerate(PARTS):
        sel = np.flatnonzero(part == k)
        if sel.size:
            image[sel] = bank.draw(lesion[sel], name, rng)  # type: ignore[arg-type]
    return TrainingData(
        windows=data, norm_mean=mean, norm_std=std, split={"train": tr, "val": va, "test": te}, bank=bank,
        athlete_part=part, athlete_image=image, x=torch.from_numpy(x), y=torch.from_numpy(data.y.astype(np.float32)),
        pooled=torch.from_numpy(bank.pooled), regions=torch.from_numpy(bank.regions),
        data_s=round(time.perf_counter() - t0, 2),
    )


# --------------------------------------------------------------------------- augmentation
def time_shift(x: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Shift each window by an integer in [-max_shift, max_shift] frames, repeating the edge frame."""
    import torch

    if max_shift <= 0:
        return x
    b, t, c = x.shape
    s = torch.from_numpy(rng.integers(-max_shift, max_shift + 1, size=b))
    idx = (torch.arange(t)[None, :] - s[:, None]).clamp_(0, t - 1)
    return torch.gather(x, 1, idx[:, :, None].expand(b, t, c))


def channel_dropout(x: torch.Tensor, rate: float, rng: np.random.Generator) -> torch.Tensor:
    """Zero 1-4 random channels (= the training mean, as the scorer fills absent channels) of a
    share ``rate`` of the windows."""
    if rate <= 0:
        return x
    hit = np.flatnonzero(rng.random(x.shape[0]) < rate)
    if hit.size == 0:
        return x
    x = x.clone()
    for i in hit:
        ch = rng.choice(x.shape[2], size=int(rng.integers(1, 5)), replace=False)
        x[i, :, ch] = 0.0
    return x


def augment_sensors(x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    import torch

    x = time_shift(x, cfg.time_shift, rng)
    if cfg.jitter > 0:
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
        x = x + cfg.jitter * torch.randn(x.shape, generator=g)
    return channel_dropout(x, cfg.channel_dropout, rng)


# --------------------------------------------------------------------------- the fit
@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_val_auroc: float
    stopped_by: str
    temperature: float
    fit_s: float
    epochs_run: int


def predict_logits(model: Any, data: TrainingData, idx: np.ndarray, has: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Uncalibrated logits of windows ``idx`` (each athlete's own image where ``has``)."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, idx.size, chunk):
            res = model.forward_logits(*data.batch(idx[s:s + chunk], has[s:s + chunk]))
            out.append(res[0] if isinstance(res, tuple) else res)
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0, np.float64)


def fit(model: Any, data: TrainingData, cfg: TrainConfig, *, seed: int, progress: bool = False, desc: str = "train",
        uses_image: bool = True) -> FitResult:
    """Train ``model`` (anything with ``forward_logits(x, img, regions, has_img)``) on the
    training split; early stopping on validation AUROC; temperature scaling on validation
    (the model's ``temperature`` buffer, if it has one, is set). ``uses_image=False``
    skips modality dropout bookkeeping for models that ignore the image."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed + 1)
    tr, va = data.split["train"], data.split["val"]
    ath = data.windows.athlete
    lesion = np.array([p.image_lesion for p in data.windows.profiles], dtype=bool)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    val_has = np.random.default_rng(seed + 3).random(va.size) < 0.5 if uses_image else np.zeros(va.size, bool)
    n_batches = math.ceil(tr.size / cfg.batch_size)
    best: tuple[float, dict[str, Any] | None, int] = (-1.0, None, 0)
    history: list[dict[str, float]] = []
    stopped = "epochs"
    t_fit = time.perf_counter()
    model.train()
    bar = tqdm(total=cfg.epochs * n_batches, desc=desc, unit="batch", disable=not progress, leave=False)
    try:
        for epoch in range(1, cfg.epochs + 1):
            perm = rng.permutation(tr)
            total, seen, out_of_time = 0.0, 0, False
            for s in range(0, perm.size, cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                has = rng.random(idx.size) < cfg.image_fraction if uses_image else np.zeros(idx.size, bool)
                image = data.bank.draw(lesion[ath[idx]], "train", rng)  # a fresh view per example
                x, img, reg, hv = data.batch(idx, has, image=image)
                x = augment_sensors(x, cfg, rng)
                res = model.forward_logits(x, img, reg, hv)
                logit = res[0] if isinstance(res, tuple) else res
                loss = F.binary_cross_entropy_with_logits(logit, data.y[torch.from_numpy(idx)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                total += float(loss.detach()) * idx.size
                seen += idx.size
                bar.update(1)
                if cfg.time_budget_s is not None and time.perf_counter() - t_fit > cfg.time_budget_s:
                    out_of_time = True
                    break
            val_auc = auroc(predict_logits(model, data, va, val_has), data.windows.y[va])
            sched.step(val_auc)
            history.append({"epoch": epoch, "loss": round(total / max(seen, 1), 4), "val_auroc": round(val_auc, 4),
                            "lr": opt.param_groups[0]["lr"], "s": round(time.perf_counter() - t_fit, 1)})
            bar.set_postfix(epoch=epoch, loss=f"{total / max(seen, 1):.3f}", val_auroc=f"{val_auc:.3f}")
            if val_auc > best[0]:
                best = (val_auc, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
            if out_of_time:
                stopped = "time_budget"
                break
            if epoch - best[2] >= cfg.patience:
                stopped = "early_stopping"
                break
    finally:
        bar.close()
    fit_s = time.perf_counter() - t_fit
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    temperature = fit_temperature(predict_logits(model, data, va, val_has), data.windows.y[va])
    if hasattr(model, "temperature") and isinstance(getattr(model, "temperature"), torch.Tensor):
        model.temperature.fill_(temperature)
    return FitResult(history=history, best_epoch=best[2], best_val_auroc=round(best[0], 4), stopped_by=stopped,
                     temperature=round(temperature, 4), fit_s=round(fit_s, 2), epochs_run=len(history))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising validation log-loss of sigmoid(logit / T) (grid + refine)."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if z.size == 0 or t.min() == t.max():
        return 1.0

    def nll(temp: float) -> float:
        s = z / temp
        return float(np.mean(np.logaddexp(0.0, s) - t * s))

    grid = np.exp(np.linspace(math.log(0.25), math.log(8.0), 61))
    best = min(grid, key=nll)
    lo, hi = best / 1.06, best * 1.06
    for _ in range(40):  # golden-section refine
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    return float((lo + hi) / 2)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _rounded(m: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 4) if math.isfinite(v) else float("nan")) for k, v in m.items()}


def summarize(model: Any, data: TrainingData, result: FitResult, cfg: TrainConfig, *, seed: int) -> dict[str, Any]:
    """The training summary stored in the artifact: per-split sizes and Bayes AUROCs, test
    metrics (with and without the image) with bootstrap intervals, the alert threshold."""
    w = data.windows
    te, va = data.split["test"], data.split["val"]
    temp = result.temperature
    prob = _sigmoid(predict_logits(model, data, te, np.ones(te.size, bool)) / temp)
    prob_no = _sigmoid(predict_logits(model, data, te, np.zeros(te.size, bool)) / temp)
    val_prob = _sigmoid(predict_logits(model, data, va, np.ones(va.size, bool)) / temp)
    rs = cluster_resamples(w.athlete[te], cfg.n_boot, seed)
    iv = bootstrap_metrics(prob, w.y[te], w.athlete[te], resamples=rs, extra={"bayes": w.p[te]})
    test = {
        **_rounded(classification_metrics(prob, w.y[te])),
        "bayes_auroc": round(auroc(w.p[te], w.y[te]), 4),
        "bayes_auroc_sensor_only": round(auroc(w.p_sensor[te], w.y[te]), 4),
        "sensor_only_auroc": round(auroc(prob_no, w.y[te]), 4),
        "bayes_metrics": _rounded(classification_metrics(w.p[te], w.y[te])),
        "sensor_only": _rounded(classification_metrics(prob_no, w.y[te])),
        "corr_with_true_p": round(float(np.corrcoef(prob, w.p[te])[0, 1]), 4) if te.size > 1 else float("nan"),
        "positives": round(float(w.y[te].mean()), 4),
        "n": int(te.size),
    }
    splits = {name: {"windows": int(idx.size), "athletes": int(np.unique(w.athlete[idx]).size),
                     "positives": round(float(w.y[idx].mean()), 4) if idx.size else float("nan"),
                     "bayes_auroc": round(auroc(w.p[idx], w.y[idx]), 4),
                     "bayes_auroc_sensor_only": round(auroc(w.p_sensor[idx], w.y[idx]), 4)}
              for name, idx in data.split.items()}
    return {
        "seed": seed,
        "config": {k: v for k, v in cfg.to_dict().items() if k != "model"},
        "n_windows": {k: int(v.size) for k, v in data.split.items()},
        "n_athletes": len(w.profiles),
        "splits": splits,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_by": result.stopped_by,
        "history": result.history,
        "best_val_auroc": result.best_val_auroc,
        "temperature": result.temperature,
        "data_s": data.data_s,
        "fit_s": result.fit_s,
        "alert_threshold": round(threshold_at_specificity(val_prob[w.y[va] == 0], 0.9), 4),
        "test": test,
        "test_intervals": {k: iv[k].to_dict() for k in (*METRICS, "bayes_auroc")},
    }


def window_probabilities(model: Any, data: TrainingData, idx: np.ndarray, has: np.ndarray,
                         temperature: float) -> np.ndarray:
    """Calibrated probabilities sigmoid(logit / T) of windows ``idx``."""
    return _sigmoid(predict_logits(model, data, idx, has) / temperature)


