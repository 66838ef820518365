"""Intake never raises: a message that trips a bug goes to the DLQ as internal_error (the agent
keeps its partition moving) and the next message is handled normally."""

from __future__ import annotations

import numpy as np

from schemas.codec import encode_frames
from schemas.rejected import Reason
from stream.intake import ClockLimits, Intake
from stream.windowing import WindowConfig, Windower

T0 = 1_700_000_000.0


class BrokenOnce(Windower):
    """A real Windower whose first offer fails, as a bug would."""

    def __init__(self) -> None:
        super().__init__(WindowConfig())
        self.calls = 0

    def offer(self, batch, now):
        self.calls += 1
        if self.calls == 1:
            raise ZeroDivisionError("a bug")
        return super().offer(batch, now)


def raw(seq: int) -> bytes:
    return encode_frames(athlete_id="a1", session_id="s", sensor_id="imu", seq=seq, t0=T0 + seq / 10, hz=100.0,
                         frames=np.zeros((10, 32)))


def test_a_bug_becomes_an_internal_error_rejection_and_the_next_message_is_fine(caplog):
    intake = Intake(BrokenOnce(), hz=100.0, clock=ClockLimits())
    batch, offer = intake.handle(raw(0), b"a1", T0 + 1)
    assert batch is None and offer.reason is Reason.INTERNAL_ERROR and "ZeroDivisionError: a bug" in offer.detail
    assert "internal error" in caplog.text and "Traceback" in caplog.text
    batch, offer = intake.handle(raw(1), b"a1", T0 + 1)
    assert offer.accepted and batch.seq == 1


def test_validation_failures_are_not_internal_errors():
    intake = Intake(Windower(WindowConfig()), hz=100.0, clock=ClockLimits())
    assert intake.handle(b"[" * 5000, b"a1", T0)[1].reason is Reason.NOT_JSON
    assert intake.handle(raw(0), b"other", T0 + 1)[1].reason is Reason.KEY_MISMATCH
