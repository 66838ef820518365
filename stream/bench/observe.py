"""Observers of a running contender: when each score appears on ``injury.risk`` and in Redis,
the consumer group's committed offsets (lag), and the paced load's own progress reports.

Each runs in a thread of the bench process (not in the contender), so every
implementation is timed by the same clock and code. What is recorded:

- :class:`RiskTopicObserver`: for each (athlete, window end) the wall time at which this
  observer first received the RiskScore from ``injury.risk`` (librdkafka consumer,
  partitions assigned by hand, ``fetch.wait.max.ms`` 5: it adds ~3 ms, measured on Tansu), and
  the record's CreateTime
  (set by the contender's producer when it sent the score).
- :class:`RedisObserver`: for a sample of athletes, the wall time at which a blocking
  ``XREAD`` on ``im:risk:hist:{athlete}`` returned the entry (its id is the window end), and
  the score's own split of its latency: window end -> window ready in the contender (consume,
  decode, windowing) and ready -> score built (queue, inference, scoring).
- :class:`CommittedOffsets`: the group's committed offsets per partition (OffsetFetch via
  librdkafka; aiokafka's admin client cannot decode Tansu's reply).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from schemas import keys, topics


class _Thread:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, daemon=True, name=type(self).__name__)
        self.error: BaseException | None = None

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the bench, never silently lost
            self.error = exc

    def _run(self) -> None:
        raise NotImplementedError


class RiskTopicObserver(_Thread):
    """First-seen wall time and CreateTime of every RiskScore of athletes with ``prefix``."""

    def __init__(self, bootstrap: str, *, prefix: str, from_end: bool = False, topic: str = topics.RISK) -> None:
        super().__init__()
        self.bootstrap, self.prefix, self.from_end, self.topic = bootstrap, prefix, from_end, topic
        self.seen: dict[tuple[str, int], float] = {}
        self.created: dict[tuple[str, int], float] = {}
        self.records = 0
        self.duplicates = 0
        self.assigned = threading.Event()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench-observer", "enable.auto.commit": False,
                      "fetch.wait.max.ms": 5, "log_level": 3})
        try:
            meta = c.list_topics(self.topic, timeout=10)
            parts = sorted(meta.topics[self.topic].partitions)
            start = OFFSET_END if self.from_end else OFFSET_BEGINNING
            c.assign([TopicPartition(self.topic, p, start) for p in parts])
            self.assigned.set()
            prefix = self.prefix.encode()
            while not self._stop.is_set():
                first = c.poll(0.1)  # returns at the first record (consume(n, t) would wait for n or t)
                if first is None:
                    continue
                now = time.time()
                msgs = [first, *c.consume(1000, 0)]
                for m in msgs:
                    if m.error() is not None or not (m.key() or b"").startswith(prefix):
                        continue
                    self.records += 1
                    doc = orjson.loads(m.value())
                    k = (doc["athlete_id"], round(doc["window_end"] * 1000))
                    if k in self.seen:
                        self.duplicates += 1
                        continue
                    self.seen[k] = now
                    self.created[k] = m.timestamp()[1] / 1000
        finally:
            c.close()


class RedisObserver(_Thread):
    """First-seen wall time of each history entry of a sample of athletes (blocking XREAD)."""

    def __init__(self, redis_url: str, athletes: Sequence[str]) -> None:
        super().__init__()
        self.redis_url = redis_url
        self.athletes = list(athletes)
        self.seen: dict[tuple[str, int], float] = {}
        self.stages: dict[tuple[str, int], tuple[float, float]] = {}  # (end -> ready, ready -> built), s

    def _run(self) -> None:
        import redis

        r = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        streams = {keys.risk_history(a): "0-0" for a in self.athletes}
        athlete_of = {keys.risk_history(a): a for a in self.athletes}
        try:
            while not self._stop.is_set():
                got = r.xread(streams, count=1000, block=200)
                now = time.time()
                for key, entries in got or []:
                    k = key.decode()
                    for eid, fields in entries:
                        e = eid.decode()
                        window = (athlete_of[k], int(e.split("-")[0]))
                        self.seen.setdefault(window, now)
                        streams[k] = e
                        doc = orjson.loads(fields[b"v"])
                        total, built = doc.get("latency_ms"), doc.get("processing_ms")
                        if total is not None and built is not None:
                            self.stages[window] = ((total - built) / 1000, built / 1000)
        finally:
            r.close()


class CommittedOffsets:
    """``committed()`` -> {partition: next offset} of a consumer group (missing: nothing committed)."""

    def __init__(self, bootstrap: str, group: str, partitions: int, topic: str = topics.FRAMES) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                            "log_level": 3})
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]

    def committed(self) -> dict[int, int]:
        return {tp.partition: tp.offset for tp in self._c.committed(self._tps, timeout=5) if tp.offset >= 0}

    def commit_at(self, offsets: dict[int, int]) -> None:
        """Start the group at these offsets (used on an external broker that holds older data)."""
        from confluent_kafka import TopicPartition

        self._c.commit(offsets=[TopicPartition(self._tps[0].topic, p, o) for p, o in offsets.items()],
                       asynchronous=False)

    def end_offsets(self) -> dict[int, int]:
        return {tp.partition: self._c.get_watermark_offsets(tp, timeout=5)[1] for tp in self._tps}

    def close(self) -> None:
        self._c.close()


class LoadProcess:
    """``python -m stream.bench.load`` in a child process; its JSON progress lines are kept."""

    def __init__(self, bootstrap: str, *, athletes: int, duration_s: float, prefix: str, session: str,
                 encoding: str, frames_per_message: int, hz: float, phase_hop: int, log: Path, cwd: Path) -> None:
        argv = [sys.executable, "-m", "stream.bench.load", "--bootstrap", bootstrap, "--athletes", str(athletes),
                "--duration", str(duration_s), "--prefix", prefix, "--session", session, "--encoding", encoding,
                "--frames-per-message", str(frames_per_message), "--hz", str(hz), "--phase-hop", str(phase_hop)]
        self._err = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._err, cwd=cwd, start_new_session=True)
        self.reports: list[dict] = []
        self.ready = threading.Event()
        self.final: dict | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("ready"):
                self.ready.set()
            elif "final" in doc:
                self.final = doc["final"]
            else:
                self.reports.append(doc)

    def high_water(self) -> dict[int, int]:
        return {int(p): o for p, o in self.reports[-1]["hw"].items()} if self.reports else {}

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)
            self._err.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if not self._err.closed:
            self._err.close()
