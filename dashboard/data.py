"""What the dashboard reads from (and writes to) Redis. Pure functions over a sync redis-py client.

The key layout is the worker's (:mod:`schemas.keys`); this module never writes anything the
worker owns. Its one write is a coach's acknowledgement (``im:alerts:ack:{alert_id}``).
Entries that do not parse are skipped and counted, never fatal: a dashboard must keep
showing the squad while one producer misbehaves.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
from pydantic import ValidationError

from dashboard.exceptions import DashboardError
from schemas import keys
from schemas.alerts import Alert
from schemas.risk import RiskScore

MAX_BY = 80
MAX_NOTE = 500
EXPORT_CHUNK = 50  # athletes per pipeline when exporting a whole session
CSV_COLUMNS = ("athlete_id", "session_id", "window_start", "window_end", "window_end_utc", "risk", "level",
               "image_used", "modalities", "model_version", "encoder_version", "missing_fraction",
               "latency_ms", "scored_at")


def connect(url: str, password: str | None = None, *, timeout_s: float = 2.0) -> redis.Redis:
    """A sync client (the app holds one per URL in ``st.cache_resource``)."""
    kwargs = {"password": password} if password else {}
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                health_check_interval=15, **kwargs)


def redacted(url: str) -> str:
    """The URL without its password, for messages shown on the page."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + netloc, parts.path, parts.query, parts.fragment))


def _s(b: bytes | str) -> str:
    return b.decode() if isinstance(b, bytes) else b


def _score(raw: bytes | str) -> RiskScore | None:
    try:
        return RiskScore.model_validate_json(raw)
    except ValidationError:
        return None


def _alert(raw: bytes | str) -> Alert | None:
    try:
        return Alert.model_validate_json(raw)
    except ValidationError:
        return None


# ---------------------------------------------------------------------------------------- squad


@dataclass(frozen=True)
class Ack:
    alert_id: str
    by: str
    at: float
    note: str = ""


@dataclass(frozen=True)
class AthleteRow:
    """One athlete in the squad list."""

    athlete_id: str
    session_id: str
    risk: float
    level: str
    window_end: float
    trend: float | None  # risk now minus the risk ~trend_window_s earlier; None: no earlier point kept
    last_seen: float  # wall clock of the newest score (epoch s)
    age_s: float
    stale: bool
    image_used: bool
    alert: Alert | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class Squad:
    rows: list[AthleteRow]  # highest risk first
    read_at: float
    unreadable: int = 0  # latest entries that did not parse

    @property
    def sessions(self) -> list[str]:
        return sorted({r.session_id for r in self.rows})

    def counts(self) -> dict[str, int]:
        out = {"high": 0, "moderate": 0, "low": 0, "alerts": 0, "stale": 0}
        for r in self.rows:
            out[r.level] = out.get(r.level, 0) + 1
            out["alerts"] += r.alert is not None
            out["stale"] += r.stale
        return out


def squad_snapshot(r: redis.Redis, *, now: float | None = None, stale_after_s: float = 5.0,
                   trend_window_s: float = 10.0) -> Squad:
    """Latest risk of every athlete, with trend, staleness and active alert. Two round trips."""
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.RISK_LATEST)
    pipe.zrange(keys.ATHLETES, 0, -1, withscores=True)
    pipe.hgetall(keys.ALERTS_ACTIVE)
    latest_raw, seen_raw, active_raw = pipe.execute()
    now = time.time() if now is None else now

    scores: dict[str, RiskScore] = {}
    unreadable = 0
    for a, v in latest_raw.items():
        sc = _score(v)
        if sc is None:
            unreadable += 1
        else:
            scores[_s(a)] = sc
    seen = {_s(a): float(t) for a, t in seen_raw}
    active = {_s(a): al for a, v in active_raw.items() if (al := _alert(v)) is not None}

    order = sorted(scores)
    pipe = r.pipeline(transaction=False)
    for a in order:
        before_ms = round((scores[a].window_end - trend_window_s) * 1000)
        pipe.xrevrange(keys.risk_history(a), max=str(before_ms), min="-", count=1)
    alert_ids = [al.alert_id for al in active.values()]
    for aid in alert_ids:
        pipe.hgetall(keys.alert_ack(aid))
    replies = pipe.execute()
    earlier, ack_raw = replies[:len(order)], replies[len(order):]
    acks = {aid: ack for aid, raw in zip(alert_ids, ack_raw) if (ack := _ack(aid, raw)) is not None}

    rows = []
    for a, prev in zip(order, earlier):
        sc = scores[a]
        trend = None
        if prev:
            try:
                trend = sc.risk - float(orjson.loads(prev[0][1][b"v"])["risk"])
            except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                trend = None
        last = seen.get(a, sc.scored_at)
        age = max(0.0, now - last)
        al = active.get(a)
        rows.append(AthleteRow(athlete_id=a, session_id=sc.session_id, risk=sc.risk, level=sc.level,
                               window_end=sc.window_end, trend=trend, last_seen=last, age_s=age,
                               stale=age > stale_after_s, image_used=sc.image_used, alert=al,
                               ack=acks.get(al.alert_id) if al else None))
    rows.sort(key=lambda x: (-x.risk, x.athlete_id))
    return Squad(rows=rows, read_at=now, unreadable=unreadable)


def filter_rows(rows: Iterable[AthleteRow], *, session: str | None = None, query: str = "") -> list[AthleteRow]:
    """Rows of one session (None: all) whose athlete or session id contains ``query`` (any case)."""
    q = query.strip().lower()
    return [r for r in rows if (session is None or r.session_id == session)
            and (not q or q in r.athlete_id.lower() or q in r.session_id.lower())]


def athlete_ids(r: redis.Redis) -> list[str]:
    """Every athlete with a score, sorted by id."""
    pipe = r.pipeline(transaction=False)
    pipe.zrange(keys.ATHLETES, 0, -1)
    pipe.hkeys(keys.RISK_LATEST)
    listed, latest = pipe.execute()
    return sorted({_s(a) for a in listed} | {_s(a) for a in latest})


def session_ids(r: redis.Redis) -> list[str]:
    """Sessions of the athletes' newest scores."""
    out = set()
    for v in r.hvals(keys.RISK_LATEST):
        try:
            out.add(str(orjson.loads(v)["session_id"]))
        except (KeyError, TypeError, orjson.JSONDecodeError):
            continue
    return sorted(out)


# -------------------------------------------------------------------------------------- athlete


def latest_score(r: redis.Redis, athlete_id: str) -> RiskScore | None:
    raw = r.hget(keys.RISK_LATEST, athlete_id)
    return _score(raw) if raw else None


def athlete_history(r: redis.Redis, athlete_id: str, *, count: int = 3600,
                    session_id: str | None = None) -> list[RiskScore]:
    """The newest ``count`` scores of an athlete, oldest first (only ``session_id``'s when given)."""
    raw = r.xrevrange(keys.risk_history(athlete_id), count=count)
    out = []
    for _, fields in reversed(raw):
        sc = _score(fields.get(b"v", b""))
        if sc is not None and (session_id is None or sc.session_id == session_id):
            out.append(sc)
    return out


@dataclass(frozen=True)
class History:
    """An athlete's kept scores (oldest first) and the newest stream id read, for incremental refreshes."""

    athlete_id: str
    scores: tuple[RiskScore, ...] = ()
    last_id: bytes | None = None


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def update_history(r: redis.Redis, athlete_id: str, cached: History | None, *, count: int = 3600) -> History:
    """``cached`` plus the entries written since (one round trip); a full read when there is nothing to extend.

    A stream whose newest id is older than the cached one was reset (Redis restarted, keys deleted):
    it is read again from scratch.
    """
    key = keys.risk_history(athlete_id)
    if cached is None or cached.athlete_id != athlete_id or cached.last_id is None:
        raw = list(reversed(r.xrevrange(key, count=count)))
        scores: list[RiskScore] = []
    else:
        pipe = r.pipeline(transaction=False)
        pipe.xrevrange(key, count=1)
        pipe.xrange(key, min=b"(" + cached.last_id, max="+", count=count)
        newest, raw = pipe.execute()
        if not newest or _id_key(newest[0][0]) < _id_key(cached.last_id):
            return update_history(r, athlete_id, None, count=count)
        scores = list(cached.scores)
    last_id = raw[-1][0] if raw else (cached.last_id if cached is not None and cached.athlete_id == athlete_id
                                      else None)
    scores.extend(sc for _, f in raw if (sc := _score(f.get(b"v", b""))) is not None)
    return History(athlete_id=athlete_id, scores=tuple(scores[-count:]), last_id=last_id)


@dataclass(frozen=True)
class Traces:
    """The latest scored window's channel traces (``stream.pipeline.traces_of``)."""

    window_start: float
    window_end: float
    t: list[float]  # seconds from window_start
    channels: dict[str, list[float] | None]  # None: the channel was absent
    attention: list[float]  # the model's attention over time, resampled onto ``t``


def latest_traces(r: redis.Redis, athlete_id: str) -> Traces | None:
    raw = r.get(keys.latest_window(athlete_id))
    if not raw:
        return None
    try:
        d = orjson.loads(raw)
        t = [float(x) for x in d["t"]]
        att = [float(x) for x in d.get("attention") or [0.0] * len(t)]
        chans = {str(k): (None if v is None else [float("nan") if x is None else float(x) for x in v])
                 for k, v in (d.get("channels") or {}).items()}
        return Traces(window_start=float(d["window_start"]), window_end=float(d["window_end"]), t=t,
                      channels=chans, attention=att)
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return None


# --------------------------------------------------------------------------------------- alerts


def _ack(alert_id: str, raw: dict) -> Ack | None:
    if not raw:
        return None
    d = {_s(k): _s(v) for k, v in raw.items()}
    try:
        at = float(d.get("at", "nan"))
    except ValueError:
        at = float("nan")
    return Ack(alert_id=alert_id, by=d.get("by", "?"), at=at, note=d.get("note", ""))


def active_alerts(r: redis.Redis) -> list[Alert]:
    """Currently raised alerts, newest first."""
    out = [a for v in r.hvals(keys.ALERTS_ACTIVE) if (a := _alert(v)) is not None]
    return sorted(out, key=lambda a: (-a.at, a.athlete_id))


def alert_history(r: redis.Redis, athlete_id: str, *, count: int = 50) -> list[Alert]:
    """An athlete's alert events (raised and cleared), newest first."""
    raw = r.xrevrange(keys.alert_history(athlete_id), count=count)
    return [a for _, f in raw if (a := _alert(f.get(b"v", b""))) is not None]


def recent_alerts(r: redis.Redis, athletes: Iterable[str], *, per_athlete: int = 50) -> list[Alert]:
    """Alert events of many athletes (one pipeline), newest first."""
    ids = list(athletes)
    pipe = r.pipeline(transaction=False)
    for a in ids:
        pipe.xrevrange(keys.alert_history(a), count=per_athlete)
    out = [a for raw in pipe.execute() for _, f in raw if (a := _alert(f.get(b"v", b""))) is not None]
    return sorted(out, key=lambda a: (-a.at, a.athlete_id, a.state))


def acknowledgements(r: redis.Redis, alert_ids: Iterable[str]) -> dict[str, Ack]:
    ids = list(dict.fromkeys(alert_ids))
    pipe = r.pipeline(transaction=False)
    for aid in ids:
        pipe.hgetall(keys.alert_ack(aid))
    return {aid: ack for aid, raw in zip(ids, pipe.execute()) if (ack := _ack(aid, raw)) is not None}


def acknowledge(r: redis.Redis, alert_id: str, *, by: str, note: str = "", now: float | None = None) -> Ack:
    """Record that ``by`` has seen alert ``alert_id`` (a later acknowledgement replaces it)."""
    alert_id, by, note = alert_id.strip(), by.strip(), note.strip()
    if not alert_id:
        raise DashboardError("cannot acknowledge: no alert id given")
    if not by:
        raise DashboardError(f"cannot acknowledge alert {alert_id}: say who acknowledges it (name is empty)")
    if len(by) > MAX_BY or len(note) > MAX_NOTE:
        raise DashboardError(f"cannot acknowledge alert {alert_id}: name over {MAX_BY} or note over "
                             f"{MAX_NOTE} characters")
    ack = Ack(alert_id=alert_id, by=by, at=time.time() if now is None else now, note=note)
    r.hset(keys.alert_ack(alert_id), mapping={"by": ack.by, "at": repr(round(ack.at, 3)), "note": ack.note})
    return ack


# -------------------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """Load context of an athlete's session, from what Redis keeps (history is capped by the worker)."""

    windows: int = 0
    span_min: float = 0.0  # first window start to last window end of the kept history
    hop_s: float | None = None
    minutes_moderate: float = 0.0
    minutes_high: float = 0.0
    mean_risk: float | None = None
    peak_risk: float | None = None
    grf_peak: dict[str, float] = field(default_factory=dict)  # latest window, BW, per side
    grf_asymmetry_pct: float | None = None  # |L - R| / (L + R) of the latest window's GRF impulse
    valgus_peak: dict[str, float] = field(default_factory=dict)  # latest window, deg, per side
    knee_rom: dict[str, float] = field(default_factory=dict)  # latest window, deg, per side
    player_load: float | None = None  # accumulated, when the worker publishes it
    player_load_session: str | None = None
    acute_chronic: float | None = None  # this session's PlayerLoad / mean of the athlete's previous sessions
    baseline_sessions: int = 0


def _finite(xs: list[float] | None) -> list[float]:
    return [x for x in xs or [] if x == x]


def workload(history: list[RiskScore], traces: Traces | None) -> Workload:
    """Exposure, time in each risk level and the latest window's loading, from history and traces."""
    kw: dict = {}
    if history:
        ends = [s.window_end for s in history]
        diffs = [b - a for a, b in zip(ends, ends[1:]) if b > a]
        hop = min(statistics.median(diffs), 5.0) if diffs else None
        per = hop or 0.0
        kw.update(windows=len(history), span_min=(history[-1].window_end - history[0].window_start) / 60,
                  hop_s=hop, minutes_moderate=sum(s.level == "moderate" for s in history) * per / 60,
                  minutes_high=sum(s.level == "high" for s in history) * per / 60,
                  mean_risk=statistics.fmean(s.risk for s in history), peak_risk=max(s.risk for s in history))
    if traces is not None:
        grf, valgus, rom, impulse = {}, {}, {}, {}
        dt = (traces.t[1] - traces.t[0]) if len(traces.t) > 1 else 0.0
        for side in ("l", "r"):
            g = _finite(traces.channels.get(f"grf_vertical_{side}"))
            if g:
                grf[side] = max(g)
                impulse[side] = sum(max(x, 0.0) for x in g) * dt
            v = _finite(traces.channels.get(f"knee_valgus_{side}"))
            if v:
                valgus[side] = max(v)
            k = _finite(traces.channels.get(f"knee_flexion_{side}"))
            if k:
                rom[side] = max(k) - min(k)
        kw.update(grf_peak=grf, valgus_peak=valgus, knee_rom=rom)
        if len(impulse) == 2 and impulse["l"] + impulse["r"] > 0:
            kw["grf_asymmetry_pct"] = 100 * abs(impulse["l"] - impulse["r"]) / (impulse["l"] + impulse["r"])
    return Workload(**kw)


def player_load(r: redis.Redis, athlete_id: str) -> tuple[float, str | None] | None:
    """Accumulated PlayerLoad if the worker publishes it (``schemas.keys.workload``), else None."""
    key_of = getattr(keys, "workload", None)
    if not callable(key_of):
        return None
    raw = {_s(k): _s(v) for k, v in r.hgetall(key_of(athlete_id)).items()}
    try:
        return float(raw["player_load"]), raw.get("session_id")
    except (KeyError, ValueError):
        return None


def chronic_load(r: redis.Redis, athlete_id: str, current_session: str) -> tuple[float, int] | None:
    """Mean PlayerLoad of the athlete's previous sessions (``schemas.keys.workload_sessions``), and their count."""
    raw = {_s(k): _s(v) for k, v in r.hgetall(keys.workload_sessions(athlete_id)).items()}
    previous = []
    for session, value in raw.items():
        try:
            if session != current_session:
                previous.append(float(value))
        except ValueError:
            continue
    return (sum(previous) / len(previous), len(previous)) if previous else None


def acute_chronic(acute: float | None, chronic: tuple[float, int] | None) -> tuple[float | None, int]:
    """Acute:chronic ratio against the athlete's own baseline (None until a previous session exists)."""
    if acute is None or chronic is None or chronic[0] <= 0:
        return None, chronic[1] if chronic else 0
    return acute / chronic[0], chronic[1]


# ---------------------------------------------------------------------------------------- export


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def _csv_row(d: dict) -> list:
    return [d["athlete_id"], d["session_id"], d["window_start"], d["window_end"], _iso(float(d["window_end"])),
            d["risk"], d["level"], d.get("image_used", False), "+".join(d.get("modalities") or ["sensor"]),
            d.get("model_version", ""), d.get("encoder_version") or "", d.get("missing_fraction", 0.0),
            d.get("latency_ms", ""), d.get("scored_at", "")]


def scores_csv(scores: Iterable[RiskScore]) -> str:
    """CSV (header + one row per window) of scores."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(_csv_row(s.model_dump(mode="json")) for s in scores)
    return buf.getvalue()


def _session_rows(r: redis.Redis, session_id: str, athletes: list[str]) -> Iterator[list]:
    for i in range(0, len(athletes), EXPORT_CHUNK):
        chunk = athletes[i:i + EXPORT_CHUNK]
        pipe = r.pipeline(transaction=False)
        for a in chunk:
            pipe.xrange(keys.risk_history(a))
        for entries in pipe.execute():
            for _, f in entries:
                try:
                    d = orjson.loads(f[b"v"])
                    if d["session_id"] == session_id:
                        yield _csv_row(d)
                except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                    continue


def session_csv(r: redis.Redis, session_id: str, athletes: Iterable[str] | None = None) -> str:
    """CSV of every kept risk point of ``session_id`` (all athletes, or ``athletes``), by athlete then time."""
    ids = sorted(athletes) if athletes is not None else athlete_ids(r)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(_session_rows(r, session_id, ids))
    return buf.getvalue()
