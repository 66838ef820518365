"""Redis sink: latest score, capped idempotent history, alerts and hysteresis state.

Key layout: :mod:`schemas.keys`. History entries use the window end as their stream id,
so a replayed window is refused by Redis ("equal or smaller than the top item") and
ignored here; ``im:risk:latest`` is only replaced by a newer window (Lua compare).
"""

from __future__ import annotations

import logging

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from schemas import keys
from schemas.alerts import Alert
from schemas.codec import dumps
from stream.alerting import AlertState
from stream.sinks.base import Scored, Sink

log = logging.getLogger(__name__)

# KEYS[1] = latest hash; ARGV = athlete, window_end, json
_SET_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local e = tonumber(string.match(cur, '"window_end":([%d%.eE+-]+)'))
  if e and e >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


def connect(url: str, password: str | None = None) -> aioredis.Redis:
    kwargs = {"password": password} if password else {}
    return aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15, **kwargs)


class RedisSink(Sink):
    def __init__(self, client: aioredis.Redis, *, history_cap: int = 3600) -> None:
        self.r = client
        self.history_cap = history_cap
        self._set_if_newer = self.r.register_script(_SET_IF_NEWER)

    async def write(self, scored: list[Scored], alerts: list[Alert], states: dict[str, AlertState]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for s in scored:
            sc = s.score
            body = dumps(sc)
            await self._set_if_newer(keys=[keys.RISK_LATEST], args=[sc.athlete_id, sc.window_end, body], client=pipe)
            pipe.xadd(keys.risk_history(sc.athlete_id), {"v": body}, id=keys.stream_id(sc.window_end),
                      maxlen=self.history_cap, approximate=True)
            pipe.zadd(keys.ATHLETES, {sc.athlete_id: sc.scored_at})
            if s.traces is not None:
                pipe.set(keys.latest_window(sc.athlete_id), orjson.dumps(s.traces))
        for a in alerts:
            body = dumps(a)
            pipe.xadd(keys.alert_history(a.athlete_id), {"v": body}, id=keys.stream_id(a.at),
                      maxlen=1000, approximate=True)
            if a.state == "raised":
                pipe.hset(keys.ALERTS_ACTIVE, a.athlete_id, body)
            else:
                pipe.hdel(keys.ALERTS_ACTIVE, a.athlete_id)
        for athlete_id, st in states.items():
            pipe.hset(keys.alert_state(athlete_id), "s", orjson.dumps(st.to_dict()))
        for res in await pipe.execute(raise_on_error=False):
            if isinstance(res, ResponseError) and "equal or smaller" not in str(res):
                raise res

    async def load_states(self, athlete_ids: list[str]) -> dict[str, AlertState]:
        pipe = self.r.pipeline(transaction=False)
        for a in athlete_ids:
            pipe.hget(keys.alert_state(a), "s")
        raw = await pipe.execute()
        return {a: AlertState.from_dict(orjson.loads(v)) if v else AlertState() for a, v in zip(athlete_ids, raw)}

    async def close(self) -> None:
        await self.r.aclose()
