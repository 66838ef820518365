from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.evaluate import (
    METRICS,
    EvalReport,
    Interval,
    alert_count,
    average_precision,
    bootstrap_metrics,
    classification_metrics,
    cluster_resamples,
    evaluate,
    expected_calibration_error,
    first_alert,
    lead_time_summary,
    lead_times,
    metric_table,
    paired_auroc_difference,
    plot_curves,
    pr_curve_points,
    roc_curve_points,
    sensitivity_at_specificity,
    threshold_at_specificity,
)


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, 3000)
    y = (rng.random(p.size) < p).astype(int)
    groups = np.repeat(np.arange(150), 20)
    return p, y, groups


def test_metrics_match_scikit_learn(scored) -> None:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    p, y, _ = scored
    m = classification_metrics(p, y)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert m["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-9)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    # ties are grouped the way scikit-learn groups them
    q = np.round(p, 1)
    assert average_precision(q, y) == pytest.approx(average_precision_score(y, q), abs=1e-9)


def test_known_values() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    perfect = classification_metrics(np.array([0.1, 0.1, 0.2, 0.2, 0.9, 0.9]), y)
    assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0 and perfect["sens_at_90spec"] == 1.0
    flat = classification_metrics(np.full(6, 0.5), y)
    assert flat["auroc"] == 0.5 and flat["ece"] == pytest.approx(abs(0.5 - 2 / 6))
    assert np.isnan(classification_metrics(np.array([0.3, 0.4]), np.array([1, 1]))["auroc"])
    # calibrated scores have a small ECE, a constant offset a large one
    rng = np.random.default_rng(1)
    p = rng.random(200000)
    t = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(p, t) < 0.01
    assert expected_calibration_error(np.clip(p + 0.2, 0, 1), t) > 0.15


def test_sensitivity_at_specificity() -> None:
    neg = np.linspace(0, 0.9, 10)  # the 90th percentile of the negatives is 0.8
    assert threshold_at_specificity(neg, 0.9) == pytest.approx(0.8)
    p = np.r_[neg, 0.85, 0.5, 0.95]
    y = np.r_[np.zeros(10), 1, 1, 1]
    assert sensitivity_at_specificity(p, y, 0.9) == pytest.approx(2 / 3)


def test_curves_span_the_unit_square(scored) -> None:
    p, y, _ = scored
    fpr, tpr = roc_curve_points(p, y)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0 and (np.diff(fpr) >= 0).all()
    assert np.trapezoid(tpr, fpr) == pytest.approx(classification_metrics(p, y)["auroc"], abs=1e-9)
    rec, prec = pr_curve_points(p, y)
    assert rec[-1] == 1.0 and prec[-1] == pytest.approx(y.mean())


def test_cluster_bootstrap_resamples_whole_groups(scored) -> None:
    _, _, groups = scored
    rs = cluster_resamples(groups, 5, seed=0)
    for idx in rs:
        g, counts = np.unique(groups[idx], return_counts=True)
        assert (counts % 20 == 0).all()  # a group comes whole (possibly several times)
        assert idx.size == groups.size
    assert all(np.array_equal(a, b) for a, b in zip(rs, cluster_resamples(groups, 5, seed=0)))


def test_bootstrap_intervals_contain_the_estimate_and_cover_the_truth(scored) -> None:
    p, y, groups = scored
    m = bootstrap_metrics(p, y, groups, n_boot=200, seed=0, extra={"bayes": p})
    for k in METRICS:
        if k != "ece":  # ECE is biased upwards under resampling: its percentile interval may sit above it
            assert m[k].lo <= m[k].value <= m[k].hi, k
    assert m["ece"].hi > m["ece"].value
    assert m["bayes_auroc"].value == m["auroc"].value
    # the true AUROC of this generator (a large sample) is inside the interval
    rng = np.random.default_rng(5)
    big = rng.beta(2, 5, 400000)
    truth = classification_metrics(big, (rng.random(big.size) < big).astype(int))["auroc"]
    assert m["auroc"].contains(truth)
    assert 0.01 < m["auroc"].hi - m["auroc"].lo < 0.1


def test_paired_difference(scored) -> None:
    p, y, groups = scored
    rs = cluster_resamples(groups, 200, seed=1)
    same = paired_auroc_difference(p, p, y, rs)
    assert same.value == same.lo == same.hi == 0.0
    noisy = np.clip(p + np.random.default_rng(2).normal(0, 0.3, p.size), 0, 1)
    d = paired_auroc_difference(p, noisy, y, rs)
    assert d.value > 0 and d.lo > 0  # the noisier score is detectably worse
    assert d.value == pytest.approx(classification_metrics(p, y)["auroc"] - classification_metrics(noisy, y)["auroc"])


def test_interval_formatting() -> None:
    iv = Interval(0.81234, 0.79, 0.83)
    assert iv.fmt() == "0.812 [0.790, 0.830]" and iv.contains(0.8) and not iv.contains(0.9)
    assert Interval(float("nan"), 0, 1).fmt() == "n/a"
    assert Interval(0.5, float("nan"), float("nan")).fmt() == "0.500"
    assert iv.to_dict() == {"value": 0.81234, "lo": 0.79, "hi": 0.83}
    table = metric_table({"m": {k: iv for k in METRICS}})
    assert table.count("\n") == 2 and "0.812 [0.790, 0.830]" in table and "AUROC" in table


def test_first_alert_needs_consecutive_windows() -> None:
    assert first_alert(np.array([0.1, 0.9, 0.1, 0.9, 0.9, 0.9]), 0.5, 2) == 4
    assert first_alert(np.array([0.9, 0.1]), 0.5, 2) is None
    assert first_alert(np.array([0.5]), 0.5, 1) == 0
    # hysteresis: one alert until the risk falls below 0.75 x threshold for 4 windows
    risk = np.array([0.9, 0.9, 0.45, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9])
    assert alert_count(risk, 0.5) == 2


def test_lead_times_by_hand() -> None:
    # session 0: alert raised at t=30 (2nd window >= 0.5), injury window ends at t=50 -> 20 s
    # session 1: injured at t=20 but alert only at t=30 -> missed
    # session 2: no injury, one alert -> a false alert
    risk = np.array([0.1, 0.6, 0.7, 0.2, 0.3, 0.1, 0.2, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9])
    session = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    t = np.array([10, 20, 30, 40, 50, 10, 20, 30, 40, 10, 20, 30, 40, 50], dtype=float)
    injury = np.array([50.0, 20.0, np.nan])
    lt = lead_times(risk, session, t, injury, threshold=0.5)
    assert lt.lead_s[0] == 20.0 and np.isnan(lt.lead_s[1])
    assert lt.false_alerts.tolist() == [0.0, 0.0, 1.0]
    s = lead_time_summary(lt, n_boot=50)
    assert s["lead_time_s"].value == 20.0 and s["detected"].value == 0.5
    assert s["false_alerts_per_h"].value == pytest.approx(1.0 / (50 / 3600))
    assert s["injured_sessions"] == 2 and s["sessions"] == 3


def test_plots_are_written(scored, tmp_path: Path) -> None:
    p, y, _ = scored
    paths = plot_curves({"model": (p, None), "Bayes": (p, None)}, y, tmp_path, prefix="x-")
    assert set(paths) == {"roc", "pr", "reliability"}
    for path in paths.values():
        assert path.name.startswith("x-") and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_an_artifact_on_an_unseen_seed(make_artifact, tmp_path: Path) -> None:
    art = make_artifact("tiny")
    rep = evaluate(art, seed=123, n_windows=120, n_sessions=4, out_dir=tmp_path / "eval", n_boot=30)
    assert isinstance(rep, EvalReport) and rep.seed == 123 and rep.n_windows == 120
    for k in METRICS:
        assert k in rep.metrics and k in rep.sensor_only
    assert 0.5 < rep.bayes_auroc.value <= 1.0
    assert rep.reported_test_auroc is not None and rep.within_reported_interval in (True, False)
    assert rep.lead_time["sessions"] == 4.0
    files = {p.name for p in (tmp_path / "eval").iterdir()}
    assert {"report.md", "metrics.json", "roc.png", "pr.png", "reliability.png"} <= files
    d = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert d["seed"] == 123 and d["metrics"]["auroc"]["value"] == pytest.approx(rep.metrics["auroc"].value, abs=1e-5)
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "Bayes AUROC" in md and "![roc](roc.png)" in md
    again = evaluate(art, seed=123, n_windows=120, n_sessions=4, out_dir=tmp_path / "again", n_boot=30)
    assert again.metrics["auroc"] == rep.metrics["auroc"]  # a seed fixes the cohort


def test_evaluate_refuses_an_artifact_of_another_encoder(make_artifact, tmp_path: Path) -> None:
    from engine.exceptions import EngineError

    # the "untrained" fixture artifact carries the stand-in encoder version: no bank can match it
    with pytest.raises(EngineError, match="encoder"):
        evaluate(make_artifact(), seed=1, n_windows=40, n_sessions=2, out_dir=tmp_path / "e", n_boot=10)
