"""The windowing core: unit cases and a property test against the in-order stream."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.channels import N_CHANNELS
from schemas.codec import Batch
from schemas.rejected import Reason
from stream.windowing import AthleteBuffer, WindowConfig, Windower, message_shift

HZ = 100.0
T0 = 1_700_000_000.0  # on the frame grid


def make_batch(i: int, *, n: int = 10, seq: int | None = None, athlete="a1", session="s1", sensor="imu",
               t0: float = T0) -> Batch:
    frames = np.full((n, N_CHANNELS), float(i), dtype=np.float32)
    frames += np.arange(n, dtype=np.float32)[:, None] / n
    return Batch(athlete, session, sensor, i if seq is None else seq, t0 + i * n / HZ, HZ, frames, ())


def feed(win: Windower, batches, now=0.0):
    windows, skipped, reasons = [], [], []
    for b in batches:
        o = win.offer(b, now)
        windows += o.windows
        skipped += o.skipped
        reasons.append(o.reason)
    return windows, skipped, reasons


@pytest.mark.parametrize("stagger", [True, False])
def test_first_window_after_grace_then_every_hop(stagger):
    cfg = WindowConfig(stagger=stagger)
    win = Windower(cfg)
    windows, skipped, reasons = feed(win, [make_batch(i) for i in range(60)])  # 6 s
    assert all(r is None for r in reasons) and not skipped
    ends = [w.end_index for w in windows]
    assert ends[0] % cfg.hop == cfg.phase("a1") and np.all(np.diff(ends) == cfg.hop)
    assert windows[0].data.shape == (200, N_CHANNELS)
    # the first window waited for the watermark, later ones were emitted as soon as complete:
    # the last is the newest one the 6 s of frames complete
    newest = round(T0 * HZ) + 600
    assert ends[-1] == newest - (newest - cfg.phase("a1")) % cfg.hop
    assert windows[-1].end == ends[-1] / HZ


def test_each_athlete_has_its_own_phase_of_the_hop():
    cfg = WindowConfig()
    ids = [f"athlete-{i:03d}" for i in range(200)]
    assert cfg.phase("a1") == zlib.crc32(b"a1") % cfg.hop  # the contract producers can compute
    assert len({cfg.phase(a) for a in ids}) > 40  # spread over the 50 frames of the hop
    assert {WindowConfig(stagger=False).phase(a) for a in ids} == {0}
    for a in ids[:20]:
        win = Windower(cfg)
        out, _, _ = feed(win, [make_batch(i, athlete=a) for i in range(40)])
        assert out and {w.end_index % cfg.hop for w in out} == {cfg.phase(a)}


@pytest.mark.parametrize("frames", [10, 25, 50, 100])
def test_message_shift_puts_message_ends_on_the_window_ends(frames):
    cfg = WindowConfig()
    for a in (f"athlete-{i}" for i in range(30)):
        s = message_shift(a, cfg.hop, frames)
        assert 0 <= s < min(frames, cfg.hop)
        message_ends = {s + frames * k for k in range(1, 40)}
        window_ends = {cfg.phase(a) + cfg.hop * k for k in range(1, 40)}
        common = window_ends & message_ends
        if cfg.hop % frames == 0:  # short messages: every window end is a message end
            assert {e for e in window_ends if e <= max(message_ends)} <= common
        else:  # long ones (a multiple of the hop): every message end is a window end
            assert {e for e in message_ends if e <= max(window_ends)} <= common
    assert message_shift("a1", 0, frames) == 0


def test_messages_cut_on_the_athletes_grid_complete_a_window_each():
    """A producer that shifts its 50-frame messages by the phase gets one window per message,
    released by the message that holds its last frame."""
    cfg = WindowConfig()
    a = "athlete-007"
    shift = cfg.phase(a) / HZ
    win = Windower(cfg)
    released = [len(win.offer(make_batch(i, n=50, athlete=a, t0=T0 + shift), 0.0).windows) for i in range(12)]
    # the first window waits for the grace period (1 s past its end), then each message completes one
    assert released[:7] == [0] * 6 + [4] and released[7:] == [1] * 5


def test_duplicate_and_late_and_seq_regression_are_rejected():
    win = Windower(WindowConfig())
    feed(win, [make_batch(i) for i in range(40)])
    assert win.offer(make_batch(39), 0).reason is Reason.DUPLICATE
    assert win.offer(make_batch(5, seq=1000), 0).reason is Reason.LATE
    assert win.offer(make_batch(41, seq=30), 0).reason is Reason.SEQ_REGRESSION
    # a clear restart of the numbering (seq back to 0 after a break) is accepted
    assert win.offer(make_batch(70, seq=0), 0).reason is None


def test_gap_interpolated_or_skipped():
    cfg = WindowConfig(stagger=False)
    win = Windower(cfg)
    short_gap = [make_batch(i) for i in range(60) if i != 30]  # 0.1 s missing
    windows, skipped, _ = feed(win, short_gap)
    hit = [w for w in windows if w.missing_fraction > 0]
    assert len(hit) == 3 and all(abs(w.missing_fraction - 10 / 200) < 1e-9 for w in hit)
    assert not np.isnan(hit[0].data).any()
    win2 = Windower(cfg)
    long_gap = [make_batch(i) for i in range(60) if not 30 <= i < 35]  # 0.5 s > max_gap 0.25 s
    windows2, skipped2, _ = feed(win2, long_gap)
    assert skipped2 and all(s.reason == "insufficient_data" for s in skipped2)


def test_silence_flushes_complete_windows_and_drops_the_tail():
    cfg = WindowConfig(idle_timeout_s=5)
    win = Windower(cfg)
    windows, _, _ = feed(win, [make_batch(i) for i in range(47)], now=0.0)  # 4.7 s of data
    assert not win.expire(now=4.9).windows
    closed = win.expire(now=5.0)
    ends = [w.end_index for w in windows + closed.windows]
    assert max(ends) <= round(T0 * HZ) + 470 and "a1" not in win.buffers
    assert ends == sorted(set(ends))


def test_session_change_flushes_old_session():
    win = Windower(WindowConfig())
    feed(win, [make_batch(i) for i in range(30)])
    o = win.offer(make_batch(30, session="s2"), 1.0)
    assert o.accepted and o.windows and {w.session_id for w in o.windows} == {"s1"}
    assert win.buffers["a1"].session_id == "s2"


def test_big_batch_equals_small_batches():
    cfg = WindowConfig()
    small, _, _ = feed(Windower(cfg), [make_batch(i) for i in range(100)])
    frames = np.concatenate([make_batch(i).frames for i in range(100)])
    big = Batch("a1", "s1", "imu", 0, T0, HZ, frames, ())
    o = Windower(cfg).offer(big, 0.0)
    assert [w.end_index for w in o.windows] == [w.end_index for w in small]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(o.windows, small))


def test_memory_is_bounded_whatever_the_producer_sends():
    buf = AthleteBuffer("a1", "s1", WindowConfig())
    size = buf.data.nbytes
    for i in range(3000):
        buf.offer(make_batch(i), 0.0)
    assert buf.data.nbytes == size and len(buf.seqs) <= 4 * buf.cap + 1


@st.composite
def disordered(draw):
    n = draw(st.integers(20, 50))
    kept = [i for i in range(n) if not draw(st.booleans()) or draw(st.integers(0, 9)) > 0]
    delays = [draw(st.integers(0, 9)) for _ in kept]  # <= 9 batches of 10 frames: within 1 s grace
    order = sorted(range(len(kept)), key=lambda j: (kept[j] + delays[j], j))  # delay in batches of event time
    arrivals = [kept[j] for j in order]
    # producer retries: a copy of an already-sent batch arrives again, any time after the original
    for j, later in draw(st.lists(st.tuples(st.integers(0, len(kept) - 1), st.integers(0, 40)), max_size=5)):
        pos = arrivals.index(kept[j]) + 1
        arrivals.insert(min(len(arrivals), pos + later), kept[j])
    return kept, arrivals


@settings(max_examples=60, deadline=None)
@given(disordered())
def test_any_disorder_within_grace_gives_the_in_order_windows(case):
    kept, arrivals = case
    cfg = WindowConfig()

    def run(order):
        win = Windower(cfg)
        w, s, _ = feed(win, [make_batch(i) for i in order])
        closed = win.expire(now=1e9)
        return w + closed.windows, s + closed.skipped

    w_in, s_in = run(kept)
    w_out, s_out = run(arrivals)
    assert [w.end_index for w in w_out] == [w.end_index for w in w_in]
    assert all(np.array_equal(a.data, b.data) and a.missing_fraction == b.missing_fraction
               for a, b in zip(w_out, w_in))
    assert [(s.end_index, s.reason) for s in s_out] == [(s.end_index, s.reason) for s in s_in]
