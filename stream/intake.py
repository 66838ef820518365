"""Per-message logic of the worker's agent: validate, check the clock, window. Pure (time passed in)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from schemas.codec import Batch, decode_frame_batch
from schemas.exceptions import ValidationFailed
from schemas.rejected import Reason
from stream.windowing import Offer, Windower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockLimits:
    max_future_s: float = 300.0
    max_age_s: float = 7 * 86400.0


class Intake:
    def __init__(self, windower: Windower, *, hz: float, clock: ClockLimits) -> None:
        self.windower = windower
        self.hz = hz
        self.clock = clock

    def handle(self, raw: bytes, key: bytes | None, now: float) -> tuple[Batch | None, Offer]:
        """Decode and window one message. ``Offer.reason`` set means: send it to the DLQ.

        Never raises: a message that trips a bug goes to the DLQ as ``internal_error`` (and is
        logged with its traceback) instead of crashing the agent and stalling the partition.
        """
        try:
            return self._handle(raw, key, now)
        except Exception as exc:
            log.exception("internal error on a %d-byte message (key %r)", len(raw), (key or b"")[:64])
            return None, Offer(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")

    def _handle(self, raw: bytes, key: bytes | None, now: float) -> tuple[Batch | None, Offer]:
        try:
            batch = decode_frame_batch(raw, key if key is not None else b"", expected_hz=self.hz)
        except ValidationFailed as exc:
            return None, Offer(Reason(exc.reason), exc.detail)
        end = batch.t0 + len(batch.frames) / batch.hz
        if end - now > self.clock.max_future_s:
            return batch, Offer(Reason.CLOCK_SKEW, f"t0 is {batch.t0 - now:.0f} s in the future")
        if now - batch.t0 > self.clock.max_age_s:
            return batch, Offer(Reason.CLOCK_SKEW, f"t0 is {now - batch.t0:.0f} s in the past")
        return batch, self.windower.offer(batch, now)
