"""Train RiskNet on the synthetic cohort and write a model artifact.

BCE + Adam, split by athlete (train / validation / test), early stopping on validation
AUROC, temperature scaling on validation, modality dropout (each training example gets
its image features with probability ``image_fraction``) and channel dropout (some
examples lose a few channels, set to 0 after normalisation as the scorer does for absent
channels). Image features come from :func:`engine.data.synthetic.synthetic_image_features`
until real ResNet50 embeddings of rendered studies replace them.

``ensure_default_model`` trains the default model when a folder holds no valid artifact;
on 2 CPU cores it finishes in well under 2 minutes (the epoch loop has a time budget).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from engine.artifact import ModelArtifact
from engine.data.synthetic import SYNTHETIC_ENCODER_VERSION, SyntheticWindows, auroc, synthetic_image_features, window_dataset
from engine.exceptions import ArtifactError, EngineError
from engine.model_config import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    n_windows: int = 6000
    n_athletes: int | None = None       # default n_windows // 20
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5                   # epochs without a better validation AUROC
    time_budget_s: float | None = 75.0  # of the epoch loop; None = no limit
    image_fraction: float = 0.6         # modality dropout: share of examples given their image
    channel_dropout: float = 0.2        # share of examples with 1-4 channels zeroed
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    hop: int = 50
    hz: float = 100.0
    threads: int = 1                    # 1 is far more robust than 2 on a shared 2-core machine
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def tiny(cls) -> TrainConfig:
        """A seconds-long run for tests: small data, small model, few epochs."""
        return cls(n_windows=480, epochs=3, batch_size=32, patience=3, time_budget_s=30.0,
                   model=ModelConfig(conv_dim=16, hidden=16, attn_dim=16))


def train(
    out_dir: str | os.PathLike[str],
    *,
    n_windows: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    time_budget_s: float | None = None,
    tiny: bool = False,
    config: TrainConfig | None = None,
) -> Path:
    """Train, calibrate, evaluate and save an artifact (model.pt, model.onnx, meta.json)
    to ``out_dir``; returns ``out_dir``. Keyword overrides apply on top of ``config``
    (default :class:`TrainConfig`, or :meth:`TrainConfig.tiny` when ``tiny``).

    ``time_budget_s`` caps the epoch loop (wall clock); ``None`` keeps the config's
    (75 s for the default, so the default model is ready in under 2 minutes on 2 cores);
    ``math.inf`` removes the cap. The best epoch by validation AUROC is kept."""
    import torch

    cfg = config or (TrainConfig.tiny() if tiny else TrainConfig())
    if n_windows is not None:
        cfg = replace(cfg, n_windows=n_windows)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if time_budget_s is not None:
        cfg = replace(cfg, time_budget_s=None if math.isinf(time_budget_s) else float(time_budget_s))
    t_start = time.perf_counter()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        model, norm, summary = _fit(cfg, seed=seed, progress=progress)
    finally:
        torch.set_num_threads(prev_threads)
    summary["train_total_s"] = round(time.perf_counter() - t_start, 2)
    artifact = ModelArtifact.from_model(model, norm_mean=norm[0], norm_std=norm[1], hop=cfg.hop, hz=cfg.hz,
                                        encoder_version=SYNTHETIC_ENCODER_VERSION, training=summary)
    out = artifact.save(out_dir)
    log.info("trained %s in %.1f s: test AUROC %.3f (Bayes %.3f) -> %s", artifact.meta.model_version,
             summary["train_total_s"], summary["test"]["auroc"], summary["test"]["bayes_auroc"], out)
    return out


def ensure_default_model(model_dir: str | os.PathLike[str], *, progress: bool = True,
                         config: TrainConfig | None = None) -> Path:
    """Return ``model_dir`` if it holds a valid artifact, else train the default model
    (or ``config``) there. A lock file serialises concurrent callers (two workers starting
    together train once)."""
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
        return train(d, progress=progress, config=config)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the fit
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


def _fit(cfg: TrainConfig, *, seed: int, progress: bool) -> tuple[Any, tuple[np.ndarray, np.ndarray], dict[str, Any]]:
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from engine.model import RiskNet, count_parameters

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    t0 = time.perf_counter()
    data = window_dataset(cfg.n_windows, seed=seed, window=cfg.model.window, hz=cfg.hz, n_athletes=cfg.n_athletes)
    data_s = time.perf_counter() - t0
    tr_idx, va_idx, te_idx = split_by_athlete(data.athlete, val_fraction=cfg.val_fraction,
                                              test_fraction=cfg.test_fraction, seed=seed)
    mean = data.x[tr_idx].mean(axis=(0, 1), dtype=np.float64)
    std = np.maximum(data.x[tr_idx].std(axis=(0, 1), dtype=np.float64), 1e-3)
    x_all = torch.from_numpy(((data.x - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32))
    lesion_by_athlete = np.array([p.image_lesion for p in data.profiles])
    pooled_a, regions_a = synthetic_image_features(lesion_by_athlete, seed=seed + 2)
    pooled_t, regions_t = torch.from_numpy(pooled_a), torch.from_numpy(regions_a)
    ath_t = torch.from_numpy(data.athlete)
    y_all = torch.from_numpy(data.y.astype(np.float32))

    def batch(idx: np.ndarray, has: np.ndarray) -> tuple[torch.Tensor, ...]:
        i = torch.from_numpy(idx)
        a = ath_t[i]
        return x_all[i], pooled_t[a], regions_t[a], torch.from_numpy(has.astype(np.float32))

    model = RiskNet(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
    val_has = np.random.default_rng(seed + 3).random(va_idx.size) < 0.5

    def logits_of(idx: np.ndarray, has: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, idx.size, 256):
                out.append(model.forward_logits(*batch(idx[s:s + 256], has[s:s + 256]))[0])
        model.train()
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    n_batches = math.ceil(tr_idx.size / cfg.batch_size)
    best = (-1.0, None, 0)  # (val AUROC, state, epoch)
    history: list[dict[str, float]] = []
    stopped = "epochs"
    t_fit = time.perf_counter()
    bar = tqdm(total=cfg.epochs * n_batches, desc="train", unit="batch", disable=not progress, leave=False)
    try:
        for epoch in range(1, cfg.epochs + 1):
            perm = rng.permutation(tr_idx)
            total, seen, out_of_time = 0.0, 0, False
            for s in range(0, perm.size, cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                has = rng.random(idx.size) < cfg.image_fraction
                x, img, reg, hv = batch(idx, has)
                x = _channel_dropout(x, cfg.channel_dropout, rng)
                logit, _, _ = model.forward_logits(x, img, reg, hv)
                loss = F.binary_cross_entropy_with_logits(logit, y_all[torch.from_numpy(idx)])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * idx.size
                seen += idx.size
                bar.update(1)
                if cfg.time_budget_s is not None and time.perf_counter() - t_fit > cfg.time_budget_s:
                    out_of_time = True
                    break
            val_auc = auroc(logits_of(va_idx, val_has), data.y[va_idx])
            sched.step(val_auc)
            history.append({"epoch": epoch, "loss": round(total / max(seen, 1), 4), "val_auroc": round(val_auc, 4),
                            "lr": opt.param_groups[0]["lr"]})
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

    # temperature scaling on validation
    val_logits = logits_of(va_idx, val_has)
    temperature = fit_temperature(val_logits, data.y[va_idx])
    model.temperature.fill_(temperature)
    model.eval()

    test = evaluate_split(data, te_idx, lambda idx, has: logits_of(idx, has) / temperature)
    summary: dict[str, Any] = {
        "seed": seed,
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "n_windows": {"train": int(tr_idx.size), "val": int(va_idx.size), "test": int(te_idx.size)},
        "n_athletes": len(data.profiles),
        "n_params": count_parameters(model),
        "epochs_run": len(history),
        "best_epoch": best[2],
        "stopped_by": stopped,
        "history": history,
        "best_val_auroc": round(best[0], 4),
        "temperature": round(temperature, 4),
        "data_s": round(data_s, 2),
        "fit_s": round(fit_s, 2),
        "image_features": SYNTHETIC_ENCODER_VERSION,
        "test": test,
    }
    return model, (mean, std), summary


def _channel_dropout(x: Any, rate: float, rng: np.random.Generator) -> Any:
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


def classification_metrics(prob: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC, Brier score, expected calibration error (10 bins), sensitivity at 90% specificity."""
    from sklearn.metrics import average_precision_score

    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y).astype(int)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == k].mean() - t[bins == k].mean()) * (bins == k).mean() for k in range(10) if (bins == k).any())
    neg = np.sort(p[t == 0])
    thr = neg[int(math.ceil(0.9 * neg.size)) - 1] if neg.size else 1.0
    sens = float((p[t == 1] > thr).mean()) if (t == 1).any() else float("nan")
    return {
        "auroc": round(auroc(p, t), 4),
        "auprc": round(float(average_precision_score(t, p)), 4) if 0 < t.sum() < t.size else float("nan"),
        "brier": round(float(np.mean((p - t) ** 2)), 4),
        "ece": round(float(ece), 4),
        "sens_at_90spec": round(sens, 4),
    }


def evaluate_split(data: SyntheticWindows, idx: np.ndarray, logits_fn: Any) -> dict[str, Any]:
    """Test metrics with every image present, with none, and of the true risk (Bayes)."""
    y, p = data.y[idx], data.p[idx]
    with_img = 1.0 / (1.0 + np.exp(-logits_fn(idx, np.ones(idx.size, bool))))
    no_img = 1.0 / (1.0 + np.exp(-logits_fn(idx, np.zeros(idx.size, bool))))
    m = classification_metrics(with_img, y)
    return {
        **m,
        "bayes_auroc": round(auroc(p, y), 4),
        "bayes_auroc_sensor_only": round(auroc(data.p_sensor[idx], y), 4),
        "sensor_only_auroc": round(auroc(no_img, y), 4),
        "bayes_metrics": classification_metrics(p, y),
        "sensor_only": classification_metrics(no_img, y),
        "corr_with_true_p": round(float(np.corrcoef(with_img, p)[0, 1]), 4),
        "positives": round(float(y.mean()), 4),
        "n": int(idx.size),
    }
