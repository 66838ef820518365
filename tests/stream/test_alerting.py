"""Alert hysteresis: raise after k high windows, clear after m low ones, replays ignored."""

from __future__ import annotations

from stream.alerting import AlertPolicy, AlertState, level_of


def run(policy, risks, state=None, start=1.0):
    state = state or AlertState()
    out = []
    for i, r in enumerate(risks):
        a = policy.step(state, athlete_id="a", session_id="s", window_end=start + i * 0.5, risk=r, now=0.0)
        if a:
            out.append(a)
    return state, out


def test_raise_needs_consecutive_high_windows_and_clear_needs_low_ones():
    p = AlertPolicy(raise_threshold=0.6, raise_windows=2, clear_threshold=0.45, clear_windows=3)
    state, alerts = run(p, [0.7, 0.2, 0.7, 0.8, 0.5, 0.4, 0.4, 0.5, 0.4, 0.4, 0.4])
    assert [a.state for a in alerts] == ["raised", "cleared"]
    raised, cleared = alerts
    assert raised.windows == [2.0, 2.5] and raised.alert_id == cleared.alert_id == "a:2500"
    assert cleared.windows == [5.0, 5.5, 6.0] and not state.raised


def test_a_risk_between_thresholds_neither_raises_nor_clears():
    p = AlertPolicy(0.6, 2, 0.45, 2)
    _, alerts = run(p, [0.5] * 20)
    assert alerts == []


def test_replayed_windows_do_not_raise_twice():
    p = AlertPolicy(0.6, 2, 0.45, 2)
    state, first = run(p, [0.9, 0.9, 0.9])
    restored = AlertState.from_dict(state.to_dict())  # as loaded back from Redis
    _, again = run(p, [0.9, 0.9, 0.9], state=restored)  # same window ends again
    assert len(first) == 1 and again == []


def test_levels():
    assert [level_of(r, 0.35, 0.6) for r in (0.1, 0.35, 0.59, 0.6)] == ["low", "moderate", "moderate", "high"]
