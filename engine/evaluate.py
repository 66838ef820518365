"""Evaluation: classifier metrics with bootstrap intervals, alert lead time, plots, report.

Metrics of a probability ``p`` against labels ``y`` (:func:`classification_metrics`):
AUROC, AUPRC (average precision), Brier score, expected calibration error (10 equal-width
bins, weighted by bin size) and sensitivity at 90% specificity (the share of positives
scored above the 90th percentile of the negatives' scores). 95% intervals come from a
**cluster bootstrap over athletes** (:func:`bootstrap_metrics`): windows of one athlete
are correlated, so athletes, not windows, are resampled (percentile interval).

Alert lead time (:func:`lead_times`): on whole synthetic sessions
(:func:`engine.data.synthetic.session_dataset`), an alert is raised when the risk stays at
or above a threshold for ``raise_windows`` consecutive scored windows (the worker's rule,
:mod:`stream.alerting`); the lead time of an injured session is the end of its labelled
injury window minus the end of the window that raised the first alert, when that alert
came no later than the injury window. Reported: the median lead time over detected
injuries, the share of injuries detected, and false alerts per hour (alerts raised in
sessions without an injury). The threshold is the model's 90%-specificity threshold on
its validation windows, so models with different calibrations are compared alike.

:func:`evaluate` scores a trained artifact on a freshly generated cohort (any seed: pick
one the model never saw) through the same :class:`engine.scorer.Scorer` the worker uses
and writes ``report.md``, ``metrics.json`` and ROC / precision-recall / reliability PNGs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.synthetic import auroc

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("auroc", "auprc", "brier", "ece", "sens_at_90spec")
METRIC_LABELS = {
    "auroc": "AUROC", "auprc": "AUPRC", "brier": "Brier", "ece": "ECE", "sens_at_90spec": "Sens@90%Spec",
    "bayes_auroc": "Bayes AUROC", "lead_time_s": "Lead time (s)", "detected": "Injuries alerted",
    "false_alerts_per_h": "False alerts/h",
}
LOWER_IS_BETTER = frozenset({"brier", "ece", "false_alerts_per_h"})


# --------------------------------------------------------------------------- point metrics
def average_precision(prob: np.ndarray, y: np.ndarray) -> float:
    """AUPRC as average precision (step-wise, ties grouped); NaN without both classes."""
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = np.asarray(y).astype(bool).ravel()
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == t.size:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    p_sorted, t_sorted = p[order], t[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), p_sorted.size - 1]
    tp = np.cumsum(t_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, *, bins: int = 10) -> float:
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = np.asarray(y, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan")
    b = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(b, minlength=bins)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=t, minlength=bins)
    nz = count > 0
    return float(np.sum(np.abs(sum_p[nz] - sum_y[nz])) / p.size)


def threshold_at_specificity(prob_negatives: np.ndarray, specificity: float = 0.9) -> float:
    """The score above which a share ``1 - specificity`` of the negatives lies."""
    neg = np.sort(np.asarray(prob_negatives, dtype=np.float64).ravel())
    if neg.size == 0:
        return 1.0
    return float(neg[int(math.ceil(specificity * neg.size)) - 1])


def sensitivity_at_specificity(prob: np.ndarray, y: np.ndarray, specificity: float = 0.9) -> float:
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = np.asarray(y).astype(bool).ravel()
    if not t.any() or t.all():
        return float("nan")
    return float((p[t] > threshold_at_specificity(p[~t], specificity)).mean())


def classification_metrics(prob: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC, Brier score, ECE (10 bins) and sensitivity at 90% specificity."""
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = np.asarray(y).astype(int).ravel()
    return {
        "auroc": auroc(p, t),
        "auprc": average_precision(p, t),
        "brier": float(np.mean((p - t) ** 2)) if p.size else float("nan"),
        "ece": expected_calibration_error(p, t),
        "sens_at_90spec": sensitivity_at_specificity(p, t, 0.9),
    }


# --------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap 95% interval."""

    value: float
    lo: float
    hi: float

    def contains(self, v: float) -> bool:
        return self.lo <= v <= self.hi

    def fmt(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 5) if math.isfinite(v) else None) for k, v in asdict(self).items()}  # type: ignore[misc]


def cluster_resamples(groups: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` index arrays, each the windows of a with-replacement sample of the groups."""
    g = np.asarray(groups)
    uniq, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(uniq.size)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, uniq.size, size=uniq.size)
        out.append(np.concatenate([members[k] for k in pick]) if uniq.size else np.zeros(0, np.int64))
    return out


def _interval(point: float, samples: Sequence[float]) -> Interval:
    s = np.asarray([v for v in samples if math.isfinite(v)], dtype=np.float64)
    if s.size < 10:
        return Interval(point, float("nan"), float("nan"))
    lo, hi = np.percentile(s, [2.5, 97.5])
    return Interval(float(point), float(lo), float(hi))


def bootstrap_metrics(
    prob: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    resamples: list[np.ndarray] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Interval]:
    """Every metric of :func:`classification_metrics` with a cluster-bootstrap 95% interval.

    ``extra`` maps a name to another score array (e.g. the true probability, giving
    ``bayes_auroc`` when named ``"bayes"``): its AUROC gets an interval from the same
    resamples. Pass ``resamples`` to share them between models (paired comparison)."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y).astype(int)
    rs = resamples if resamples is not None else cluster_resamples(groups, n_boot, seed)
    point = classification_metrics(p, t)
    samples: dict[str, list[float]] = {k: [] for k in METRICS}
    extra = dict(extra or {})
    extra_samples: dict[str, list[float]] = {k: [] for k in extra}
    for idx in rs:
        m = classification_metrics(p[idx], t[idx])
        for k in METRICS:
            samples[k].append(m[k])
        for k, s in extra.items():
            extra_samples[k].append(auroc(np.asarray(s)[idx], t[idx]))
    out = {k: _interval(point[k], samples[k]) for k in METRICS}
    for k, s in extra.items():
        out[f"{k}_auroc"] = _interval(auroc(np.asarray(s), t), extra_samples[k])
    return out


def paired_auroc_difference(prob_a: np.ndarray, prob_b: np.ndarray, y: np.ndarray, resamples: list[np.ndarray]
                            ) -> Interval:
    """AUROC(a) - AUROC(b) on the same windows, with a paired bootstrap interval (both scored
    on every resample); an interval containing 0 means no detectable difference."""
    a, b = np.asarray(prob_a, dtype=np.float64), np.asarray(prob_b, dtype=np.float64)
    t = np.asarray(y).astype(int)
    diffs = [auroc(a[idx], t[idx]) - auroc(b[idx], t[idx]) for idx in resamples]
    return _interval(auroc(a, t) - auroc(b, t), diffs)


# --------------------------------------------------------------------------- lead time
def first_alert(risk: np.ndarray, threshold: float, raise_windows: int = 2) -> int | None:
    """Index of the window that raises the first alert (risk >= threshold for
    ``raise_windows`` consecutive windows), or None."""
    run = 0
    for i, r in enumerate(np.asarray(risk, dtype=np.float64)):
        run = run + 1 if r >= threshold else 0
        if run >= raise_windows:
            return i
    return None


def alert_count(risk: np.ndarray, threshold: float, raise_windows: int = 2, clear_windows: int = 4,
                clear_threshold: float | None = None) -> int:
    """Alerts raised over a session with hysteresis (clear below ``clear_threshold``,
    default 0.75 x threshold, for ``clear_windows`` windows), like :mod:`stream.alerting`."""
    clear_at = 0.75 * threshold if clear_threshold is None else clear_threshold
    raised, run, n = False, 0, 0
    for r in np.asarray(risk, dtype=np.float64):
        toward = r < clear_at if raised else r >= threshold
        run = run + 1 if toward else 0
        if run >= (clear_windows if raised else raise_windows):
            raised, run = not raised, 0
            n += int(raised)
    return n


@dataclass(frozen=True)
class LeadTimes:
    lead_s: np.ndarray           # (n_injured,) lead time of each injured session, NaN when not alerted before
    injured: np.ndarray          # (n_sessions,) bool
    false_alerts: np.ndarray     # (n_sessions,) alerts raised in sessions without injury (0 for injured)
    hours: np.ndarray            # (n_sessions,) session length in hours
    threshold: float
    raise_windows: int


def lead_times(
    risk: np.ndarray,
    session: np.ndarray,
    t_end: np.ndarray,
    injury_end_s: np.ndarray,
    *,
    threshold: float,
    raise_windows: int = 2,
) -> LeadTimes:
    """Lead times of every session (see the module docstring). ``risk``, ``session`` and
    ``t_end`` are per window (windows of a session in time order); ``injury_end_s`` per
    session (NaN: no injury)."""
    r = np.asarray(risk, dtype=np.float64)
    s = np.asarray(session)
    t = np.asarray(t_end, dtype=np.float64)
    inj = np.asarray(injury_end_s, dtype=np.float64)
    n = inj.size
    lead = np.full(n, np.nan)
    false = np.zeros(n)
    hours = np.zeros(n)
    for k in range(n):
        idx = np.flatnonzero(s == k)
        if idx.size == 0:
            continue
        idx = idx[np.argsort(t[idx], kind="stable")]
        hours[k] = (t[idx[-1]] - t[idx[0]] + (t[idx[1]] - t[idx[0]] if idx.size > 1 else 0.0)) / 3600.0
        if math.isfinite(inj[k]):
            i = first_alert(r[idx], threshold, raise_windows)
            if i is not None and t[idx[i]] <= inj[k]:
                lead[k] = inj[k] - t[idx[i]]
        else:
            false[k] = alert_count(r[idx], threshold, raise_windows)
    injured = np.isfinite(inj)
    return LeadTimes(lead_s=lead[injured], injured=injured, false_alerts=false, hours=hours,
                     threshold=float(threshold), raise_windows=raise_windows)


def lead_time_summary(lt: LeadTimes, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Interval | float]:
    """Median lead time (s) of detected injuries, share detected, false alerts per hour,
    each with a bootstrap-over-sessions 95% interval."""
    inj_idx = np.flatnonzero(lt.injured)
    ok_idx = np.flatnonzero(~lt.injured)
    lead = np.full(lt.injured.size, np.nan)
    lead[inj_idx] = lt.lead_s

    def stats(sessions: np.ndarray) -> tuple[float, float, float]:
        inj = sessions[lt.injured[sessions]]
        ok = sessions[~lt.injured[sessions]]
        detected = lead[inj][np.isfinite(lead[inj])]
        med = float(np.median(detected)) if detected.size else float("nan")
        share = float(detected.size / inj.size) if inj.size else float("nan")
        h = float(lt.hours[ok].sum())
        rate = float(lt.false_alerts[ok].sum() / h) if h > 0 else float("nan")
        return med, share, rate

    point = stats(np.arange(lt.injured.size))
    rng = np.random.default_rng(seed)
    boots = [stats(rng.integers(0, lt.injured.size, size=lt.injured.size)) for _ in range(n_boot)] if lt.injured.size else []
    out: dict[str, Interval | float] = {}
    for j, name in enumerate(("lead_time_s", "detected", "false_alerts_per_h")):
        out[name] = _interval(point[j], [b[j] for b in boots])
    out["threshold"] = lt.threshold
    out["raise_windows"] = float(lt.raise_windows)
    out["injured_sessions"] = float(inj_idx.size)
    out["sessions"] = float(lt.injured.size)
    out["sessions_without_injury"] = float(ok_idx.size)
    return out


# --------------------------------------------------------------------------- plots
def reliability_curve(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed frequency and count per equal-width bin (non-empty bins)."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    b = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(b, minlength=bins)
    nz = count > 0
    return (np.bincount(b, weights=p, minlength=bins)[nz] / count[nz],
            np.bincount(b, weights=t, minlength=bins)[nz] / count[nz], count[nz])


def roc_curve_points(prob: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y).astype(bool)
    order = np.argsort(-p, kind="mergesort")
    ps, ts = p[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), ps.size - 1]
    tp = np.cumsum(ts)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / max(1, (~t).sum())], np.r_[0.0, tp / max(1, t.sum())]


def pr_curve_points(prob: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y).astype(bool)
    order = np.argsort(-p, kind="mergesort")
    ps, ts = p[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), ps.size - 1]
    tp = np.cumsum(ts)[last]
    return tp / max(1, t.sum()), tp / (last + 1)


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], y: np.ndarray, out_dir: str | os.PathLike[str],
                *, prefix: str = "", title: str = "") -> dict[str, Path]:
    """ROC, precision-recall and reliability PNGs of several models' probabilities on the
    same labels. ``curves`` maps a label to (prob, style-key array unused) - pass
    ``{name: (prob, None)}``; returns {"roc": path, "pr": path, "reliability": path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = np.asarray(y).astype(int)
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    for name, (prob, _) in curves.items():
        fpr, tpr = roc_curve_points(prob, t)
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} ({auroc(prob, t):.3f})", ls="--" if name.startswith("Bayes") else "-")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {title}".strip(), xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    paths["roc"] = out / f"{prefix}roc.png"
    fig.tight_layout()
    fig.savefig(paths["roc"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    for name, (prob, _) in curves.items():
        rec, prec = pr_curve_points(prob, t)
        ax.plot(rec, prec, lw=1.4, label=f"{name} ({average_precision(prob, t):.3f})",
                ls="--" if name.startswith("Bayes") else "-")
    ax.axhline(t.mean(), color="grey", lw=0.8, ls=":")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall {title}".strip(), xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper right")
    paths["pr"] = out / f"{prefix}pr.png"
    fig.tight_layout()
    fig.savefig(paths["pr"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    for name, (prob, _) in curves.items():
        mp, fy, _n = reliability_curve(prob, t)
        ax.plot(mp, fy, marker="o", ms=3, lw=1.2, label=f"{name} (ECE {expected_calibration_error(prob, t):.3f})",
                ls="--" if name.startswith("Bayes") else "-")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title=f"Reliability {title}".strip(),
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left")
    paths["reliability"] = out / f"{prefix}reliability.png"
    fig.tight_layout()
    fig.savefig(paths["reliability"], dpi=110)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- evaluate an artifact
@dataclass
class EvalReport:
    """The evaluation of one artifact on one generated cohort."""

    model_version: str
    encoder_version: str
    seed: int
    n_windows: int
    n_athletes: int
    metrics: dict[str, Interval]                 # with the athlete's image
    sensor_only: dict[str, Interval]             # the same windows, no image
    bayes_auroc: Interval
    bayes_auroc_sensor_only: Interval
    lead_time: dict[str, Any]
    reported_test_auroc: Interval | None         # the interval the training run reported, if any
    plots: dict[str, Path] = field(default_factory=dict)
    out_dir: Path | None = None
    seconds: float = 0.0

    @property
    def within_reported_interval(self) -> bool | None:
        if self.reported_test_auroc is None:
            return None
        return self.reported_test_auroc.contains(self.metrics["auroc"].value)

    def to_dict(self) -> dict[str, Any]:
        def iv(d: Mapping[str, Any]) -> dict[str, Any]:
            return {k: (v.to_dict() if isinstance(v, Interval) else v) for k, v in d.items()}

        return {
            "model_version": self.model_version, "encoder_version": self.encoder_version, "seed": self.seed,
            "n_windows": self.n_windows, "n_athletes": self.n_athletes,
            "metrics": iv(self.metrics), "sensor_only": iv(self.sensor_only),
            "bayes_auroc": self.bayes_auroc.to_dict(), "bayes_auroc_sensor_only": self.bayes_auroc_sensor_only.to_dict(),
            "lead_time": iv(self.lead_time),
            "reported_test_auroc": self.reported_test_auroc.to_dict() if self.reported_test_auroc else None,
            "within_reported_interval": self.within_reported_interval,
            "plots": {k: str(v) for k, v in self.plots.items()}, "seconds": round(self.seconds, 2),
        }

    def to_markdown(self) -> str:
        rows = ["| | " + " | ".join(METRIC_LABELS[k] for k in METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        rows.append("| with image | " + " | ".join(self.metrics[k].fmt() for k in METRICS) + " |")
        rows.append("| sensors only | " + " | ".join(self.sensor_only[k].fmt() for k in METRICS) + " |")
        lt = self.lead_time
        within = self.within_reported_interval
        lines = [
            f"# Evaluation of `{self.model_version}`",
            "",
            f"Fresh synthetic cohort, seed {self.seed}: {self.n_windows} windows of {self.n_athletes} athletes "
            f"(image encoder `{self.encoder_version}`, images from the bank's test part). "
            "95% intervals: cluster bootstrap over athletes.",
            "",
            *rows,
            "",
            f"Bayes AUROC (the true probability): {self.bayes_auroc.fmt()}; without the image: "
            f"{self.bayes_auroc_sensor_only.fmt()}.",
            "",
        ]
        if self.reported_test_auroc is not None:
            lines += [f"Training run's reported test AUROC: {self.reported_test_auroc.fmt()}; this cohort's AUROC "
                      f"{self.metrics['auroc'].value:.3f} is {'inside' if within else 'OUTSIDE'} that interval.", ""]
        if lt:
            lines += [
                f"Alert lead time on {int(lt['sessions'])} sessions ({int(lt['injured_sessions'])} with an injury), "
                f"alert = risk >= {lt['threshold']:.3f} (90% specificity on validation) for "
                f"{int(lt['raise_windows'])} consecutive windows:",
                "",
                f"- median lead time of alerted injuries: {lt['lead_time_s'].fmt(0)} s",
                f"- injuries alerted in time: {lt['detected'].fmt()}",
                f"- false alerts per hour (sessions without injury): {lt['false_alerts_per_h'].fmt(2)}",
                "",
            ]
        for k, p in self.plots.items():
            lines.append(f"![{k}]({p.name})")
        return "\n".join(lines) + "\n"


def _reported_interval(training: Mapping[str, Any]) -> Interval | None:
    d = training.get("test_intervals", {}).get("auroc")
    if not d or d.get("lo") is None:
        return None
    return Interval(float(d["value"]), float(d["lo"]), float(d["hi"]))


def encoder_for_artifact(artifact: Any) -> Any:
    """The ResNet50 encoder an artifact was trained with: its folder's ``encoder.pt`` if
    present (fine-tuned), else the checkpoint recorded in training, else the seeded init.
    Raises EngineError when the version does not match the artifact's."""
    from engine.exceptions import EngineError
    from engine.imaging.encoder import ResNet50Encoder

    meta = artifact.meta
    own = artifact.directory / "encoder.pt" if artifact.directory is not None else None
    recorded = meta.training.get("image_bank", {}).get("encoder_checkpoint")
    ckpt = own if own is not None and own.is_file() else (Path(recorded) if recorded else None)
    enc = ResNet50Encoder(ckpt) if ckpt is not None else ResNet50Encoder()
    if enc.version != meta.encoder_version:
        raise EngineError(f"{artifact.directory}: the model was trained with image encoder {meta.encoder_version}, "
                          f"but the encoder available here is {enc.version} (checkpoint {ckpt}); "
                          "pass the checkpoint the model was trained with")
    return enc


def bank_for_artifact(artifact: Any, *, cache_dir: str | os.PathLike[str] | None, progress: bool = False) -> Any:
    """The image bank an artifact was trained with (rebuilt from the cache)."""
    from engine.data.image_bank import dataset_bank, synthetic_bank

    info = artifact.meta.training.get("image_bank", {})
    enc = encoder_for_artifact(artifact)
    if info.get("data"):
        return dataset_bank(info["data"], encoder=enc, cache_dir=cache_dir, max_images=int(info.get("max_images", 1500)),
                            seed=int(info.get("seed", 0)), progress=progress)
    return synthetic_bank(int(info.get("n", 64)), encoder=enc, cache_dir=cache_dir, size=int(info.get("size_px", 384)),
                          progress=progress)


def score_windows(scorer: Any, x: np.ndarray, images: Sequence[Any], *, batch: int = 256) -> np.ndarray:
    """Probabilities of ``x`` (n, T, C) physical units with one ImageFeatures (or None) each."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], batch):
        res = scorer.score(x[s:s + batch], list(images[s:s + batch]))
        out[s:s + batch] = [r.prob for r in res]
    return out


def evaluate(
    artifact_dir: str | os.PathLike[str],
    *,
    seed: int,
    n_windows: int = 3000,
    out_dir: str | os.PathLike[str] | None = None,
    n_sessions: int = 60,
    backend: str = "onnxruntime",
    threads: int = 1,
    n_boot: int = 1000,
    bank_cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> EvalReport:
    """Score the artifact on a fresh cohort generated with ``seed`` (windows and sessions),
    through :class:`engine.scorer.Scorer`; write ``report.md``, ``metrics.json`` and the
    plots to ``out_dir`` (default ``<artifact_dir>/eval-seed<seed>``)."""
    from engine.artifact import ModelArtifact
    from engine.data.image_bank import DEFAULT_CACHE_DIR
    from engine.data.synthetic import session_dataset, window_dataset
    from engine.scorer import Scorer

    t0 = time.perf_counter()
    artifact = ModelArtifact.load(artifact_dir)
    out = Path(out_dir) if out_dir is not None else Path(artifact_dir) / f"eval-seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    bank = bank_for_artifact(artifact, cache_dir=DEFAULT_CACHE_DIR if bank_cache_dir is None else bank_cache_dir,
                             progress=progress)
    meta = artifact.meta
    data = window_dataset(n_windows, seed=seed, window=meta.window, hz=meta.hz)
    rng = np.random.default_rng(seed + 5)
    lesion = np.array([p.image_lesion for p in data.profiles])
    img_idx = bank.draw(lesion, "test", rng)
    images = [bank.features(int(img_idx[a])) for a in data.athlete]
    with Scorer(artifact, backend=backend, threads=threads) as scorer:
        prob = score_windows(scorer, data.x, images)
        prob_no = score_windows(scorer, data.x, [None] * len(data))
        sessions = session_dataset(n_sessions, seed=seed + 1, window=meta.window, hz=meta.hz)
        sw = sessions.windows
        s_lesion = np.array([p.image_lesion for p in sw.profiles])
        s_img = bank.draw(s_lesion, "test", np.random.default_rng(seed + 6))
        s_prob = score_windows(scorer, sw.x, [bank.features(int(s_img[a])) for a in sw.athlete])
    rs = cluster_resamples(data.athlete, n_boot, seed)
    m = bootstrap_metrics(prob, data.y, data.athlete, resamples=rs, extra={"bayes": data.p, "bayes_sensor": data.p_sensor})
    m_no = bootstrap_metrics(prob_no, data.y, data.athlete, resamples=rs)
    threshold = float(meta.training.get("alert_threshold", 0.6))
    lt = lead_time_summary(lead_times(s_prob, sw.athlete, sw.t_end, sessions.injury_end_s, threshold=threshold),
                           n_boot=n_boot, seed=seed)
    curves = {"model": (prob, None), "model, no image": (prob_no, None), "Bayes (true p)": (data.p, None)}
    plots = plot_curves(curves, data.y, out, title=f"(seed {seed})")
    report = EvalReport(
        model_version=meta.model_version, encoder_version=meta.encoder_version, seed=seed, n_windows=len(data),
        n_athletes=len(data.profiles), metrics={k: m[k] for k in METRICS}, sensor_only=m_no,
        bayes_auroc=m["bayes_auroc"], bayes_auroc_sensor_only=m["bayes_sensor_auroc"], lead_time=lt,
        reported_test_auroc=_reported_interval(meta.training), plots=plots, out_dir=out,
    )
    report.seconds = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    (out / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    log.info("evaluated %s on seed %d: AUROC %s (Bayes %s) -> %s", meta.model_version, seed,
             report.metrics["auroc"].fmt(), report.bayes_auroc.fmt(), out)
    return report


def metric_table(rows: Mapping[str, Mapping[str, Interval]], keys: Sequence[str] = METRICS,
                 fmt: Callable[[str, Interval], str] | None = None) -> str:
    """A Markdown table: one row per model, one column per metric ("value [lo, hi]")."""
    head = "| model | " + " | ".join(METRIC_LABELS.get(k, k) for k in keys) + " |"
    lines = [head, "|---" * (len(keys) + 1) + "|"]
    for name, m in rows.items():
        cells = [(fmt(k, m[k]) if fmt else m[k].fmt()) if k in m else "n/a" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
