"""Altair charts of the athlete view: risk timeline with alert markers, window traces with attention.

Builders are pure (data in, chart out); the app passes them to ``st.altair_chart``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import altair as alt
import pandas as pd

from dashboard.data import Traces
from dashboard.render import LEVEL_BACKGROUNDS, LEVEL_COLOURS
from dashboard.settings import DashboardSettings
from schemas.alerts import Alert
from schemas.risk import RegionPoint, RiskScore

TRACE_GROUPS = (
    ("Knee flexion (deg)", "knee_flexion"),
    ("Knee valgus (deg)", "knee_valgus"),
    ("Hip flexion (deg)", "hip_flexion"),
    ("Vertical GRF (BW)", "grf_vertical"),
)
SIDE_COLOURS = alt.Scale(domain=["left", "right"], range=["#1565c0", "#ad1457"])
ATTENTION_COLOUR = "#7e57c2"
REGION_GRID = 7
TRACE_WIDTH = 720


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite dict of a chart, without Altair's schema validation (the tests validate each builder)."""
    return chart.to_dict(validate=False)


def downsample_max(scores: list[RiskScore], n: int) -> list[RiskScore]:
    """At most ``n`` points, keeping the highest-risk window of each bucket (peaks never vanish)."""
    if len(scores) <= n:
        return scores
    size = -(-len(scores) // n)
    return [max(scores[i:i + size], key=lambda s: s.risk) for i in range(0, len(scores), size)]


def risk_timeline(history: list[RiskScore], alerts: list[Alert], settings: DashboardSettings) -> alt.LayerChart:
    """Risk over the session on level bands, with thresholds and raised/cleared alert markers."""
    pts = downsample_max(history, settings.chart_points)
    df = pd.DataFrame({"time": [_utc(s.window_end) for s in pts], "risk": [s.risk for s in pts],
                       "level": [s.level for s in pts], "image": [s.image_used for s in pts]})
    t0 = df["time"].min() if len(df) else _utc(0)
    t1 = df["time"].max() if len(df) else _utc(1)
    bands = pd.DataFrame({"lo": [0.0, settings.level_moderate, settings.level_high],
                          "hi": [settings.level_moderate, settings.level_high, 1.0],
                          "level": ["low", "moderate", "high"], "t0": [t0] * 3, "t1": [t1] * 3})
    band = alt.Chart(bands).mark_rect(opacity=0.6).encode(
        x="t0:T", x2="t1:T", y=alt.Y("lo:Q", scale=alt.Scale(domain=[0, 1])), y2="hi:Q",
        color=alt.Color("level:N", scale=alt.Scale(domain=list(LEVEL_BACKGROUNDS),
                                                   range=list(LEVEL_BACKGROUNDS.values())), legend=None))
    line = alt.Chart(df).mark_line(color="#263238", strokeWidth=1.5).encode(
        x=alt.X("time:T", title="time", axis=alt.Axis(format="%H:%M:%S")), y=alt.Y("risk:Q", title="injury risk", scale=alt.Scale(domain=[0, 1])))
    dots = alt.Chart(df).mark_circle(size=18).encode(
        x="time:T", y="risk:Q",
        color=alt.Color("level:N", scale=alt.Scale(domain=list(LEVEL_COLOURS), range=list(LEVEL_COLOURS.values())),
                        title="level"),
        tooltip=[alt.Tooltip("time:T", format="%H:%M:%S"), alt.Tooltip("risk:Q", format=".2f"), "level:N",
                 "image:N"])
    thr = pd.DataFrame({"y": [settings.alert_raise, settings.alert_clear], "what": ["alert raise", "alert clear"]})
    rules = alt.Chart(thr).mark_rule(strokeDash=[4, 3], color="#555").encode(y="y:Q", tooltip=["what:N", "y:Q"])
    layers = [band, line, dots, rules]
    if alerts:
        ev = pd.DataFrame({"time": [_utc(a.at) for a in alerts], "state": [a.state for a in alerts],
                           "risk": [a.risk for a in alerts], "alert": [a.alert_id for a in alerts]})
        layers.append(alt.Chart(ev).mark_rule(strokeWidth=2).encode(
            x="time:T",
            color=alt.Color("state:N", scale=alt.Scale(domain=["raised", "cleared"],
                                                       range=[LEVEL_COLOURS["high"], LEVEL_COLOURS["low"]]),
                            title="alert"),
            tooltip=[alt.Tooltip("time:T", format="%H:%M:%S"), "state:N", alt.Tooltip("risk:Q", format=".2f"),
                     "alert:N"]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(height=260)


def traces_chart(traces: Traces) -> alt.VConcatChart:
    """One panel per joint quantity (left and right), the model's attention shaded behind each."""
    att_max = max(traces.attention) if traces.attention else 0.0
    att = pd.DataFrame({"t": traces.t, "attention": traces.attention})
    panels = []
    for title, stem in TRACE_GROUPS:
        frames = []
        for side, suffix in (("left", "l"), ("right", "r")):
            values = traces.channels.get(f"{stem}_{suffix}")
            if values is not None:
                frames.append(pd.DataFrame({"t": traces.t[:len(values)], "value": values, "side": side}))
        area = alt.Chart(att).mark_area(color=ATTENTION_COLOUR, opacity=0.25).encode(
            x=alt.X("t:Q", title="seconds in window", axis=alt.Axis(format=".1f")),
            y=alt.Y("attention:Q", title="attention", axis=alt.Axis(orient="right", titleColor=ATTENTION_COLOUR),
                    scale=alt.Scale(domain=[0, att_max or 1.0])))
        if frames:
            df = pd.concat(frames, ignore_index=True).dropna()
            lines = alt.Chart(df).mark_line(strokeWidth=1.3).encode(
                x="t:Q", y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False), axis=alt.Axis(format="~r")),
                color=alt.Color("side:N", scale=SIDE_COLOURS, title="side"),
                tooltip=[alt.Tooltip("t:Q", format=".2f"), "side:N", alt.Tooltip("value:Q", format=".2f")])
            panel = alt.layer(area, lines).resolve_scale(y="independent")
        else:
            panel = area.properties(title=f"{title}: not measured")
        panels.append(panel.properties(height=110, width=TRACE_WIDTH))
    return alt.vconcat(*panels).resolve_scale(color="shared")


def regions_chart(regions: list[RegionPoint]) -> alt.Chart:
    """Which of the 7x7 image regions the image attention weighed most (only the top ones are sent)."""
    weight = {p.region: p.weight for p in regions}
    df = pd.DataFrame([{"row": i // REGION_GRID, "col": i % REGION_GRID, "weight": weight.get(i, 0.0)}
                       for i in range(REGION_GRID * REGION_GRID)])
    return alt.Chart(df).mark_rect(stroke="#ffffff", strokeWidth=1).encode(
        x=alt.X("col:O", title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("row:O", title=None, axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme="purples"), legend=None),
        tooltip=["row:O", "col:O", alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=180, height=180)
