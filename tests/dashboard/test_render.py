"""dashboard.render: HTML of the squad list and alert tables (pure)."""

from __future__ import annotations

from dashboard import render
from dashboard.data import Ack, AthleteRow, Workload
from dashboard.settings import DashboardSettings


def _row(athlete_id: str = "ath-01", risk: float = 0.7, level: str = "high", **kw) -> AthleteRow:
    base = dict(athlete_id=athlete_id, session_id="s1", risk=risk, level=level, window_end=100.0, trend=0.1,
                last_seen=99.0, age_s=1.0, stale=False, image_used=True)
    return AthleteRow(**{**base, **kw})


def test_trend_arrow_and_dead_band():
    assert [render.trend_arrow(d, 0.05) for d in (0.2, 0.04, -0.04, -0.2, None)] == ["↑", "→", "→", "↓", "·"]


def test_format_age():
    assert [render.format_age(x) for x in (0.42, 42, 600, 10_800, None)] == ["0.4 s", "42 s", "10 min", "3.0 h", "—"]


def test_squad_table_has_one_row_per_athlete_with_level_colour_and_stale_flag():
    html = render.squad_table_html([_row(), _row("ath-02", 0.1, "low", stale=True, trend=None, age_s=12.0)], now=100.0)
    assert html.count('<tr class="im-row') == 2
    assert 'data-athlete="ath-02" data-level="low"' in html and "im-stale" in html and ">stale<" in html
    assert render.LEVEL_BACKGROUNDS["high"] in html and render.LEVEL_BACKGROUNDS["low"] in html
    assert '<a href="?view=athlete&amp;athlete=ath-01">ath-01</a>' in html
    assert "12 s" in html and "↑" in html and "·" in html


def test_squad_table_escapes_stream_values_and_says_when_empty():
    html = render.squad_table_html([_row('<img src=x onerror="alert(1)">', session_id="<b>s</b>")], now=100.0)
    assert "<img" not in html and "&lt;img" in html and "<b>" not in html and "&lt;b&gt;s" in html
    assert "No athlete matches." in render.squad_table_html([], now=0.0)


def test_alert_cell_shows_acknowledgement(make_alert):
    alert = make_alert("ath-01", 90.0)
    html = render.squad_table_html([_row(alert=alert, ack=Ack(alert.alert_id, "Coach <K>", 95.0))], now=100.0)
    assert "ALERT" in html and "10 s" in html and "ack Coach &lt;K&gt;" in html
    assert "unacknowledged" in render.squad_table_html([_row(alert=alert)], now=100.0)


def test_alert_tables(make_alert):
    raised, cleared = make_alert("ath-01", 90.0), make_alert("ath-01", 95.0, "cleared", raised_at=90.0)
    acks = {raised.alert_id: Ack(raised.alert_id, "Ann", 91.0, "ice")}
    active = render.active_alerts_html([raised], acks, now=100.0)
    assert f'data-alert="{raised.alert_id}"' in active and "Ann at" in active and ": ice" in active
    assert "No active alert." in render.active_alerts_html([], {}, now=0.0)
    hist = render.alert_history_html([cleared, raised], acks)
    assert hist.index("cleared") < hist.index("raised")


def test_thresholds_text_prefers_the_thresholds_an_alert_carries(make_alert):
    cfg = DashboardSettings(alert_raise=0.7, alert_clear=0.5, _env_file=None)
    assert "≥ 0.70" in render.thresholds_text(cfg) and "below 0.50" in render.thresholds_text(cfg)
    text = render.thresholds_text(cfg, make_alert())  # the fixture's alert carries 0.6 / 0.45
    assert "≥ 0.60 for 2" in text and "below 0.45 for 4" in text


def test_workload_html_shows_player_load_only_when_known():
    assert "PlayerLoad" not in render.workload_html(Workload())
    html = render.workload_html(Workload(windows=3, grf_peak={"l": 2.5, "r": 2.0}, player_load=12.34))
    assert "L 2.50 BW / R 2.00 BW" in html and "12.3 AU" in html
