"""Sensor simulator: N synthetic athletes (or replayed recordings) publishing FrameBatch at real time.

Each athlete is an :class:`engine.data.synthetic.GaitStream` whose fatigue, and so whose
known injury risk, drifts up over the session. Messages carry ``frames_per_message``
frames (10 = one message per athlete every 0.1 s at 100 Hz), keyed by athlete id, with
event time ``t0`` on the frame grid. Like real sensors, the athletes do not send in step: each
one's messages are shifted by its window phase (:func:`stream.windowing.message_shift`), so
they end on its window ends and a window is complete, and scored, as soon as its last message
arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.codec import encode_frames
from stream.kafka import client_kwargs
from stream.settings import SimulatorSettings
from stream.windowing import message_shift

log = logging.getLogger(__name__)


@dataclass
class SimStats:
    messages: int = 0
    frames: int = 0
    started: float = 0.0
    stopped: float = 0.0


class SimAthlete:
    """One athlete's source of frames: ``next(n) -> (n, C)`` plus the channels it lacks."""

    def __init__(self, athlete_id: str, source, absent: tuple[str, ...] = ()) -> None:
        self.athlete_id = athlete_id
        self.source = source
        self.absent = absent
        self.seq = 0

    def next(self, n: int) -> np.ndarray:
        return self.source.next(n)


def synthetic_athletes(settings: SimulatorSettings) -> list[SimAthlete]:
    from engine.data.synthetic import GaitStream, sample_profile

    rng = np.random.default_rng(settings.seed)
    out = []
    for i in range(settings.athletes):
        profile = sample_profile(rng)
        gs = GaitStream(profile, hz=settings.hz, seed=settings.seed * 1000 + i, fatigue_tau_s=settings.fatigue_tau_s)
        out.append(SimAthlete(f"{settings.athlete_prefix}-{i + 1:02d}", gs))
    return out


def replay_athletes(settings: SimulatorSettings) -> list[SimAthlete]:
    from engine.data.recordings import RecordingStream, load_recording

    out = []
    for i, path in enumerate(settings.replay):
        rec = load_recording(path, hz=settings.hz)
        out.append(SimAthlete(f"{settings.athlete_prefix}-rec{i + 1:02d}", RecordingStream(rec), rec.absent))
    return out


async def simulate(settings: SimulatorSettings, *, athletes: list[SimAthlete] | None = None,
                   stop: asyncio.Event | None = None) -> SimStats:
    """Publish until ``duration_s`` passes or ``stop`` is set. Returns counts."""
    from stream.admin import ensure_topics

    await ensure_topics(settings, settings.partitions)
    if athletes is None:
        athletes = replay_athletes(settings) if settings.replay else synthetic_athletes(settings)
    metrics = _metrics(settings.metrics_port)
    # one record per batch: Tansu (the embedded broker) numbers multi-record batches wrongly, and after a
    # broker restart their records came back interleaved out of order (docs/reliability.md)
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=5, acks=1, max_request_size=2_000_000,
                                max_batch_size=1)
    await producer.start()
    stats = SimStats(started=time.time())
    n = settings.frames_per_message
    hz = settings.hz
    dt = n / hz
    hop = round(settings.phase_hop_s * hz)
    groups: dict[int, list[SimAthlete]] = {}
    for a in athletes:
        groups.setdefault(message_shift(a.athlete_id, hop, n), []).append(a)
    schedule = sorted(groups.items())  # (shift in frames, athletes): every batch k is due within one message
    start_idx = -(-round(time.time() * hz) // max(hop, 1)) * max(hop, 1)  # on the hop grid, just ahead of now
    loop = asyncio.get_running_loop()
    t_start = loop.time() + (start_idx / hz - time.time())
    k = 0
    try:
        while True:
            if settings.duration_s is not None and k * dt >= settings.duration_s:
                break
            if stop is not None and stop.is_set():
                break
            for shift, members in schedule:
                # a sensor sends frames once they have happened: batch k covers [t0, t0 + dt)
                delay = t_start + ((k + 1) * n + shift) / hz - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -5 * dt and k % 50 == 0 and shift == schedule[0][0]:
                    log.warning("simulator is %.1f s behind real time", -delay)
                t0 = (start_idx + k * n + shift) / hz
                for a in members:
                    frames = a.next(n)
                    body = encode_frames(athlete_id=a.athlete_id, session_id=settings.session_id,
                                         sensor_id=f"{a.athlete_id}-imu", seq=a.seq, t0=t0, hz=hz, frames=frames,
                                         absent=a.absent, encoding=settings.encoding)
                    a.seq += 1
                    await producer.send(topics.FRAMES, body, key=a.athlete_id.encode())
            stats.messages += len(athletes)
            stats.frames += len(athletes) * n
            if metrics:
                metrics[0].inc(len(athletes))
                metrics[1].inc(len(athletes) * n)
            k += 1
        await producer.flush()
    finally:
        await producer.stop()
        stats.stopped = time.time()
    return stats


def _metrics(port: int):
    if not port:
        return None
    from prometheus_client import Counter, start_http_server

    start_http_server(port, addr="0.0.0.0")
    return (Counter("injury_sim_messages_total", "Messages published"),
            Counter("injury_sim_frames_total", "Frames published"))
