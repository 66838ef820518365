"""The coach dashboard (Streamlit). Reads Redis only; settings come from ``INJURY_MONITOR_*``.

Run it with ``injury-monitor dashboard`` or ``streamlit run dashboard/app.py``. Layout:
- widget functions (``*_widget``) draw inputs and return their values;
- rendering functions (``render_*``) draw what they are given and read nothing;
- panel functions (``*_panel``) read Redis and render; the live ones become one
  ``st.fragment(run_every=refresh_s)`` each, so only they rerun on the timer.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
import streamlit as st
from pydantic import ValidationError

from dashboard import charts, data, render
from dashboard.exceptions import DashboardError
from dashboard.settings import DashboardSettings
from schemas.alerts import Alert
from schemas.risk import RiskScore

VIEWS = ("Squad", "Athlete", "Alerts")
ALL_SESSIONS = "All sessions"


@st.cache_resource(show_spinner=False)
def redis_client(url: str, password: str | None) -> redis.Redis:
    return data.connect(url, password)


def client_of(cfg: DashboardSettings) -> redis.Redis:
    return redis_client(cfg.redis_url, cfg.redis_password.get_secret_value() if cfg.redis_password else None)


def browser_tz() -> tzinfo | None:
    """The viewer's time zone (clock times are shown in it); None: the server's."""
    try:
        name = st.context.timezone
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError, AttributeError):
        return None


def render_redis_error(cfg: DashboardSettings, exc: Exception) -> None:
    st.error(f"Redis at {data.redacted(cfg.redis_url)} cannot be read ({type(exc).__name__}: {exc}). "
             f"Retrying every {cfg.refresh_s:g} s.")


# ------------------------------------------------------------------------------------- widgets


def login_widget(cfg: DashboardSettings) -> bool:
    """True when the viewer may see the page (no password configured, or signed in this session)."""
    if cfg.auth_password is None or st.session_state.get("authenticated"):
        return True
    st.title("Injury monitor")
    with st.form("login"):
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if hmac.compare_digest(password.encode(), cfg.auth_password.get_secret_value().encode()):
            st.session_state["authenticated"] = True
            st.rerun()
        st.error("Wrong password.")
    return False


def view_widget() -> str:
    if "view" not in st.session_state:
        wanted = str(st.query_params.get("view", "squad")).lower()
        st.session_state["view"] = next((v for v in VIEWS if v.lower() == wanted), VIEWS[0])
    view = st.radio("View", VIEWS, key="view", horizontal=True, label_visibility="collapsed")
    st.query_params["view"] = view.lower()
    return view


def squad_filters_widget(sessions: list[str]) -> tuple[str | None, str]:
    """(session or None for all, search text)."""
    left, right = st.columns(2)
    options = [ALL_SESSIONS, *sessions]
    if st.session_state.get("squad_session") not in options:
        st.session_state["squad_session"] = ALL_SESSIONS
    session = left.selectbox("Session", options, key="squad_session")
    query = right.text_input("Search", key="squad_search", placeholder="athlete or session id")
    return (None if session == ALL_SESSIONS else session), query


def athlete_widget(ids: list[str]) -> str | None:
    if not ids:
        return None
    if st.session_state.get("athlete") not in ids:
        wanted = st.query_params.get("athlete")
        if wanted and wanted not in ids:
            st.warning(f"No score for athlete {wanted!r} yet; showing {ids[0]}.")
        st.session_state["athlete"] = wanted if wanted in ids else ids[0]
    athlete = st.selectbox("Athlete", ids, key="athlete")
    st.query_params["athlete"] = athlete
    return athlete


def ack_widget(alerts: list[Alert], acks: dict[str, data.Ack]) -> tuple[str, str, str] | None:
    """(alert id, by, note) when the coach submits an acknowledgement."""
    def label(alert_id: str) -> str:
        a = next(x for x in alerts if x.alert_id == alert_id)
        done = f" (acknowledged by {acks[alert_id].by})" if alert_id in acks else ""
        return f"{a.athlete_id}: risk {a.risk:.2f} since {render.format_clock(a.at, browser_tz())}{done}"

    with st.form("ack_form"):
        alert_id = st.selectbox("Alert", [a.alert_id for a in alerts], format_func=label, key="ack_alert")
        by = st.text_input("Your name", key="ack_by", max_chars=data.MAX_BY)
        note = st.text_input("Note (optional)", key="ack_note", max_chars=data.MAX_NOTE)
        submitted = st.form_submit_button("Acknowledge")
    return (alert_id, by, note) if submitted and alert_id else None


def export_widget(client: redis.Redis, sessions: list[str]) -> None:
    """Session picker and a CSV download whose content is built only when clicked."""
    if not sessions:
        st.caption("No session to export yet.")
        return
    session = st.selectbox("Session", sessions, key="export_session")
    st.download_button("Download risk series (CSV)", data=lambda: data.session_csv(client, session),
                       file_name=f"risk-{session}.csv", mime="text/csv", on_click="ignore", key="export_csv")


# ----------------------------------------------------------------------------------- renderers


def render_squad(squad: data.Squad, cfg: DashboardSettings, session: str | None, query: str) -> None:
    counts = squad.counts()
    cols = st.columns(5)
    cols[0].metric("High", counts["high"])
    cols[1].metric("Moderate", counts["moderate"])
    cols[2].metric("Low", counts["low"])
    cols[3].metric("Active alerts", counts["alerts"])
    cols[4].metric("Stale", counts["stale"])
    rows = data.filter_rows(squad.rows, session=session, query=query)
    newest = min((r.age_s for r in squad.rows), default=None)
    if squad.rows and newest is not None and newest > cfg.stale_after_s:
        st.warning(f"No new score for {render.format_age(newest)}: is the worker running?")
    unreadable = f" · {squad.unreadable} unreadable entries skipped" if squad.unreadable else ""
    st.caption(f"{len(rows)} of {len(squad.rows)} athletes, highest risk first · read at "
               f"{render.format_clock(squad.read_at, browser_tz())}{unreadable}")
    st.html(render.squad_table_html(rows, now=squad.read_at, dead_band=cfg.trend_dead_band))


def _trend(history: list[RiskScore], window_s: float) -> float | None:
    if not history:
        return None
    before = history[-1].window_end - window_s
    earlier = [s for s in history if s.window_end <= before + 1e-9]
    return history[-1].risk - earlier[-1].risk if earlier else None


def traces_spec(athlete_id: str, traces: data.Traces) -> dict:
    """The traces chart, rebuilt only when a new window arrives (refreshes often find the same one)."""
    key = (athlete_id, traces.window_end)
    cached = st.session_state.get("traces_spec")
    if cached is None or cached[0] != key:
        cached = (key, charts.spec(charts.traces_chart(traces)))
        st.session_state["traces_spec"] = cached
    return cached[1]


def render_athlete(cfg: DashboardSettings, score: RiskScore, history: list[RiskScore], alerts: list[Alert],
                   traces: data.Traces | None, work: data.Workload, now: float) -> None:
    st.subheader(f"{score.athlete_id} · session {score.session_id}")
    trend = _trend(history, cfg.trend_window_s)
    cols = st.columns(4)
    steady = trend is not None and abs(trend) <= cfg.trend_dead_band
    cols[0].metric("Risk", f"{score.risk:.2f}", delta=None if trend is None or steady else f"{trend:+.2f}",
                   delta_color="inverse", help=f"Change over the last {cfg.trend_window_s:g} s (none shown: steady)")
    cols[1].metric("Level", score.level)
    cols[2].metric("Last data", render.format_age(now - score.scored_at))
    cols[3].metric("Latency", f"{score.latency_ms:.0f} ms", help="Window end to scored")
    if score.image_used:
        modal = f"sensor + image embedding (encoder {score.encoder_version or 'unknown'})"
    else:
        modal = "sensor only (no image embedding for this athlete)"
    absent = f" · absent channels: {', '.join(score.absent_channels)}" if score.absent_channels else ""
    st.caption(f"Modalities: {modal} · model {score.model_version} · "
               f"{score.missing_fraction:.0%} of frames interpolated{absent}")

    st.markdown("**Risk over the session**")
    st.vega_lite_chart(spec=charts.spec(charts.risk_timeline(history, alerts, cfg)), width="stretch")

    st.markdown("**Latest window: joint traces and the model's attention (shaded)**")
    if traces is None:
        st.info("No traces kept for this athlete's latest window.")
    else:
        st.vega_lite_chart(spec=traces_spec(score.athlete_id, traces), width="content")
        moments = ", ".join(f"{p.t:.2f} s ({p.weight:.2f})" for p in score.attention)
        if moments:
            st.caption(f"Most attended moments (s from window start, weight): {moments}")
    left, right = st.columns([2, 1])
    with left:
        st.markdown("**Workload**")
        st.html(render.workload_html(work))
    with right:
        if score.image_used and score.regions:
            st.markdown("**Image regions attended**")
            st.vega_lite_chart(spec=charts.spec(charts.regions_chart(score.regions)), width="content")
            st.caption("7×7 grid over the image; darker = more attention (top regions only).")


def render_alerts(cfg: DashboardSettings, alerts: list[Alert], events: list[Alert], acks: dict[str, data.Ack],
                  now: float) -> None:
    tz = browser_tz()
    st.info(render.thresholds_text(cfg, events[0] if events else None))
    st.markdown(f"**Active alerts ({len(alerts)})**")
    st.html(render.active_alerts_html(alerts, acks, now=now, tz=tz))
    st.markdown("**Alert history (raised and cleared)**")
    st.html(render.alert_history_html(events, acks, tz=tz))


# -------------------------------------------------------------------------------------- panels


def squad_panel(cfg: DashboardSettings, session: str | None, query: str) -> None:
    try:
        squad = data.squad_snapshot(client_of(cfg), stale_after_s=cfg.stale_after_s,
                                    trend_window_s=cfg.trend_window_s)
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
        return
    if not squad.rows:
        st.info("No athlete has been scored yet. Scores appear here as soon as the worker writes them.")
        return
    render_squad(squad, cfg, session, query)


def athlete_panel(cfg: DashboardSettings, athlete_id: str) -> None:
    client = client_of(cfg)
    try:
        score = data.latest_score(client, athlete_id)
        if score is None:
            st.info(f"No score for {athlete_id} yet.")
            return
        kept = data.update_history(client, athlete_id, st.session_state.get("history"), count=cfg.history_points)
        st.session_state["history"] = kept  # one athlete's history: the next refresh reads only new entries
        history = [s for s in kept.scores if s.session_id == score.session_id]
        alerts = [a for a in data.alert_history(client, athlete_id, count=cfg.alert_history)
                  if a.session_id == score.session_id]
        traces = data.latest_traces(client, athlete_id)
        load = data.player_load(client, athlete_id)
        chronic = data.chronic_load(client, athlete_id, score.session_id)
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
        return
    work = data.workload(history, traces)
    if load is not None and load[1] in (None, score.session_id):
        ratio, n = data.acute_chronic(load[0], chronic)
        work = replace(work, player_load=load[0], player_load_session=load[1], acute_chronic=ratio,
                       baseline_sessions=n)
    render_athlete(cfg, score, history, alerts, traces, work, time.time())


def alerts_panel(cfg: DashboardSettings) -> None:
    client = client_of(cfg)
    try:
        alerts = data.active_alerts(client)
        events = data.recent_alerts(client, data.athlete_ids(client), per_athlete=cfg.alert_history)
        acks = data.acknowledgements(client, [a.alert_id for a in alerts] + [e.alert_id for e in events])
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
        return
    render_alerts(cfg, alerts, events, acks, time.time())


def ack_panel(cfg: DashboardSettings) -> None:
    """Acknowledge form: a fragment without a timer, so typing is never interrupted by a refresh."""
    client = client_of(cfg)
    try:
        alerts = data.active_alerts(client)
        acks = data.acknowledgements(client, [a.alert_id for a in alerts])
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
        return
    if not alerts:
        st.caption("Nothing to acknowledge.")
        return
    submitted = ack_widget(alerts, acks)
    if submitted is None:
        return
    alert_id, by, note = submitted
    try:
        ack = data.acknowledge(client, alert_id, by=by, note=note)
    except DashboardError as exc:
        st.error(str(exc))
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
    else:
        st.success(f"Alert {ack.alert_id} acknowledged by {ack.by} at {render.format_clock(ack.at, browser_tz())}.")


# ---------------------------------------------------------------------------------------- page


def load_settings() -> DashboardSettings | None:
    try:
        return DashboardSettings()
    except ValidationError as exc:
        st.error(f"Dashboard settings (INJURY_MONITOR_* environment) are invalid: {exc}")
        return None


def main() -> None:
    st.set_page_config(page_title="Injury monitor", page_icon="🩺", layout="wide")
    cfg = load_settings()
    if cfg is None or not login_widget(cfg):
        return
    client = client_of(cfg)
    try:
        sessions = data.session_ids(client)
        ids = data.athlete_ids(client)
    except redis.RedisError as exc:
        render_redis_error(cfg, exc)
        sessions, ids = [], []

    with st.sidebar:
        st.header("Injury monitor")
        st.caption(f"Redis {data.redacted(cfg.redis_url)} · refresh every {cfg.refresh_s:g} s · "
                   f"stale after {cfg.stale_after_s:g} s")
        st.markdown("**Thresholds**")
        st.caption(render.thresholds_text(cfg))
        st.markdown("**Export**")
        export_widget(client, sessions)
        if cfg.auth_password is not None and st.button("Sign out", key="sign_out"):
            st.session_state["authenticated"] = False
            st.rerun()

    view = view_widget()
    if view == "Squad":
        session, query = squad_filters_widget(sessions)
        st.fragment(run_every=cfg.refresh_s)(squad_panel)(cfg, session, query)
    elif view == "Athlete":
        athlete = athlete_widget(ids)
        if athlete is None:
            st.info("No athlete has been scored yet.")
        else:
            st.fragment(run_every=cfg.refresh_s)(athlete_panel)(cfg, athlete)
    else:
        st.fragment(run_every=cfg.refresh_s)(alerts_panel)(cfg)
        st.markdown("**Acknowledge an alert**")
        st.fragment(ack_panel)(cfg)


if __name__ == "__main__":
    main()
