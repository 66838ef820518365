"""dashboard.charts: chart builders give valid Vega-Lite with the data the views need."""

from __future__ import annotations

import numpy as np
import orjson

from dashboard import charts, data
from dashboard.settings import DashboardSettings
from schemas.risk import RegionPoint
from stream.pipeline import traces_of
from stream.windowing import Window
from dashboard import sample


def test_downsample_keeps_peaks(make_score):
    scores = [make_score(end=1000.0 + k, risk=0.1) for k in range(100)]
    scores[37] = make_score(end=1037.0, risk=0.95)
    out = charts.downsample_max(scores, 10)
    assert len(out) == 10 and max(s.risk for s in out) == 0.95
    assert charts.downsample_max(scores[:5], 10) == scores[:5]


def test_risk_timeline_has_points_thresholds_and_alert_markers(make_score, make_alert):
    cfg = DashboardSettings(chart_points=50, _env_file=None)
    hist = [make_score(end=1000.0 + k * 0.5, risk=k / 200) for k in range(100)]
    spec = charts.risk_timeline(hist, [make_alert(at=1010.0), make_alert(at=1020.0, state="cleared")], cfg).to_dict()
    datasets = spec["datasets"].values()
    assert any(len(d) == 50 and "risk" in d[0] for d in datasets)
    assert any([r["state"] for r in d] == ["raised", "cleared"] for d in datasets if d and "state" in d[0])
    assert any({r["y"] for r in d} == {cfg.alert_raise, cfg.alert_clear} for d in datasets if d and "what" in d[0])
    assert charts.risk_timeline([], [], cfg).to_dict()  # empty history still draws


def test_traces_chart_has_a_panel_per_quantity_and_marks_absent_channels():
    d = sample.window_data(1, 0)
    d[:, 30:32] = np.nan  # both GRF channels absent
    w = Window("ath-a", "s1", 100_000, 100.0, d, 0.0, ("grf_vertical_l", "grf_vertical_r"), 0.0)
    tr = orjson.loads(orjson.dumps(traces_of(w, np.full(50, 0.02), 0.04), option=orjson.OPT_SERIALIZE_NUMPY))  # as stored
    client_side = data.Traces(tr["window_start"], tr["window_end"], tr["t"], tr["channels"], tr["attention"])
    spec = charts.traces_chart(client_side).to_dict()
    assert len(spec["vconcat"]) == len(charts.TRACE_GROUPS)
    assert spec["vconcat"][-1]["title"] == "Vertical GRF (BW): not measured"


def test_regions_chart_is_a_full_grid():
    spec = charts.regions_chart([RegionPoint(region=8, weight=0.3)]).to_dict()
    grid = next(iter(spec["datasets"].values()))
    assert len(grid) == 49 and [c for c in grid if c["weight"] > 0] == [{"row": 1, "col": 1, "weight": 0.3}]
