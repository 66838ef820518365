"""Pure formatting of dashboard content as HTML strings (no Streamlit, no Redis): testable and fast.

Tables are plain HTML (``st.html``), so a browser test reads every cell, unlike ``st.dataframe``
whose rows are drawn on a canvas. Every value that comes from the stream is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from html import escape
from urllib.parse import urlencode

from dashboard.data import Ack, AthleteRow, Workload
from dashboard.settings import DashboardSettings
from schemas.alerts import Alert

LEVEL_COLOURS = {"high": "#c62828", "moderate": "#ef6c00", "low": "#2e7d32"}  # text / marks
LEVEL_BACKGROUNDS = {"high": "#fde0dc", "moderate": "#fff0d9", "low": "#e3f4e5"}  # cells
LEVELS = ("low", "moderate", "high")

TABLE_CSS = """<style>
table.im-table{border-collapse:collapse;width:100%;font-size:0.9rem;font-variant-numeric:tabular-nums}
table.im-table th{text-align:left;border-bottom:2px solid #999;padding:4px 8px;white-space:nowrap}
table.im-table td{border-bottom:1px solid #ddd;padding:3px 8px;white-space:nowrap}
table.im-table tbody th{border-bottom:1px solid #ddd;font-weight:600;padding:3px 8px}
table.im-table tr.im-stale td{opacity:0.55}
span.im-badge{border-radius:4px;padding:1px 6px;font-size:0.8rem;font-weight:600}
</style>"""


def trend_arrow(delta: float | None, dead_band: float = 0.02) -> str:
    """↑ rising, ↓ falling, → steady (within the dead band), · unknown."""
    if delta is None:
        return "·"
    if delta > dead_band:
        return "↑"
    if delta < -dead_band:
        return "↓"
    return "→"


def format_age(age_s: float | None) -> str:
    if age_s is None or age_s != age_s:
        return "—"
    if age_s < 10:
        return f"{age_s:.1f} s"
    if age_s < 120:
        return f"{age_s:.0f} s"
    if age_s < 7200:
        return f"{age_s / 60:.0f} min"
    return f"{age_s / 3600:.1f} h"


def format_clock(t: float | None, tz: tzinfo | None = None) -> str:
    if t is None or t != t:
        return "—"
    return datetime.fromtimestamp(t, tz=tz).strftime("%H:%M:%S")


def athlete_link(athlete_id: str) -> str:
    """Relative link that opens the athlete view (a fresh page load)."""
    return "?" + urlencode({"view": "athlete", "athlete": athlete_id})


def badge(text: str, level: str) -> str:
    return (f'<span class="im-badge" style="background:{LEVEL_BACKGROUNDS.get(level, "#eee")};'
            f'color:{LEVEL_COLOURS.get(level, "#333")}">{escape(text)}</span>')


def _alert_cell(row: AthleteRow, now: float) -> str:
    if row.alert is None:
        return ""
    since = format_age(now - row.alert.at)
    ack = f" · ack {escape(row.ack.by)}" if row.ack else " · unacknowledged"
    return badge("ALERT", "high") + f" {since}{ack}"


def squad_table_html(rows: Iterable[AthleteRow], *, now: float, dead_band: float = 0.02) -> str:
    """The squad list: one row per athlete (already sorted), level colours, trend, staleness, alert."""
    head = ("<thead><tr><th>Athlete</th><th>Session</th><th>Risk</th><th>Level</th><th>Trend</th>"
            "<th>Last data</th><th>Alert</th><th>Image</th></tr></thead>")
    body = []
    for r in rows:
        bg = LEVEL_BACKGROUNDS.get(r.level, "#fff")
        stale = ' <span class="im-badge" style="background:#555;color:#fff">stale</span>' if r.stale else ""
        trend = trend_arrow(r.trend, dead_band)
        trend_colour = {"↑": LEVEL_COLOURS["high"], "↓": LEVEL_COLOURS["low"]}.get(trend, "#555")
        trend_title = "no point kept from ~10 s ago" if r.trend is None else f"{r.trend:+.2f}"
        aid = escape(r.athlete_id)
        body.append(
            f'<tr class="im-row{" im-stale" if r.stale else ""}" data-athlete="{aid}" data-level="{r.level}">'
            f'<td><a href="{escape(athlete_link(r.athlete_id))}">{aid}</a></td>'
            f"<td>{escape(r.session_id)}</td>"
            f'<td style="background:{bg}">{r.risk:.2f}</td>'
            f'<td style="background:{bg};color:{LEVEL_COLOURS.get(r.level, "#333")};font-weight:600">{r.level}</td>'
            f'<td title="{trend_title}" style="color:{trend_colour};font-weight:700">{trend}</td>'
            f"<td>{format_age(r.age_s)}{stale}</td>"
            f"<td>{_alert_cell(r, now)}</td>"
            f'<td>{"yes" if r.image_used else "no"}</td></tr>'
        )
    if not body:
        body.append('<tr><td colspan="8">No athlete matches.</td></tr>')
    return f'{TABLE_CSS}<table class="im-table" id="im-squad">{head}<tbody>{"".join(body)}</tbody></table>'


def thresholds_text(settings: DashboardSettings, seen: Alert | None = None) -> str:
    """Levels and alert hysteresis in effect (the thresholds an alert carries win over configured ones)."""
    raise_at = seen.raise_threshold if seen else settings.alert_raise
    clear_at = seen.clear_threshold if seen else settings.alert_clear
    return (f"Levels: moderate ≥ {settings.level_moderate:.2f}, high ≥ {settings.level_high:.2f}. "
            f"Alert raised at risk ≥ {raise_at:.2f} for {settings.alert_raise_windows} consecutive windows, "
            f"cleared below {clear_at:.2f} for {settings.alert_clear_windows}.")


def _ack_text(ack: Ack | None, tz: tzinfo | None) -> str:
    if ack is None:
        return "—"
    note = f": {escape(ack.note)}" if ack.note else ""
    return f"{escape(ack.by)} at {format_clock(ack.at, tz)}{note}"


def active_alerts_html(alerts: list[Alert], acks: dict[str, Ack], *, now: float, tz: tzinfo | None = None) -> str:
    head = ("<thead><tr><th>Athlete</th><th>Session</th><th>Raised</th><th>For</th><th>Risk</th>"
            "<th>Windows</th><th>Acknowledged</th></tr></thead>")
    body = [
        f'<tr data-alert="{escape(a.alert_id)}"><td>{escape(a.athlete_id)}</td><td>{escape(a.session_id)}</td>'
        f"<td>{format_clock(a.at, tz)}</td><td>{format_age(now - a.at)}</td>"
        f'<td style="color:{LEVEL_COLOURS["high"]};font-weight:600">{a.risk:.2f}</td><td>{len(a.windows)}</td>'
        f"<td>{_ack_text(acks.get(a.alert_id), tz)}</td></tr>"
        for a in alerts
    ] or ['<tr><td colspan="7">No active alert.</td></tr>']
    return f'{TABLE_CSS}<table class="im-table" id="im-active-alerts">{head}<tbody>{"".join(body)}</tbody></table>'


def alert_history_html(events: list[Alert], acks: dict[str, Ack], *, tz: tzinfo | None = None) -> str:
    head = ("<thead><tr><th>At</th><th>Athlete</th><th>Event</th><th>Risk</th><th>Alert</th>"
            "<th>Acknowledged</th></tr></thead>")
    body = []
    for a in events:
        level = "high" if a.state == "raised" else "low"
        body.append(f'<tr><td>{format_clock(a.at, tz)}</td><td>{escape(a.athlete_id)}</td>'
                    f"<td>{badge(a.state, level)}</td><td>{a.risk:.2f}</td><td>{escape(a.alert_id)}</td>"
                    f"<td>{_ack_text(acks.get(a.alert_id), tz)}</td></tr>")
    if not body:
        body.append('<tr><td colspan="6">No alert event kept.</td></tr>')
    return f'{TABLE_CSS}<table class="im-table" id="im-alert-history">{head}<tbody>{"".join(body)}</tbody></table>'


def _fmt(x: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{unit}"


def _sides(d: dict[str, float], spec: str, unit: str) -> str:
    return " / ".join(f"{side.upper()} {d[side]:{spec}}{unit}" for side in ("l", "r") if side in d) or "—"


def workload_html(w: Workload) -> str:
    rows = [
        ("Windows scored (kept history)", str(w.windows)),
        ("Session span", _fmt(w.span_min, ".1f", " min")),
        ("Time at moderate / high risk", f"{w.minutes_moderate:.1f} / {w.minutes_high:.1f} min"),
        ("Mean / peak risk", f"{_fmt(w.mean_risk)} / {_fmt(w.peak_risk)}"),
        ("Peak vertical GRF (latest window)", _sides(w.grf_peak, ".2f", " BW")),
        ("GRF impulse asymmetry (latest window)", _fmt(w.grf_asymmetry_pct, ".0f", " %")),
        ("Peak knee valgus (latest window)", _sides(w.valgus_peak, ".1f", "°")),
        ("Knee flexion range (latest window)", _sides(w.knee_rom, ".0f", "°")),
    ]
    if w.player_load is not None:
        rows.append(("PlayerLoad (accumulated)", f"{w.player_load:.1f} AU"))
        rows.append(("Acute:chronic load (vs own previous sessions)",
                     f"{w.acute_chronic:.2f} ({w.baseline_sessions} session(s))" if w.acute_chronic is not None
                     else "no previous session yet"))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'{TABLE_CSS}<table class="im-table" id="im-workload"><tbody>{body}</tbody></table>'
