from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from engine.baselines import FULL_MODEL
from engine.report import ORACLE, main, run_report
from engine.train import TrainConfig


def test_quick_report_writes_tables_plots_and_the_unseen_seed_check(tmp_path: Path) -> None:
    cfg = replace(TrainConfig.tiny(), n_windows=240, epochs=1, n_boot=30)
    rows = ["Logistic regression, workload", "Ablation: no attention"]
    r = run_report(tmp_path / "rep", seed=2, quick=True, config=cfg, n_sessions=4, models=rows)
    assert set(r.results) == {FULL_MODEL, ORACLE, *rows}
    text = r.readme.read_text()
    for needle in ("| model | AUROC | AUPRC | Brier | ECE | Sens@90%Spec |", "Bayes (true probability)",
                   "## Efficiency", "trainable params", "## Alert lead time", "Unseen seed", "quick smoke run",
                   "![ROC](roc.png)"):
        assert needle in text, needle
    for name in ("roc.png", "pr.png", "reliability.png", "results.json", "model/meta.json", "unseen-seed/report.md"):
        assert (tmp_path / "rep" / name).is_file(), name
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert set(res["models"]) == set(r.results) and res["seed"] == 2
    full = res["models"][FULL_MODEL]
    assert full["efficiency"]["params"] > 0 and full["efficiency"]["flops"] > 0
    assert full["metrics"]["auroc"]["lo"] <= full["metrics"]["auroc"]["value"] <= full["metrics"]["auroc"]["hi"]
    assert res["unseen_seed"]["seed"] == 1002 and isinstance(res["unseen_seed"]["within_reported_interval"], bool)
    assert res["models"]["Logistic regression, workload"]["fit"]["coefficients"]
    assert res["data"]["splits"]["test"]["windows"] > 0
    assert "auroc_diff_full_minus_this" in res["models"]["Ablation: no attention"]["fit"]
    import numpy as np

    z = np.load(tmp_path / "rep" / "test_predictions.npz")
    assert list(z["names"]) == list(r.results) and z["prob"].shape == (len(r.results), z["y"].size)
    assert "Paired comparison" in text
    # the README is a pure function of results.json: re-rendering gives the same text
    (tmp_path / "rep" / "README.md").unlink()
    assert main(["--out", str(tmp_path / "rep"), "--rerender"]) == 0
    assert (tmp_path / "rep" / "README.md").read_text() == text
    # efficiency re-measured back to back: the same architecture gets the same FLOPs, the note appears
    before = res["models"][FULL_MODEL]["efficiency"]
    assert main(["--out", str(tmp_path / "rep"), "--remeasure-efficiency"]) == 0
    after = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert after["models"][FULL_MODEL]["efficiency"]["flops"] == before["flops"]
    assert after["models"][FULL_MODEL]["efficiency"]["train_s"] == before["train_s"]
    assert "re-measured back to back" in (tmp_path / "rep" / "README.md").read_text()


def test_main_parses_arguments(tmp_path: Path, monkeypatch) -> None:
    calls = {}

    def fake(out, **kw):  # the real run is the test above; here only the argument parsing
        calls.update(out=out, **kw)
        raise SystemExit(0)

    monkeypatch.setattr("engine.report.run_report", fake)
    try:
        main(["--out", str(tmp_path), "--seed", "7", "--quick"])
    except SystemExit:
        pass
    assert calls["out"] == str(tmp_path) and calls["seed"] == 7 and calls["quick"] is True
    assert calls["command"].startswith("python -m engine.report --out")
