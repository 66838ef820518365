"""A FrameBatch producer that outpaces the worker: pre-encoded messages, N athletes at 100 Hz.

Encoding a message is a byte concatenation: each athlete's header and a pool of frame
blocks (synthetic gait from :class:`engine.data.synthetic.GaitStream`, ``profiles``
athletes' worth, cycled) are encoded once, so a message costs ~1 µs of Python and the
producer (librdkafka via ``confluent-kafka``) keeps up with any worker on the same box.
The bytes are exactly what :func:`schemas.codec.encode_frames` writes (JSON or binary),
so the worker validates them the same way.

Batch ``k`` of athlete ``i`` holds frames ``k*F + s_i .. k*F + s_i + F-1`` on the absolute
100 Hz grid (``t0 = (k*F + s_i)/hz``, ``seq = k``), so seqs keep increasing across producer
processes. The shift ``s_i`` (:meth:`LoadSpec.shift`) follows the athlete's window phase
(:func:`stream.windowing.message_shift` with ``phase_hop``, the worker's staggered grid), or is 0
for every athlete with ``phase_hop=0`` (the worker's ``window_stagger=false``); either way the
athlete's window ends fall on batch ends when the message length divides the hop.

- :func:`preload` writes a backlog as fast as possible (event times in the past);
- :func:`run_paced` sends each athlete's batch ``k`` once its frames have happened, at wall
  time ``((k + 1)*F + s_i) / hz``, like a sensor; with staggered phases the athletes' messages
  spread over the hop, with ``phase_hop=0`` they all go at once (the worst case: one burst per
  hop). It reports progress (messages acknowledged per partition, how late it is) as JSON
  lines when run as ``python -m stream.bench.load`` so the bench can tell a slow worker from a
  slow producer.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from schemas import topics
from schemas.codec import BINARY_MAGIC
from stream.exceptions import StreamError
from stream.windowing import message_shift

ENCODINGS = ("json", "binary")


@dataclass(frozen=True)
class LoadSpec:
    athletes: int
    hz: float = 100.0
    frames_per_message: int = 10
    encoding: str = "json"
    session_id: str = "bench"
    prefix: str = "bench"
    profiles: int = 8        # distinct synthetic gait sources; athlete i uses profile i % profiles
    pool_s: float = 20.0     # seconds of frames per profile, cycled
    seed: int = 7
    phase_hop: int = 0       # frames; >0: shift athlete i's messages onto its staggered window grid of this hop

    def __post_init__(self) -> None:
        if self.athletes < 1:
            raise StreamError(f"load needs at least one athlete, got {self.athletes}")
        if self.encoding not in ENCODINGS:
            raise StreamError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if not 1 <= self.frames_per_message <= 1000:
            raise StreamError(f"frames_per_message must be in 1..1000, got {self.frames_per_message}")

    @property
    def batch_s(self) -> float:
        """Event time covered by one message (0.1 s at 10 frames, 100 Hz)."""
        return self.frames_per_message / self.hz

    @property
    def messages_per_s(self) -> float:
        return self.athletes / self.batch_s

    def athlete_id(self, i: int) -> str:
        return f"{self.prefix}-{i + 1:05d}"

    def shift(self, i: int) -> int:
        """Frames by which athlete ``i``'s messages are shifted from the absolute grid."""
        return message_shift(self.athlete_id(i), self.phase_hop, self.frames_per_message)


def frame_pool(spec: LoadSpec) -> np.ndarray:
    """(profiles, blocks, F, C) float32 frames of synthetic gait (valid ranges, all channels)."""
    from engine.data.synthetic import GaitStream, sample_profile

    f = spec.frames_per_message
    blocks = max(1, math.ceil(spec.pool_s * spec.hz / f))
    rng = np.random.default_rng(spec.seed)
    out = []
    for p in range(min(spec.profiles, spec.athletes)):
        gs = GaitStream(sample_profile(rng), hz=spec.hz, seed=spec.seed * 1000 + p)
        out.append(gs.next(blocks * f).astype(np.float32).reshape(blocks, f, -1))
    return np.stack(out)


class MessageFactory:
    """``key(i)`` and ``message(i, k)``: athlete ``i``'s batch ``k`` as wire bytes."""

    def __init__(self, spec: LoadSpec, pool: np.ndarray | None = None) -> None:
        self.spec = spec
        pool = frame_pool(spec) if pool is None else pool
        self.n_profiles, self.n_blocks = pool.shape[0], pool.shape[1]
        if pool.shape[2] != spec.frames_per_message:
            raise StreamError(f"frame pool holds blocks of {pool.shape[2]} frames, spec says {spec.frames_per_message}")
        binary = spec.encoding == "binary"
        if binary:
            self._blocks = [[blk.astype("<f4").tobytes() for blk in prof] for prof in pool]
        else:
            self._blocks = [[orjson.dumps(blk, option=orjson.OPT_SERIALIZE_NUMPY) for blk in prof] for prof in pool]
        self._binary = binary
        self._tail = b',"n":%d}' % spec.frames_per_message if binary else b"}"
        self._frames_key = b"" if binary else b',"frames":'
        self._keys: list[bytes] = []
        self._heads: list[bytes] = []
        hz = orjson.dumps(float(spec.hz))
        for i in range(spec.athletes):
            a = spec.athlete_id(i)
            self._keys.append(a.encode())
            self._heads.append(
                b'{"schema_version":1,"channels_version":1,"athlete_id":' + orjson.dumps(a)
                + b',"session_id":' + orjson.dumps(spec.session_id) + b',"sensor_id":' + orjson.dumps(a + "-imu")
                + b',"hz":' + hz + b',"absent":[],"seq":'
            )
        self._offset = [(i * 37) % self.n_blocks for i in range(spec.athletes)]  # decorrelate athletes of a profile
        self._shift = [spec.shift(i) for i in range(spec.athletes)]

    def key(self, i: int) -> bytes:
        return self._keys[i]

    def t0(self, i: int, k: int) -> float:
        return (k * self.spec.frames_per_message + self._shift[i]) / self.spec.hz

    def frames(self, i: int, k: int) -> bytes:
        return self._blocks[i % self.n_profiles][(k + self._offset[i]) % self.n_blocks]

    def message(self, i: int, k: int) -> bytes:
        head = self._heads[i] + str(k).encode() + b',"t0":' + orjson.dumps(self.t0(i, k))
        if self._binary:
            head += self._tail
            return BINARY_MAGIC + len(head).to_bytes(4, "little") + head + self.frames(i, k)
        return head + self._frames_key + self.frames(i, k) + self._tail


@dataclass
class ProduceStats:
    messages: int = 0
    frames: int = 0
    acked: int = 0
    errors: int = 0
    started: float = 0.0
    elapsed_s: float = 0.0
    high_water: dict[int, int] = field(default_factory=dict)  # partition -> last acknowledged offset + 1
    max_behind_s: float = 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"messages": self.messages, "frames": self.frames, "acked": self.acked, "errors": self.errors,
                "elapsed_s": round(self.elapsed_s, 3), "messages_per_s": round(self.messages_per_s, 1),
                "high_water": {str(p): o for p, o in sorted(self.high_water.items())},
                "max_behind_s": round(self.max_behind_s, 4)}


def make_producer(bootstrap: str, stats: ProduceStats):
    """A librdkafka producer whose delivery reports keep ``stats`` exact (acks, per-partition ends)."""
    from confluent_kafka import Producer

    def delivered(err, msg) -> None:
        if err is not None:
            stats.errors += 1
            return
        stats.acked += 1
        p, o = msg.partition(), msg.offset()
        if o + 1 > stats.high_water.get(p, 0):
            stats.high_water[p] = o + 1

    return Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1, "batch.num.messages": 2000,
        "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 2_097_151,
        "message.max.bytes": 2_000_000, "log_level": 3, "on_delivery": delivered,
    })


def _produce(producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:  # local queue full: let librdkafka deliver some
            producer.poll(0.05)


def preload(bootstrap: str, factory: MessageFactory, *, batches: int, first_k: int,
            topic: str = topics.FRAMES) -> ProduceStats:
    """Write ``batches`` messages per athlete, time-ordered, as fast as possible; wait for every ack."""
    stats = ProduceStats(started=time.time())
    producer = make_producer(bootstrap, stats)
    n, f = factory.spec.athletes, factory.spec.frames_per_message
    t = time.perf_counter()
    for k in range(first_k, first_k + batches):
        for i in range(n):
            _produce(producer, topic, factory.key(i), factory.message(i, k))
        producer.poll(0)
    left = producer.flush(60)
    stats.elapsed_s = time.perf_counter() - t
    stats.messages = n * batches
    stats.frames = stats.messages * f
    if left or stats.errors:
        raise StreamError(f"preload: {left} messages undelivered and {stats.errors} failed on {topic} at {bootstrap}")
    return stats


def run_paced(bootstrap: str, factory: MessageFactory, *, duration_s: float, topic: str = topics.FRAMES,
              on_report: Callable[[dict], None] | None = None, report_every_s: float = 0.5,
              stop: Callable[[], bool] | None = None) -> ProduceStats:
    """Send athlete ``i``'s batch ``k`` at wall time ``((k + 1) * F + s_i) / hz`` for ``duration_s``
    seconds; every athlete's batch ``k`` goes out before any batch ``k + 1``."""
    spec = factory.spec
    dt = spec.batch_s
    groups: dict[int, list[int]] = {}
    for i in range(spec.athletes):
        groups.setdefault(spec.shift(i), []).append(i)
    schedule = sorted(groups.items())  # (shift in frames, athletes), earliest first
    stats = ProduceStats(started=time.time())
    producer = make_producer(bootstrap, stats)
    k = k0 = math.ceil(time.time() / dt)  # the first batch starts on the grid after now
    end = stats.started + duration_s
    next_report = stats.started + report_every_s
    behind_window = 0.0
    t = time.perf_counter()
    try:
        while (stop is None or not stop()):
            if (k + 1) * dt + schedule[-1][0] / spec.hz > end:
                break
            for shift, members in schedule:
                due = (k + 1) * dt + shift / spec.hz
                while (wait := due - time.time()) > 0:
                    producer.poll(min(wait, 0.05))  # serve delivery reports while waiting
                behind = time.time() - due
                behind_window = max(behind_window, behind)
                stats.max_behind_s = max(stats.max_behind_s, behind)
                for i in members:
                    _produce(producer, topic, factory.key(i), factory.message(i, k))
                producer.poll(0)
            stats.messages += spec.athletes
            k += 1
            now = time.time()
            if on_report is not None and now >= next_report:
                on_report({"t": now, "sent": stats.messages, "acked": stats.acked, "errors": stats.errors,
                           "hw": {str(p): o for p, o in stats.high_water.items()}, "behind_s": round(behind_window, 4),
                           "k0": k0, "k": k})
                behind_window = 0.0
                next_report = now + report_every_s
    finally:
        producer.flush(30)
        stats.elapsed_s = time.perf_counter() - t
        stats.frames = stats.messages * spec.frames_per_message
    if on_report is not None:
        on_report({"t": time.time(), "sent": stats.messages, "acked": stats.acked, "errors": stats.errors,
                   "hw": {str(p): o for p, o in stats.high_water.items()}, "behind_s": 0.0, "k0": k0, "k": k,
                   "done": True})
    return stats


def _write_line(doc: dict) -> None:
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True, help="host:port of the broker")
    p.add_argument("--athletes", type=int, required=True)
    p.add_argument("--duration", type=float, required=True, help="seconds of paced load")
    p.add_argument("--hz", type=float, default=100.0)
    p.add_argument("--frames-per-message", type=int, default=10)
    p.add_argument("--encoding", choices=ENCODINGS, default="json")
    p.add_argument("--session", default="bench")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--phase-hop", type=int, default=0,
                   help="frames; shift each athlete's messages onto its staggered window grid (0: all at once)")
    args = p.parse_args(argv)
    spec = LoadSpec(athletes=args.athletes, hz=args.hz, frames_per_message=args.frames_per_message,
                    encoding=args.encoding, session_id=args.session, prefix=args.prefix, seed=args.seed,
                    phase_hop=args.phase_hop)
    factory = MessageFactory(spec)
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__("now", True))
    _write_line({"ready": True, "t": time.time()})
    stats = run_paced(args.bootstrap, factory, duration_s=args.duration, on_report=_write_line,
                      stop=lambda: stopping["now"])
    _write_line({"final": stats.to_dict()})
    return 0 if stats.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
