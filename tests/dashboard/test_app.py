"""The Streamlit page under ``streamlit.testing.v1.AppTest``: each view against a real Redis."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data
from dashboard.launch import APP
from schemas import keys


@pytest.fixture
def app(redis_url, monkeypatch):
    """Factory: an AppTest of the page on ``view`` (query parameter), reading the test Redis."""
    monkeypatch.setenv("INJURY_MONITOR_REDIS_URL", redis_url)
    monkeypatch.delenv("INJURY_MONITOR_AUTH_PASSWORD", raising=False)

    def make(view: str | None = None, **params: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        if view:
            at.query_params["view"] = view
        for k, v in params.items():
            at.query_params[k] = v
        return at.run()

    return make


def _html(at: AppTest, table_id: str) -> str:
    bodies = [e.proto.body for e in at.get("html") if f'id="{table_id}"' in e.proto.body]
    assert bodies, f"no #{table_id} table on the page"
    return bodies[0]


def _athletes_in(html: str) -> list[str]:
    return re.findall(r'data-athlete="([^"]+)"', html)


def test_squad_lists_athletes_by_risk_with_filters(app, write, make_score, make_alert):
    write([make_score("ath-01", 1000.0, 0.2, session_id="am"), make_score("ath-02", 1000.0, 0.8, session_id="pm"),
           make_score("gk-01", 1000.0, 0.5, session_id="pm")], [make_alert("ath-02", 1000.0, session_id="pm")])
    at = app()
    assert not at.exception
    assert _athletes_in(_html(at, "im-squad")) == ["ath-02", "gk-01", "ath-01"]
    assert {m.label: m.value for m in at.metric} == {"High": "1", "Moderate": "1", "Low": "1",
                                                     "Active alerts": "1", "Stale": "0"}
    at.selectbox(key="squad_session").select("pm").run()
    assert _athletes_in(_html(at, "im-squad")) == ["ath-02", "gk-01"]
    at.text_input(key="squad_search").input("GK").run()
    assert _athletes_in(_html(at, "im-squad")) == ["gk-01"]
    at.text_input(key="squad_search").input("nobody").run()
    assert "No athlete matches." in _html(at, "im-squad")


def test_squad_says_when_nothing_was_scored_and_when_redis_is_down(app, monkeypatch):
    at = app()
    assert not at.exception and "No athlete has been scored yet" in at.info[0].value
    monkeypatch.setenv("INJURY_MONITOR_REDIS_URL", "redis://127.0.0.1:1/0")
    at = app()
    assert not at.exception
    assert any("cannot be read" in e.value and "127.0.0.1:1" in e.value for e in at.error)


def test_athlete_view_shows_timeline_traces_modalities_and_workload(app, fill_squad):
    written = fill_squad(athletes=4, windows=30)
    at = app("athlete", athlete="ath-03")
    assert not at.exception
    assert at.selectbox(key="athlete").value == "ath-03"
    assert at.subheader[0].value == f"ath-03 · session {written.session_id}"
    latest = written.scores["ath-03"][-1]
    assert at.metric[0].value == f"{latest.risk:.2f}" and at.metric[1].value == latest.level
    assert any("sensor + image embedding" in c.value for c in at.caption)  # even athletes carry an image
    assert len(at.get("vega_lite_chart")) == 3  # timeline, traces, image regions
    assert "Peak vertical GRF" in _html(at, "im-workload")
    at.selectbox(key="athlete").select("ath-02").run()
    assert at.subheader[0].value.startswith("ath-02")
    assert any("sensor only" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 2
    assert at.query_params["athlete"] == "ath-02"  # the URL follows, so the view can be shared


def test_alerts_view_lists_active_alerts_and_acknowledges(app, redis_url, fill_squad):
    written = fill_squad(athletes=5, windows=30)
    last = {a.athlete_id: a for a in written.alerts}  # newest event of each athlete
    raised = sorted(a.alert_id for a in last.values() if a.state == "raised")
    assert len(raised) < len({a.alert_id for a in written.alerts}), "some alert must have been cleared"
    at = app("alerts")
    assert not at.exception
    active = _html(at, "im-active-alerts")
    assert sorted(re.findall(r'data-alert="([^"]+)"', active)) == raised
    assert "Alert raised at risk ≥ 0.60" in at.info[0].value
    assert ">cleared<" in _html(at, "im-alert-history") and ">raised<" in _html(at, "im-alert-history")
    target = at.selectbox(key="ack_alert").value
    at.text_input(key="ack_by").input("Coach K")
    at.text_input(key="ack_note").input("subbed off")
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert not at.exception and "acknowledged by Coach K" in at.success[0].value
    r = data.connect(redis_url)
    stored = r.hgetall(keys.alert_ack(target))
    assert stored[b"by"] == b"Coach K" and stored[b"note"] == b"subbed off" and float(stored[b"at"]) > 0
    at.run()
    assert "Coach K at" in _html(at, "im-active-alerts")


def test_acknowledging_without_a_name_is_refused(app, redis_url, fill_squad):
    fill_squad(athletes=5, windows=30)
    at = app("alerts")
    target = at.selectbox(key="ack_alert").value
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert "name is empty" in at.error[0].value
    assert data.connect(redis_url).exists(keys.alert_ack(target)) == 0


def test_login_when_a_password_is_set(app, monkeypatch, write, make_score):
    write([make_score("ath-01", 1000.0, 0.3)])
    monkeypatch.setenv("INJURY_MONITOR_AUTH_PASSWORD", "s3cret")
    at = app()
    assert not at.get("html") and not at.radio  # nothing but the login form
    at.text_input(key="login_password").input("wrong")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert at.error[0].value == "Wrong password." and not at.get("html")
    at.text_input(key="login_password").input("s3cret")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception and _athletes_in(_html(at, "im-squad")) == ["ath-01"]
    next(b for b in at.button if b.label == "Sign out").click().run()
    assert not at.get("html") and at.text_input(key="login_password")
