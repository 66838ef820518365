"""Redis sink: latest score, capped idempotent history, alerts and hysteresis state.

Key layout: :mod:`schemas.keys`. History entries use the window end as their stream id,
so a replayed window is refused by Redis ("equal or smaller than the top item") and
ignored here; ``im:risk:latest`` is only replaced by a newer window (Lua compare).

Outages (docs/reliability.md). A write that fails keeps its batch in a bounded backlog and
every later batch queues behind it, so Redis still sees each athlete's windows in order
(an older window written after a newer one would be refused by XADD and lost). A
background task retries every ``retry_s`` and writes the backlog in order once Redis
answers; every command is idempotent, so a batch half-written before the failure is safe
to write again. The backlog holds at most ``backlog_cap`` scores: beyond that the oldest
are dropped and counted (``dropped``; Kafka ``injury.risk`` still has them), so a long
outage leaves an explicit, counted gap instead of unbounded memory. Alerts are never
dropped; traces and hysteresis states keep only the newest per athlete. Only the first
failure of an outage raises (the caller logs and counts it); later writes return at once.
When Redis comes back empty (its ``run_id`` changed: a restart without persistence), the
hysteresis states and raised alerts of the athletes this worker owns are written again,
so the dashboard does not lose an active alert and no alert is raised twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from schemas import keys
from schemas.alerts import Alert
from schemas.codec import dumps
from stream.alerting import AlertState
from stream.sinks.base import Scored, Sink

log = logging.getLogger(__name__)

WRITE_CHUNK = 512  # scores per script call when a backlog is written
HOLD_S = 3600.0  # a Redis restart re-writes the states of athletes written to within this time

# One call writes a whole batch: per-command packing and reply parsing in redis-py cost ~50 µs
# each, and a window took six commands. Every step is idempotent per window, so a batch that
# failed half-way can be written again.
#   KEYS: latest hash, athletes zset, then per score (history, load, load sessions),
#         then per state (alert state), then per trace (latest window)
#   ARGV: history cap, n scores, n states, then per score (athlete, window end, body, stream id,
#         scored at, session, load, load seconds), then the state bodies, then the trace bodies
_WRITE = """
local cap, n, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, n - 1 do
  local k, a = 2 + 3 * i, 3 + 8 * i
  local athlete, wend, body = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  -- latest: only a newer window replaces it
  local cur = redis.call('HGET', KEYS[1], athlete)
  local e = cur and tonumber(string.match(cur, '"window_end":([%d%.eE+-]+)'))
  if not (e and e >= wend) then redis.call('HSET', KEYS[1], athlete, body) end
  -- history: the window end is the stream id, so a replayed window is refused
  local ok = redis.pcall('XADD', KEYS[k + 1], 'MAXLEN', '~', cap, ARGV[a + 4], 'v', body)
  if type(ok) == 'table' and ok.err and not string.find(ok.err, 'equal or smaller', 1, true) then
    return redis.error_reply(ok.err)
  end
  redis.call('ZADD', KEYS[2], ARGV[a + 5], athlete)
  -- PlayerLoad: added once per window end; a new session starts from zero
  local session, load = ARGV[a + 6], tonumber(ARGV[a + 7])
  if load ~= 0 then
    local lk = KEYS[k + 2]
    local was = redis.call('HGET', lk, 'session_id')
    local add = true
    if was and was ~= session then
      redis.call('HSET', lk, 'player_load', 0, 'seconds', 0, 'last_end', -1)
    elseif tonumber(redis.call('HGET', lk, 'last_end') or '-1') >= wend then
      add = false
    end
    if add then
      redis.call('HSET', lk, 'session_id', session, 'updated_at', ARGV[a + 5], 'last_end', ARGV[a + 2])
      local total = redis.call('HINCRBYFLOAT', lk, 'player_load', ARGV[a + 7])
      redis.call('HINCRBYFLOAT', lk, 'seconds', ARGV[a + 8])
      redis.call('HSET', KEYS[k + 3], session, total)
    end
  end
end
local k, a = 3 + 3 * n, 4 + 8 * n
for j = 0, m - 1 do redis.call('HSET', KEYS[k + j], 's', ARGV[a + j]) end
for j = m, #KEYS - k do redis.call('SET', KEYS[k + j], ARGV[a + j]) end
return n
"""


def connect(url: str, password: str | None = None) -> aioredis.Redis:
    kwargs = {"password": password} if password else {}
    return aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15, **kwargs)


@dataclass(frozen=True, slots=True)
class _Score:
    athlete_id: str
    window_end: float
    scored_at: float
    body: bytes
    session_id: str = ""
    load: float = 0.0    # PlayerLoad of the window's newest hop (keys.workload)
    load_s: float = 0.0


@dataclass(slots=True)
class _Batch:
    scores: list[_Score] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class RedisSink(Sink):
    def __init__(self, client: aioredis.Redis, *, history_cap: int = 3600, backlog_cap: int = 20_000,
                 retry_s: float = 1.0, check_s: float = 5.0) -> None:
        self.r = client
        self.history_cap = history_cap
        self.backlog_cap = backlog_cap
        self.retry_s = retry_s
        self.check_s = check_s
        self._write = self.r.register_script(_WRITE)
        self._pending: deque[_Batch] = deque()
        self._pending_scores = 0
        self._inflight = 0  # leading batches of _pending being written right now
        self._traces: dict[str, bytes] = {}     # newest traces per athlete, not yet written
        self._states: dict[str, bytes] = {}     # newest hysteresis state per athlete, not yet written
        self._held_states: dict[str, bytes] = {}  # last state written per athlete (for a Redis restart)
        self._active: dict[str, bytes] = {}      # raised alert per athlete (for a Redis restart)
        self._retrier: asyncio.Task | None = None
        self._run_id: str | None = None
        self._checked_at = 0.0
        self._must_check = False  # after a failure: look for a restart before the next write
        self._no_info = False
        self._reassert_alerts = False
        self._last_seen: dict[str, float] = {}  # athlete -> monotonic time of its last write
        self._pruned_at = time.monotonic()
        self.dropped = 0      # scores dropped from a full backlog
        self.failures = 0     # failed write attempts
        self.restarts = 0     # Redis restarts seen (run_id changed)

    # -- public -----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Scores waiting for Redis."""
        return self._pending_scores

    async def write(self, scored: list[Scored], alerts: list[Alert], states: dict[str, AlertState]) -> None:
        self._enqueue(scored, alerts, states)
        if self._retrier is not None and not self._retrier.done():
            return  # an outage: the retry task owns the backlog and writes it in order
        try:
            await self._flush()
        except Exception as exc:
            self.failures += 1
            self._must_check = True
            log.warning("Redis unavailable (%s): keeping up to %d scores and retrying every %.1f s",
                        exc, self.backlog_cap, self.retry_s)
            self._retrier = asyncio.create_task(self._retry())
            raise

    async def load_states(self, athlete_ids: list[str]) -> dict[str, AlertState]:
        async with self.r.pipeline(transaction=False) as pipe:
            for a in athlete_ids:
                pipe.hget(keys.alert_state(a), "s")
            raw = await pipe.execute()
        return {a: AlertState.from_dict(orjson.loads(v)) if v else AlertState() for a, v in zip(athlete_ids, raw)}

    def forget(self, athlete_ids: set[str]) -> None:
        """Another worker owns these athletes now (or they went silent): never re-write their state or alert."""
        for a in athlete_ids:
            self._held_states.pop(a, None)
            self._active.pop(a, None)
            self._last_seen.pop(a, None)

    async def close(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()
        await self.r.aclose()

    # -- internals ----------------------------------------------------------------------------
    def _enqueue(self, scored: list[Scored], alerts: list[Alert], states: dict[str, AlertState]) -> None:
        batch = _Batch([_Score(s.score.athlete_id, s.score.window_end, s.score.scored_at, s.body,
                               s.score.session_id, s.load, s.load_s) for s in scored], list(alerts))
        for s in scored:
            if s.traces is not None:
                self._traces[s.score.athlete_id] = orjson.dumps(s.traces, option=orjson.OPT_SERIALIZE_NUMPY)
        for a in alerts:
            if a.state == "raised":
                self._active[a.athlete_id] = dumps(a)
            else:
                self._active.pop(a.athlete_id, None)
        now = time.monotonic()
        for athlete_id, st in states.items():
            self._states[athlete_id] = self._held_states[athlete_id] = orjson.dumps(st.to_dict())
            self._last_seen[athlete_id] = now
        if now - self._pruned_at > 60:  # athletes silent for HOLD_S are no longer re-asserted
            self._pruned_at = now
            self.forget({a for a, t in self._last_seen.items() if now - t > HOLD_S})
        self._pending.append(batch)
        self._pending_scores += len(batch.scores)
        excess = self._pending_scores - self.backlog_cap
        if excess > 0:
            if self.dropped == 0:
                log.warning("Redis backlog full (%d scores): dropping the oldest; Kafka keeps them", self.backlog_cap)
            for old in itertools.islice(self._pending, self._inflight, None):  # oldest first, not in flight
                cut = min(len(old.scores), excess)
                del old.scores[:cut]
                excess -= cut
                self._pending_scores -= cut
                self.dropped += cut
                if excess == 0:
                    break
            self._pending = deque(b for i, b in enumerate(self._pending) if i < self._inflight or b.scores or b.alerts)

    async def _retry(self) -> None:
        """Own the backlog during an outage: retry every ``retry_s`` until everything is written."""
        down_since = time.monotonic()
        recovered = False
        await asyncio.sleep(self.retry_s)
        while self._pending or self._states or self._traces:
            n = self._pending_scores
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self._must_check = True
                log.debug("Redis still unavailable: %s", exc)
                await asyncio.sleep(self.retry_s)
                continue
            if not recovered:
                recovered = True
                log.warning("Redis is back after %.1f s: wrote %d backlogged scores (%d dropped so far)",
                            time.monotonic() - down_since, n, self.dropped)

    async def _check_restart(self) -> None:
        """Redis restarted without its data: queue the states and raised alerts we hold again."""
        now = time.monotonic()
        if self._no_info or (not self._must_check and now - self._checked_at < self.check_s):
            return
        try:
            info = await self.r.info("server")
        except ResponseError as exc:  # INFO renamed away or denied by an ACL: no restart detection
            self._no_info = True
            log.info("Redis INFO unavailable (%s): restarts without persistence are not detected", exc)
            return
        self._checked_at, self._must_check = now, False
        run_id = info.get("run_id")
        if self._run_id is not None and run_id != self._run_id:
            self.restarts += 1
            log.warning("Redis restarted (run_id changed): re-writing %d alert states and %d raised alerts",
                        len(self._held_states), len(self._active))
            self._states.update(self._held_states)
            self._reassert_alerts = True
        self._run_id = run_id

    async def _flush(self) -> None:
        """Write everything pending, in order; remove it only once Redis has taken it.

        Scores go in chunks of ``WRITE_CHUNK``, one script call each; the last call also carries
        the newest traces and states, so in the usual case (no backlog, no alert) one round trip
        writes a batch.
        """
        await self._check_restart()
        while True:
            try:
                last, taken, n, states, traces, reassert = await self._write_chunk()
            finally:
                self._inflight = 0
            for _ in range(taken):
                self._pending.popleft()
            self._pending_scores -= n
            if last:
                for pending, written in ((self._states, states), (self._traces, traces)):
                    for athlete_id, body in written.items():
                        if pending.get(athlete_id) is body:  # not replaced meanwhile
                            del pending[athlete_id]
                if reassert:
                    self._reassert_alerts = False
                return

    async def _write_chunk(self) -> tuple[bool, int, int, dict, dict, bool]:
        taken, scores = 0, []
        for batch in self._pending:
            if taken and len(scores) + len(batch.scores) > WRITE_CHUNK:
                break
            scores += batch.scores
            taken += 1
        self._inflight = taken  # a full backlog drops scores from later batches only
        last = taken == len(self._pending)
        states, traces, reassert = {}, {}, False
        if last:
            states, traces, reassert = dict(self._states), dict(self._traces), self._reassert_alerts
        if scores or states or traces:
            key_list, args = self._write_args(scores, states, traces)
            await self._write(keys=key_list, args=args)  # EVALSHA (loads the script if Redis lost it)
        alerts = [a for batch in itertools.islice(self._pending, taken) for a in batch.alerts]
        if alerts or reassert:  # rare: their own round trip, after the scores
            async with self.r.pipeline(transaction=False) as pipe:
                self._queue_alerts(pipe, alerts)
                if reassert:
                    for athlete_id, body in self._active.items():
                        pipe.hset(keys.ALERTS_ACTIVE, athlete_id, body)
                await self._execute(pipe)
        return last, taken, len(scores), states, traces, reassert

    def _write_args(self, scores: list[_Score], states: dict[str, bytes], traces: dict[str, bytes]) -> tuple[list, list]:
        key_list: list = [keys.RISK_LATEST, keys.ATHLETES]
        args: list = [self.history_cap, len(scores), len(states)]
        for s in scores:
            a = s.athlete_id
            key_list += (keys.risk_history(a), keys.workload(a), keys.workload_sessions(a))
            args += (a, s.window_end, s.body, keys.stream_id(s.window_end), s.scored_at, s.session_id,
                     s.load, s.load_s)
        key_list += [keys.alert_state(a) for a in states]
        key_list += [keys.latest_window(a) for a in traces]
        return key_list, [*args, *states.values(), *traces.values()]

    @staticmethod
    def _queue_alerts(pipe, alerts: list[Alert]) -> None:
        for a in alerts:
            body = dumps(a)
            pipe.xadd(keys.alert_history(a.athlete_id), {"v": body}, id=keys.stream_id(a.at),
                      maxlen=1000, approximate=True)
            if a.state == "raised":
                pipe.hset(keys.ALERTS_ACTIVE, a.athlete_id, body)
            else:
                pipe.hdel(keys.ALERTS_ACTIVE, a.athlete_id)

    @staticmethod
    async def _execute(pipe) -> None:
        for res in await pipe.execute(raise_on_error=False):
            if isinstance(res, ResponseError) and "equal or smaller" not in str(res):
                raise res
