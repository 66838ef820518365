"""Per-athlete event-time windowing. Pure logic: no Kafka, no Redis, no clock of its own.

Frames live on an absolute grid: frame index ``k`` has event time ``k / hz``, and a batch's
frames occupy ``round(t0 * hz) + 0..N-1``. Windows end on the athlete's hop grid
(``end % hop == phase(athlete_id)``) and cover ``[end - window, end)``. The phase is a stable
hash of the athlete id (:meth:`WindowConfig.phase`, 0 for every athlete with ``stagger=False``):
the same on every worker, after every restart and replay, so a window's identity
``(athlete_id, end)`` never changes; and the athletes' windows end spread over the hop, not all
at one instant, so a worker gets a steady stream of work instead of one burst per hop.

Rules (stated once, tested by property tests):
- **Emission.** A window is emitted as soon as all its frames are present, or once the
  watermark (newest frame seen minus the grace period) passes its end. An athlete's
  *first* window always waits for the watermark, so an early batch that arrives late but
  within grace still starts the same window grid as the in-order stream.
- **Late.** A batch whose first frame is older than the watermark, or falls in a window
  already emitted, is rejected as ``late``.
- **Duplicate.** A batch whose ``(sensor_id, seq)`` was already accepted is rejected as
  ``duplicate`` (producer retries never double count).
- **Seq regression.** For one sensor, seq order must agree with t0 order; a lower seq more
  than one window after the newest is taken as the sensor restarting its numbering.
- **Gaps.** Missing frames are linearly interpolated; a window with more than
  ``max_missing_fraction`` missing, or a gap longer than ``max_gap_s``, is not scored and
  is reported as :class:`Skipped` (``insufficient_data``).
- **Jumps.** A batch starting more than one window after the newest frame starts a new
  segment: the old segment is flushed (as on silence) and the new one warms up again.
- **Silence.** ``expire(now)`` closes athletes with no batch for ``idle_timeout_s``: every
  window that ends at or before the newest frame is emitted (or skipped), the incomplete
  tail (< one window) is discarded, and the buffer is freed.
- **Session change.** A batch with a new ``session_id`` flushes the old session the same way.
- **Memory.** Each athlete holds one ring buffer of ``2 * window + grace + hop`` frames
  (77 KB at the defaults) plus the recent seqs, whatever the producer sends; a large batch
  is written hop by hop, as if it had arrived in small pieces.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from schemas.channels import N_CHANNELS
from schemas.codec import Batch
from schemas.rejected import Reason


@dataclass(frozen=True)
class WindowConfig:
    hz: float = 100.0
    window_s: float = 2.0
    hop_s: float = 0.5
    grace_s: float = 1.0
    max_missing_fraction: float = 0.2
    max_gap_s: float = 0.25
    idle_timeout_s: float = 10.0
    stagger: bool = True

    @property
    def window(self) -> int:
        return round(self.window_s * self.hz)

    @property
    def hop(self) -> int:
        return round(self.hop_s * self.hz)

    @property
    def grace(self) -> int:
        return round(self.grace_s * self.hz)

    @property
    def max_gap(self) -> int:
        return round(self.max_gap_s * self.hz)

    def phase(self, athlete_id: str) -> int:
        """Where this athlete's windows end within the hop (``end % hop``, frames)."""
        return grid_phase(athlete_id, self.hop) if self.stagger else 0


def grid_phase(athlete_id: str, hop: int) -> int:
    """CRC-32 of the id modulo the hop (frames): any producer can compute it, and cut its
    messages on the athlete's window ends, so a window completes the moment its message arrives."""
    return zlib.crc32(athlete_id.encode()) % hop


def message_shift(athlete_id: str, hop: int, frames_per_message: int) -> int:
    """Frames past the absolute grid at which a producer of ``frames_per_message``-frame messages
    starts this athlete's, so that they end on its window ends (when the length divides the hop);
    below one message length, so every athlete's message ``k`` is due within one interval."""
    return grid_phase(athlete_id, hop) % min(frames_per_message, hop) if hop else 0


@dataclass(frozen=True, slots=True)
class Window:
    athlete_id: str
    session_id: str
    end_index: int
    hz: float
    data: np.ndarray  # (window, C) float32; absent channels are NaN
    missing_fraction: float
    absent: tuple[str, ...]
    ready_at: float  # wall clock when emitted

    @property
    def start(self) -> float:
        return (self.end_index - len(self.data)) / self.hz

    @property
    def end(self) -> float:
        return self.end_index / self.hz


@dataclass(frozen=True, slots=True)
class Skipped:
    athlete_id: str
    session_id: str
    end_index: int
    reason: str  # "insufficient_data" | "gap"
    missing_fraction: float
    count: int = 1


@dataclass(slots=True)
class Offer:
    """What happened to one batch: accepted or rejected, and what it released."""

    reason: Reason | None = None
    detail: str = ""
    windows: list[Window] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.reason is None


class AthleteBuffer:
    """One athlete's ring buffer and window clock."""

    def __init__(self, athlete_id: str, session_id: str, cfg: WindowConfig) -> None:
        self.athlete_id = athlete_id
        self.session_id = session_id
        self.cfg = cfg
        self.phase = cfg.phase(athlete_id)
        self.cap = 2 * cfg.window + cfg.grace + cfg.hop
        self.data = np.zeros((self.cap, N_CHANNELS), dtype=np.float32)
        self.slot_index = np.full(self.cap, -1, dtype=np.int64)  # frame index held by each slot
        self.absent: tuple[str, ...] = ()
        self.max_seen: int | None = None  # newest frame index seen
        self.min_seen: int | None = None  # oldest frame index seen (matters before the first window)
        self.next_end: int | None = None
        self.emitted_end: int | None = None
        self.seqs: dict[tuple[str, int], int] = {}  # (sensor, seq) -> first frame index of that batch
        self.newest_seq: dict[str, tuple[int, int]] = {}  # sensor -> (seq, first index) of its max seq
        self.last_arrival = 0.0

    # -- helpers -----------------------------------------------------------------------
    def _first_end(self) -> int:
        w, h = self.cfg.window, self.cfg.hop
        return -(-(self.min_seen + w - self.phase) // h) * h + self.phase  # ceil to the athlete's hop grid

    def _watermark(self) -> int:
        return self.max_seen - self.cfg.grace

    def _present(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(start, stop)
        slots = idx % self.cap
        return slots, self.slot_index[slots] == idx

    # -- the public operations -------------------------------------------------------------
    def offer(self, batch: Batch, now: float) -> Offer:
        cfg = self.cfg
        n = len(batch.frames)
        first = round(batch.t0 * cfg.hz)
        last = first + n - 1
        key = (batch.sensor_id, batch.seq)
        newest = self.newest_seq.get(batch.sensor_id)
        if newest is not None and batch.seq < newest[0] and first > newest[1] + cfg.window:
            # the sensor restarted its numbering after a break: a new seq epoch
            self.seqs = {k: v for k, v in self.seqs.items() if k[0] != batch.sensor_id}
            newest = None
        seen = self.seqs.get(key)
        if seen == first:
            return Offer(Reason.DUPLICATE, f"sensor {batch.sensor_id} seq {batch.seq} already received")
        if seen is not None:
            return Offer(Reason.SEQ_REGRESSION, f"sensor {batch.sensor_id} reused seq {batch.seq} for other frames")
        if self.max_seen is not None:
            floor = max(self._watermark(), self.emitted_end if self.emitted_end is not None else -(2**62))
            if first < floor:
                return Offer(Reason.LATE, f"starts {(floor - first) / cfg.hz:.2f} s before the accepted horizon "
                                          f"(grace {cfg.grace_s:g} s)")
        if newest is not None and (batch.seq > newest[0]) != (first > newest[1]):
            return Offer(
                Reason.SEQ_REGRESSION,
                f"sensor {batch.sensor_id}: seq {batch.seq} at frame {first} vs seq {newest[0]} at frame {newest[1]}",
            )
        out = Offer()
        if self.max_seen is not None:
            if first > self.max_seen + cfg.window:  # a new segment after a long break
                self._flush_into(out, now)
                self._reset()
        self.last_arrival = now
        self.absent = batch.absent
        self.min_seen = first if self.min_seen is None else min(self.min_seen, first)
        if self.emitted_end is None:  # before the first window the grid follows the oldest frame
            self.next_end = self._first_end()
        step = max(1, min(cfg.hop, n))
        for a in range(0, n, step):  # hop by hop, so the ring never overwrites a needed frame
            b = min(n, a + step)
            idx = np.arange(first + a, first + b)
            slots = idx % self.cap
            self.data[slots] = batch.frames[a:b]
            self.slot_index[slots] = idx
            self.max_seen = first + b - 1 if self.max_seen is None else max(self.max_seen, first + b - 1)
            self._emit(out, now)
        self.seqs[key] = first
        if newest is None or batch.seq > newest[0]:
            self.newest_seq[batch.sensor_id] = (batch.seq, first)
        self._prune_seqs()
        return out

    def flush(self, now: float) -> Offer:
        """Close the buffer (silence or session end): emit what the data completes, drop the tail."""
        out = Offer()
        self._flush_into(out, now)
        self._reset()
        return out

    # -- internals ---------------------------------------------------------------------
    def _flush_into(self, out: Offer, now: float) -> None:
        if self.max_seen is None:
            return
        self._emit(out, now, horizon=self.max_seen + 1)

    def _reset(self) -> None:
        self.slot_index[:] = -1
        self.max_seen = self.min_seen = self.next_end = self.emitted_end = None
        self.seqs.clear()
        self.newest_seq.clear()

    def _emit(self, out: Offer, now: float, horizon: int | None = None) -> None:
        """Emit windows in order while each is complete (after the first) or its end <= horizon."""
        cfg = self.cfg
        w, h = cfg.window, cfg.hop
        if self.max_seen is None:
            return
        if horizon is None:
            horizon = self._watermark()
        while self.next_end is not None:
            e = self.next_end
            slots, present = self._present(e - w, e)
            complete = self.emitted_end is not None and bool(present.all())
            if not (complete or e <= horizon):
                break
            if e - w > self.max_seen:  # nothing of this window exists
                break
            self._release(out, e, slots, present, now)
            self.emitted_end = e
            self.next_end = e + h

    def _release(self, out: Offer, e: int, slots: np.ndarray, mask: np.ndarray, now: float) -> None:
        cfg = self.cfg
        missing = 1.0 - float(mask.mean())
        if missing > cfg.max_missing_fraction or _longest_run(~mask) > cfg.max_gap:
            out.skipped.append(Skipped(self.athlete_id, self.session_id, e, "insufficient_data", missing))
            return
        data = self.data[slots]
        if missing > 0.0:
            data = _interpolate(data, mask)
        out.windows.append(
            Window(self.athlete_id, self.session_id, e, cfg.hz, data, missing, self.absent, now)
        )

    def _prune_seqs(self) -> None:
        if len(self.seqs) > 4 * self.cap and self.emitted_end is not None:
            floor = self.emitted_end - self.cfg.window - self.cfg.grace
            self.seqs = {k: v for k, v in self.seqs.items() if v >= floor}


def _longest_run(flags: np.ndarray) -> int:
    if not flags.any():
        return 0
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    d = np.diff(padded)
    return int((np.where(d == -1)[0] - np.where(d == 1)[0]).max())


def _interpolate(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill rows where mask is False by linear interpolation in time (edges: nearest)."""
    t = np.arange(len(mask))
    known = t[mask]
    out = data.copy()
    for c in range(data.shape[1]):
        col = data[mask, c]
        if np.isnan(col).all():
            continue  # an absent channel stays NaN
        out[~mask, c] = np.interp(t[~mask], known, col)
    return out


class Windower:
    """All athletes of one worker. ``offer`` per batch, ``expire`` on a timer."""

    def __init__(self, cfg: WindowConfig) -> None:
        self.cfg = cfg
        self.buffers: dict[str, AthleteBuffer] = {}

    def offer(self, batch: Batch, now: float) -> Offer:
        buf = self.buffers.get(batch.athlete_id)
        flushed = None
        if buf is not None and buf.session_id != batch.session_id:
            flushed = buf.flush(now)
            buf = None
        if buf is None:
            buf = self.buffers[batch.athlete_id] = AthleteBuffer(batch.athlete_id, batch.session_id, self.cfg)
        offer = buf.offer(batch, now)
        if flushed is not None:
            offer.windows[:0] = flushed.windows
            offer.skipped[:0] = flushed.skipped
        return offer

    def expire(self, now: float) -> Offer:
        """Close athletes silent for ``idle_timeout_s``."""
        out = Offer()
        for athlete_id in [a for a, b in self.buffers.items() if now - b.last_arrival >= self.cfg.idle_timeout_s]:
            closed = self.buffers.pop(athlete_id).flush(now)
            out.windows += closed.windows
            out.skipped += closed.skipped
        return out

    def drop(self, athlete_ids: set[str]) -> None:
        """Forget athletes (their partitions were revoked); the new owner warms up from the stream."""
        for a in athlete_ids:
            self.buffers.pop(a, None)
