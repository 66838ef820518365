"""Redis key layout: the contract between the worker (writer) and the dashboard (reader).

| key | type | holds |
| --- | --- | --- |
| ``im:risk:latest`` | hash | athlete_id -> newest RiskScore JSON (a replayed older window never overwrites a newer one) |
| ``im:risk:hist:{athlete_id}`` | stream | one entry per scored window, entry id ``{window_end_ms}-0``, field ``v`` = RiskScore JSON; capped (MAXLEN ~) |
| ``im:athletes`` | sorted set | athlete_id scored by the wall clock of its newest score (staleness, listing) |
| ``im:alert:state:{athlete_id}`` | hash | hysteresis state (JSON under ``s``) so alerts survive worker restarts |
| ``im:alerts:active`` | hash | athlete_id -> Alert JSON of the currently raised alert |
| ``im:alerts:hist:{athlete_id}`` | stream | alert events, entry id ``{window_end_ms}-0``, field ``v`` = Alert JSON |
| ``im:alerts:ack:{alert_id}`` | hash | ``by``, ``at`` (epoch s), ``note``: a coach's acknowledgement |
| ``im:window:{athlete_id}`` | string | latest scored window's channel traces + attention (JSON, for the athlete view) |
| ``im:load:{athlete_id}`` | hash | ``session_id``, ``player_load`` (PlayerLoad AU accumulated this session), ``seconds``, ``updated_at``, ``last_end`` (newest window counted: a re-written batch is not counted twice) |
| ``im:load:sessions:{athlete_id}`` | hash | session_id -> that session's PlayerLoad (the chronic baseline of the acute:chronic ratio) |
| ``emb:{encoder_version}:{athlete_id}`` | hash | image embedding bytes and metadata (imaging) |

Entry ids derive from the window end, so XADD of a replayed window fails with
"ID ... equal or smaller" and is ignored: history is idempotent.
"""

from __future__ import annotations

PREFIX = "im"
RISK_LATEST = f"{PREFIX}:risk:latest"
ATHLETES = f"{PREFIX}:athletes"
ALERTS_ACTIVE = f"{PREFIX}:alerts:active"


def risk_history(athlete_id: str) -> str:
    return f"{PREFIX}:risk:hist:{athlete_id}"


def alert_state(athlete_id: str) -> str:
    return f"{PREFIX}:alert:state:{athlete_id}"


def alert_history(athlete_id: str) -> str:
    return f"{PREFIX}:alerts:hist:{athlete_id}"


def alert_ack(alert_id: str) -> str:
    return f"{PREFIX}:alerts:ack:{alert_id}"


def latest_window(athlete_id: str) -> str:
    return f"{PREFIX}:window:{athlete_id}"


def workload(athlete_id: str) -> str:
    return f"{PREFIX}:load:{athlete_id}"


def workload_sessions(athlete_id: str) -> str:
    return f"{PREFIX}:load:sessions:{athlete_id}"


def embedding(encoder_version: str, athlete_id: str) -> str:
    return f"emb:{encoder_version}:{athlete_id}"


def stream_id(window_end: float) -> str:
    """History entry id for a window end: milliseconds, sequence 0."""
    return f"{round(window_end * 1000)}-0"
