"""dashboard.data against a real redis-server filled through the worker's RedisSink."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from dashboard import data, sample
from dashboard.exceptions import DashboardError
from schemas import keys
from schemas.channels import CHANNEL_INDEX
from stream.pipeline import traces_of
from stream.windowing import Window


@pytest.fixture
def client(redis_url):
    r = data.connect(redis_url)
    yield r
    r.close()


def test_squad_sorted_by_risk_with_levels_trend_and_staleness(client, write, make_score):
    now = 10_000.0
    # ath-a rises 0.2 -> 0.7 over 10 s, ath-b falls 0.5 -> 0.3, ath-c has only 2 s of history.
    write([make_score("ath-a", 990.0, 0.2, scored_at=now - 12), make_score("ath-b", 990.0, 0.5, scored_at=now - 12)])
    write([make_score("ath-a", 1000.0, 0.7, scored_at=now - 1), make_score("ath-b", 1000.0, 0.3, scored_at=now - 9),
           make_score("ath-c", 1000.0, 0.4, scored_at=now - 1)])
    squad = data.squad_snapshot(client, now=now, stale_after_s=5.0, trend_window_s=10.0)
    assert [r.athlete_id for r in squad.rows] == ["ath-a", "ath-c", "ath-b"]
    a, c, b = squad.rows
    assert (a.level, c.level, b.level) == ("high", "moderate", "low")
    assert a.trend == pytest.approx(0.5) and b.trend == pytest.approx(-0.2) and c.trend is None
    assert (a.age_s, b.age_s) == (pytest.approx(1.0), pytest.approx(9.0))
    assert (a.stale, b.stale, c.stale) == (False, True, False)
    assert squad.counts() == {"high": 1, "moderate": 1, "low": 1, "alerts": 0, "stale": 1}
    assert squad.sessions == ["s1"]


def test_squad_attaches_active_alert_and_its_acknowledgement(client, write, make_score, make_alert):
    write([make_score("ath-a", 1000.0, 0.8)], [make_alert("ath-a", 1000.0)])
    alert_id = make_alert("ath-a", 1000.0).alert_id
    assert data.squad_snapshot(client).rows[0].ack is None
    data.acknowledge(client, alert_id, by="Coach K", note="rested", now=5.0)
    row = data.squad_snapshot(client).rows[0]
    assert row.alert is not None and row.alert.alert_id == alert_id
    assert row.ack == data.Ack(alert_id=alert_id, by="Coach K", at=5.0, note="rested")
    # a clear (same alert id) removes it from the active set
    write([make_score("ath-a", 1002.0, 0.1)], [make_alert("ath-a", 1002.0, "cleared", raised_at=1000.0)])
    assert data.squad_snapshot(client).rows[0].alert is None
    assert data.active_alerts(client) == []


def test_unreadable_entries_are_skipped_and_counted(client, write, make_score):
    write([make_score("ath-a", 1000.0, 0.3)])
    client.hset(keys.RISK_LATEST, "broken", b"{not json")
    client.hset(keys.ALERTS_ACTIVE, "broken", b"{}")
    squad = data.squad_snapshot(client)
    assert [r.athlete_id for r in squad.rows] == ["ath-a"]
    assert squad.unreadable == 1
    assert data.active_alerts(client) == []


def test_empty_redis_gives_empty_views(client):
    assert data.squad_snapshot(client).rows == []
    assert data.athlete_ids(client) == [] and data.session_ids(client) == []
    assert data.latest_score(client, "nobody") is None
    assert data.athlete_history(client, "nobody") == []
    assert data.latest_traces(client, "nobody") is None
    assert data.session_csv(client, "s1").splitlines() == [",".join(data.CSV_COLUMNS)]


def test_filter_rows_by_session_and_search(client, write, make_score):
    write([make_score("ath-01", 1000.0, 0.1, session_id="am"), make_score("ath-02", 1000.0, 0.2, session_id="pm"),
           make_score("GK-1", 1000.0, 0.3, session_id="pm")])
    rows = data.squad_snapshot(client).rows
    assert [r.athlete_id for r in data.filter_rows(rows, session="pm")] == ["GK-1", "ath-02"]
    assert [r.athlete_id for r in data.filter_rows(rows, query=" gk ")] == ["GK-1"]
    assert [r.athlete_id for r in data.filter_rows(rows, session="pm", query="ath")] == ["ath-02"]
    assert [r.athlete_id for r in data.filter_rows(rows, query="AM")] == ["ath-01"]  # matches the session too
    assert data.session_ids(client) == ["am", "pm"]


def test_history_is_oldest_first_capped_and_per_session(client, write, make_score):
    for k in range(6):
        write([make_score("ath-a", 1000.0 + k * 0.5, k / 10, session_id="old" if k < 2 else "new")])
    hist = data.athlete_history(client, "ath-a")
    assert [s.window_end for s in hist] == [1000.0 + k * 0.5 for k in range(6)]
    assert [s.risk for s in data.athlete_history(client, "ath-a", count=3)] == [0.3, 0.4, 0.5]
    assert len(data.athlete_history(client, "ath-a", session_id="new")) == 4
    assert data.latest_score(client, "ath-a").risk == 0.5


def _window(end_index: int = 100_000, absent_grf_r: bool = False) -> Window:
    d = sample.window_data(3, 0)
    if absent_grf_r:
        d[:, CHANNEL_INDEX["grf_vertical_r"]] = np.nan
    return Window(athlete_id="ath-a", session_id="s1", end_index=end_index, hz=100.0, data=d, missing_fraction=0.0,
                  absent=("grf_vertical_r",) if absent_grf_r else (), ready_at=0.0)


def test_latest_traces_reads_what_the_pipeline_stores(client, write, make_score):
    attn = np.linspace(0, 1, 50) / 25
    stored = traces_of(_window(absent_grf_r=True), attn, 0.04)
    write([make_score("ath-a", 1000.0, 0.3)], traces={"ath-a": stored})
    tr = data.latest_traces(client, "ath-a")
    assert tr.t == pytest.approx(stored["t"].tolist()) and tr.attention == pytest.approx(stored["attention"].tolist())
    assert tr.window_end - tr.window_start == pytest.approx(2.0)
    assert tr.channels["grf_vertical_r"] is None
    assert tr.channels["knee_flexion_l"] == pytest.approx(stored["channels"]["knee_flexion_l"].tolist(), abs=1e-3)
    client.set(keys.latest_window("ath-b"), b'{"t": [0.0]}')  # missing fields: no traces, no crash
    assert data.latest_traces(client, "ath-b") is None


def test_alert_history_and_recent_alerts_newest_first(client, write, make_score, make_alert):
    write([make_score("ath-a", 1000.0, 0.7)], [make_alert("ath-a", 1000.0)])
    write([make_score("ath-a", 1004.0, 0.2)], [make_alert("ath-a", 1004.0, "cleared", raised_at=1000.0)])
    write([make_score("ath-b", 1002.0, 0.9)], [make_alert("ath-b", 1002.0)])
    hist = data.alert_history(client, "ath-a")
    assert [(a.state, a.at) for a in hist] == [("cleared", 1004.0), ("raised", 1000.0)]
    assert hist[0].alert_id == hist[1].alert_id
    recent = data.recent_alerts(client, ["ath-a", "ath-b"])
    assert [(a.athlete_id, a.state) for a in recent] == [("ath-a", "cleared"), ("ath-b", "raised"), ("ath-a", "raised")]
    assert [a.athlete_id for a in data.active_alerts(client)] == ["ath-b"]


def test_acknowledge_persists_and_validates(client):
    ack = data.acknowledge(client, "ath-a:1000000", by="  Coach K ", note=" ice ", now=123.5)
    assert ack == data.Ack("ath-a:1000000", "Coach K", 123.5, "ice")
    assert client.hgetall(keys.alert_ack("ath-a:1000000")) == {b"by": b"Coach K", b"at": b"123.5", b"note": b"ice"}
    assert data.acknowledgements(client, ["ath-a:1000000", "other"]) == {"ath-a:1000000": ack}
    with pytest.raises(DashboardError, match="name is empty"):
        data.acknowledge(client, "ath-a:1000000", by="   ")
    with pytest.raises(DashboardError, match="no alert id"):
        data.acknowledge(client, "", by="x")
    with pytest.raises(DashboardError, match="note over"):
        data.acknowledge(client, "ath-a:1000000", by="x", note="n" * (data.MAX_NOTE + 1))
    assert client.hget(keys.alert_ack("ath-a:1000000"), "by") == b"Coach K"  # refused writes changed nothing


def test_hysteresis_alerts_of_a_synthetic_session_reach_the_squad(client, fill_squad):
    squad_written = fill_squad(athletes=6, windows=30)
    states = {}
    for a in squad_written.alerts:  # in write order: the last event of each athlete wins
        states[a.athlete_id] = a.state
    assert set(states.values()) == {"raised", "cleared"}, "the sample must raise and clear alerts"
    rows = data.squad_snapshot(client).rows
    assert {r.athlete_id for r in rows if r.alert is not None} == {a for a, s in states.items() if s == "raised"}
    assert len(rows) == 6 and all(r.trend is not None for r in rows)
    events = data.recent_alerts(client, squad_written.athletes)
    assert len(events) == len(squad_written.alerts)


def test_workload_from_history_and_traces(client, write, make_score):
    risks = [0.1, 0.4, 0.4, 0.7, 0.7, 0.7]
    for k, risk in enumerate(risks):
        write([make_score("ath-a", 1000.0 + k * 0.5, risk)])
    stored = traces_of(_window(), np.full(50, 0.02), 0.04)
    write([make_score("ath-a", 1003.0, 0.2)], traces={"ath-a": stored})
    w = data.workload(data.athlete_history(client, "ath-a"), data.latest_traces(client, "ath-a"))
    assert w.windows == 7 and w.hop_s == pytest.approx(0.5)
    assert w.span_min == pytest.approx((1003.0 - 998.0) / 60)
    assert w.minutes_moderate == pytest.approx(2 * 0.5 / 60) and w.minutes_high == pytest.approx(3 * 0.5 / 60)
    assert w.peak_risk == 0.7 and w.mean_risk == pytest.approx(sum(risks + [0.2]) / 7)
    grf_l = np.array(stored["channels"]["grf_vertical_l"])
    assert w.grf_peak["l"] == pytest.approx(grf_l.max())
    assert 0 <= w.grf_asymmetry_pct < 100
    assert w.knee_rom["r"] == pytest.approx(np.ptp(stored["channels"]["knee_flexion_r"]))


def test_player_load_is_read_only_when_the_layout_has_a_workload_key(client, monkeypatch):
    monkeypatch.delattr(keys, "workload", raising=False)
    client.hset("im:load:ath-a", mapping={"session_id": "s1", "player_load": "41.5"})
    assert data.player_load(client, "ath-a") is None
    monkeypatch.setattr(keys, "workload", lambda a: f"im:load:{a}", raising=False)
    assert data.player_load(client, "ath-a") == (41.5, "s1")
    assert data.player_load(client, "ath-b") is None


def test_workload_of_nothing_is_empty():
    w = data.workload([], None)
    assert w.windows == 0 and w.mean_risk is None and w.grf_asymmetry_pct is None and w.grf_peak == {}


def test_session_csv_has_every_point_of_the_session_only(client, fill_squad, write, make_score):
    written = fill_squad(athletes=4, windows=10, session_id="match-1")
    write([make_score("ath-01", written.end + 0.5, 0.5, session_id="match-2")])
    rows = list(csv.DictReader(io.StringIO(data.session_csv(client, "match-1"))))
    assert len(rows) == 4 * 10
    assert {r["session_id"] for r in rows} == {"match-1"}
    first = written.scores["ath-01"][0]
    assert rows[0]["athlete_id"] == "ath-01" and float(rows[0]["window_end"]) == pytest.approx(first.window_end)
    assert float(rows[0]["risk"]) == pytest.approx(first.risk) and rows[0]["level"] == first.level
    assert rows[0]["window_end_utc"].endswith("+00:00")
    only = list(csv.DictReader(io.StringIO(data.session_csv(client, "match-2"))))
    assert [(r["athlete_id"], r["risk"]) for r in only] == [("ath-01", "0.5")]
    assert data.scores_csv(written.scores["ath-02"]).count("\n") == 11


def test_redacted_hides_only_the_password():
    assert data.redacted("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert data.redacted("rediss://user:pw@host/1") == "rediss://user:***@host/1"
    assert data.redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_unreachable_redis_raises_redis_error():
    import redis

    r = data.connect("redis://127.0.0.1:1/0", timeout_s=0.2)
    with pytest.raises(redis.RedisError):
        data.squad_snapshot(r)


def test_update_history_reads_only_new_entries_and_recovers_from_a_reset(client, write, make_score):
    for k in range(4):
        write([make_score("ath-a", 1000.0 + k, k / 10)])
    h = data.update_history(client, "ath-a", None, count=5)
    assert [s.risk for s in h.scores] == [0.0, 0.1, 0.2, 0.3] and h.last_id == b"1003000-0"
    write([make_score("ath-a", 1004.0, 0.4), make_score("ath-b", 1004.0, 0.9)])
    write([make_score("ath-a", 1005.0, 0.5)])
    h2 = data.update_history(client, "ath-a", h, count=5)
    assert [s.risk for s in h2.scores] == [0.1, 0.2, 0.3, 0.4, 0.5]  # capped at count, oldest dropped
    assert data.update_history(client, "ath-a", h2, count=5) == h2  # nothing new: same history
    assert [s.athlete_id for s in data.update_history(client, "ath-b", h2).scores] == ["ath-b"]  # other athlete
    client.delete(keys.risk_history("ath-a"))  # Redis emptied, then the worker writes older event times
    write([make_score("ath-a", 500.0, 0.7)])
    assert [s.risk for s in data.update_history(client, "ath-a", h2, count=5).scores] == [0.7]


def test_acute_chronic_against_the_athletes_own_previous_sessions(redis_url):
    import redis as sync_redis

    from dashboard import data
    from schemas import keys

    r = sync_redis.Redis.from_url(redis_url)
    assert data.acute_chronic(12.0, data.chronic_load(r, "a", "today")) == (None, 0)
    r.hset(keys.workload_sessions("a"), mapping={"mon": 10.0, "wed": 20.0, "today": 30.0})
    ratio, n = data.acute_chronic(30.0, data.chronic_load(r, "a", "today"))
    assert n == 2 and abs(ratio - 2.0) < 1e-9
