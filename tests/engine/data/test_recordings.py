"""Recorded-sensor import: the shared Xsens files, path specs, CSV, resampling, errors, replay."""

from __future__ import annotations

import logging
import math

import numpy as np
import orjson
import pytest

from engine.data.exceptions import RecordingError
from engine.data.recordings import (
    DEFAULT_SIDE,
    Recording,
    RecordingStream,
    load_recording,
    parse_spec,
)
from engine.exceptions import EngineError
from schemas.channels import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS, N_CHANNELS
from schemas.codec import decode_frame_batch, encode_frames

IMU = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def _cols(segment: str) -> list[int]:
    return [CHANNEL_INDEX[f"{segment}_{q}"] for q in IMU]


# ----------------------------------------------------------------------------- shared files


def test_shared_pair_is_one_athlete_with_explicit_absent_channels(shared_imu):
    rec = load_recording(f"{shared_imu}/walking_xsens_lowerLeg.txt+walking_xsens_upperLeg.txt")
    assert rec.hz == 100.0 and rec.source_hz == 120.0
    assert rec.frames.dtype == np.float32 and rec.frames.shape[1] == N_CHANNELS
    # 3511 samples at 120 Hz span 29.25 s -> 2926 frames at 100 Hz
    assert rec.frames.shape[0] == 2926 and rec.duration == pytest.approx(29.26)
    present = {f"{seg}_{q}" for seg in ("shank_r", "thigh_r") for q in IMU}
    assert set(rec.present) == present
    assert set(rec.absent) == set(CHANNEL_NAMES) - present
    assert rec.absent == tuple(n for n in CHANNEL_NAMES if n in rec.absent)  # channel order
    absent_idx = [CHANNEL_INDEX[n] for n in rec.absent]
    assert np.isnan(rec.frames[:, absent_idx]).all()  # NaN, never zeros
    assert np.isfinite(np.delete(rec.frames, absent_idx, axis=1)).all()
    assert len(rec.files) == 2


def test_shared_files_follow_the_documented_axes(shared_imu):
    rec = load_recording(shared_imu / "walking_xsens_lowerLeg.txt")
    shank = rec.frames[:, _cols("shank_r")]
    # standing at the start: gravity reaction points up the segment (+z), nothing rotates
    assert shank[:100, 2].mean() == pytest.approx(9.5, abs=0.4)
    assert np.abs(shank[:100, 3:]).max() < 0.1
    # mid-swing: the foot swings forward, a negative rotation about y (left), right-hand rule
    assert shank[:, 4].min() < -4.0 and shank[:, 4].max() < 3.5
    # sensor values map 1:1 (only axes and signs change): Gyr_Z peak 5.50 rad/s in the file
    assert -shank[:, 4].min() == pytest.approx(5.50, abs=0.3)


def test_replay_of_shared_files_passes_the_worker_validation(shared_imu):
    rec = load_recording(f"{shared_imu}/walking_xsens_lowerLeg.txt+walking_xsens_upperLeg.txt")
    stream = RecordingStream(rec)
    absent_idx = [CHANNEL_INDEX[n] for n in rec.absent]
    n_batches = len(rec.frames) // 10 + 5  # past the end: the loop must decode too
    for seq in range(n_batches):
        frames = stream.next(10)
        raw = encode_frames(athlete_id="rec-01", session_id="s1", sensor_id="rec-01-imu", seq=seq,
                            t0=seq * 0.1, hz=rec.hz, frames=frames, absent=rec.absent)
        batch = decode_frame_batch(raw, b"rec-01", expected_hz=100.0)  # raises on out_of_range etc.
        assert batch.absent == rec.absent
        assert np.isnan(batch.frames[:, absent_idx]).all()
        wire = orjson.loads(raw)["frames"]
        assert all(row[i] is None for row in wire for i in absent_idx)
        assert all(row[CHANNEL_INDEX["shank_r_acc_z"]] is not None for row in wire)
    assert stream.loops == 1


def test_segment_from_spec_or_argument(shared_imu):
    lower = shared_imu / "walking_xsens_lowerLeg.txt"
    left = load_recording(f"{lower}=shank_l")
    assert set(left.present) == {f"shank_l_{q}" for q in IMU}
    by_side = load_recording(lower, segment="l")
    np.testing.assert_array_equal(by_side.frames, left.frames, strict=True)
    default = load_recording(lower)
    assert set(default.present) == {f"shank_{DEFAULT_SIDE}_{q}" for q in IMU}
    np.testing.assert_array_equal(default.frames[:, _cols("shank_r")], left.frames[:, _cols("shank_l")])
    pair = load_recording(f"{lower}+walking_xsens_upperLeg.txt", segment="left")
    assert set(pair.present) == {f"{seg}_l_{q}" for seg in ("shank", "thigh") for q in IMU}
    with pytest.raises(RecordingError, match="cannot apply to 2 files"):
        load_recording(f"{lower}+walking_xsens_upperLeg.txt", segment="shank_l")
    with pytest.raises(RecordingError, match="neither a segment"):
        load_recording(lower, segment="knee")


# ----------------------------------------------------------------------------- Xsens fixtures


def test_xsens_resampling_is_linear_on_the_counter_clock(xsens_file):
    n = 361  # 3 s at 120 Hz
    t = np.arange(n) / 120.0
    gyr = np.column_stack([np.zeros(n), np.zeros(n), 2.0 * np.sin(2 * np.pi * 0.5 * t)])
    path = xsens_file("run_shank.txt", n=n, gyr=gyr)
    rec = load_recording(path)
    assert rec.frames.shape == (301, N_CHANNELS)
    grid = np.arange(301) / 100.0
    want = -np.interp(grid, t, gyr[:, 2])  # segment y = -sensor Z
    np.testing.assert_allclose(rec.frames[:, CHANNEL_INDEX["shank_r_gyr_y"]], want, atol=1e-5)
    # linear interpolation of a slow sine stays within the sampling error of the sine itself
    np.testing.assert_allclose(want, -2.0 * np.sin(2 * np.pi * 0.5 * grid), atol=2e-3)


def test_counter_wrap_is_continuous(xsens_file):
    rec = load_recording(xsens_file("wrap_thigh.txt", n=120, counter_start=65536 - 60))
    assert rec.frames.shape[0] == 100  # 119 / 120 s -> 100 frames, no jump at the wrap


def test_files_are_aligned_on_their_counters(xsens_file, tmp_path):
    n = 600
    counter = 1000 + np.arange(n)
    sig = np.sin(2 * np.pi * 0.7 * counter / 120.0)
    gyr = np.column_stack([np.zeros(n), np.zeros(n), sig])
    xsens_file("a_shank.txt", n=n, gyr=gyr, counter=counter)
    # the thigh sensor starts 24 samples later and stops 12 earlier; same clock
    c2 = counter[24:-12]
    gyr2 = np.column_stack([np.zeros(len(c2)), np.zeros(len(c2)), sig[24:-12]])
    xsens_file("a_thigh.txt", n=len(c2), gyr=gyr2, counter=c2)
    rec = load_recording(f"{tmp_path}/a_shank.txt+a_thigh.txt")
    shank = rec.frames[:, CHANNEL_INDEX["shank_r_gyr_y"]]
    thigh = rec.frames[:, CHANNEL_INDEX["thigh_r_gyr_y"]]
    np.testing.assert_allclose(shank, thigh, atol=1e-5)  # same moment, same value
    assert rec.duration == pytest.approx((n - 1 - 36) / 120.0, abs=0.011)


def test_files_that_do_not_overlap_are_refused(xsens_file, tmp_path):
    xsens_file("b_shank.txt", n=120, counter_start=100)
    xsens_file("b_thigh.txt", n=120, counter_start=1000)
    with pytest.raises(RecordingError, match="not recorded together"):
        load_recording(f"{tmp_path}/b_shank.txt+b_thigh.txt")


def test_two_files_on_one_segment_are_refused(xsens_file, tmp_path):
    xsens_file("c_shank.txt")
    xsens_file("d_shank.txt")
    with pytest.raises(RecordingError, match="both provide shank_r_acc_z"):
        load_recording(f"{tmp_path}/c_shank.txt+d_shank.txt")


def test_spec_parsing(tmp_path, xsens_file):
    plus = xsens_file("odd+name_shank.txt")
    assert parse_spec(plus) == parse_spec(str(plus))
    assert len(parse_spec(plus)) == 1  # an existing file wins over the '+' syntax
    xsens_file("e.txt")
    xsens_file("f.txt")
    parts = parse_spec(f"{tmp_path}/e.txt=thigh_l+f.txt=shank_l")
    assert [(p.path, p.segment) for p in parts] == [(tmp_path / "e.txt", "thigh_l"), (tmp_path / "f.txt", "shank_l")]
    with pytest.raises(RecordingError, match="not a segment"):
        parse_spec(f"{tmp_path}/e.txt=knee")
    with pytest.raises(RecordingError, match="empty file name"):
        parse_spec(f"{tmp_path}/e.txt++f.txt")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.replace("-9.6", "-9.6\t1.0", 1), r"line 6 has 14 columns, expected 13"),
        (lambda t: t.replace("-1.000000", "abc", 1), r"line 6 column Acc_Y: 'abc' is not a number"),
        (lambda t: t.replace("// Sample rate: 120.0Hz", "// Something: 1"), r"no 'Sample rate"),
        (lambda t: t.replace("Acc_Y", "Acc_Q"), r"line 5: no column\(s\) Acc_Y"),
        (lambda t: t.replace("\r\n101\t", "\r\n100\t", 1), r"line 7: Counter goes from 100 to 100"),
        (lambda t: t.replace("\r\n150\t", "\r\n250\t", 1), r"lines 55-56: 0.842 s without samples"),
        (lambda t: t[: t.index("\r\n", t.index("Altitude"))] + "\r\n", r"no data rows"),
        (lambda t: t.replace("nan", "nan").replace("-9.600000", "nan", 1), r"'nan' is not finite"),
    ],
    ids=["columns", "number", "rate", "header", "counter", "gap", "no-rows", "nan"],
)
def test_corrupt_xsens_file_names_file_and_problem(tmp_path, xsens_file, mutate, message):
    path = xsens_file("walk_shank.txt")
    path.write_bytes(mutate(path.read_bytes().decode()).encode())
    with pytest.raises(RecordingError, match=message) as info:
        load_recording(path)
    assert str(info.value).startswith(str(path) + ": ")
    assert isinstance(info.value, EngineError)


def test_unreadable_inputs(tmp_path, xsens_file):
    with pytest.raises(RecordingError, match="no such file"):
        load_recording(tmp_path / "missing_shank.txt")
    (tmp_path / "empty_shank.txt").write_text("\n")
    with pytest.raises(RecordingError, match="empty file"):
        load_recording(tmp_path / "empty_shank.txt")
    (tmp_path / "bin_shank.txt").write_bytes(b"\xff\xfe\x00garbage" * 10)
    with pytest.raises(RecordingError, match="not a text file"):
        load_recording(tmp_path / "bin_shank.txt")
    (tmp_path / "plain.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RecordingError, match="needs a column_map"):
        load_recording(tmp_path / "plain.csv")
    with pytest.raises(RecordingError, match="cannot tell from the file name"):
        load_recording(xsens_file("walking.txt"))


def test_out_of_range_is_rejected_or_clipped(xsens_file, caplog):
    n = 240
    gyr = np.zeros((n, 3))
    gyr[100:103, 2] = 300.0  # deg/s written as rad/s
    path = xsens_file("spike_shank.txt", n=n, gyr=gyr)
    with pytest.raises(RecordingError, match=r"line 106 column Gyr_Z: 300 -> shank_r_gyr_y=-300 rad/s is outside"):
        load_recording(path)
    with caplog.at_level(logging.WARNING):
        rec = load_recording(path, out_of_range="clip")
    assert rec.clipped == {"shank_r_gyr_y": 3}
    assert np.nanmin(rec.frames[:, CHANNEL_INDEX["shank_r_gyr_y"]]) == -50.0
    assert "clipped 3 value(s)" in caplog.text


# ----------------------------------------------------------------------------- CSV


def test_csv_with_column_map_units_signs_and_time(csv_file):
    n = 500
    t_ms = 1000.0 + np.arange(n) * 4.0  # 250 Hz
    ax_g = np.full(n, 1.0)
    gz_deg = 90.0 * np.sin(2 * np.pi * np.arange(n) / 250.0)
    knee = np.linspace(0.0, 1.0, n)  # rad
    path = csv_file("lab.csv", ["t", "ax", "gz", "knee", "unused"], np.column_stack([t_ms, ax_g, gz_deg, knee, knee]))
    rec = load_recording(path, column_map={"t": "time_ms", "ax": "-shank_l_acc_z:g", "gz": "shank_l_gyr_y:deg/s",
                                           "knee": "knee_flexion_l:rad"})
    assert rec.source_hz == pytest.approx(250.0)
    assert rec.frames.shape[0] == int((n - 1) * 4 / 10) + 1
    assert set(rec.present) == {"shank_l_acc_z", "shank_l_gyr_y", "knee_flexion_l"}
    np.testing.assert_allclose(rec.frames[:, CHANNEL_INDEX["shank_l_acc_z"]], -9.80665, rtol=1e-6)
    grid_samples = np.arange(rec.frames.shape[0]) * 2.5
    np.testing.assert_allclose(rec.frames[:, CHANNEL_INDEX["shank_l_gyr_y"]],
                               np.interp(grid_samples, np.arange(n), gz_deg) * math.pi / 180, atol=1e-5)
    np.testing.assert_allclose(rec.frames[:, CHANNEL_INDEX["knee_flexion_l"]],
                               np.degrees(np.interp(grid_samples, np.arange(n), knee)), rtol=1e-5)


def test_csv_needs_time_or_rate_and_known_channels(csv_file):
    path = csv_file("lab2.csv", ["ax"], np.ones((20, 1)))
    with pytest.raises(RecordingError, match="no time column"):
        load_recording(path, column_map={"ax": "shank_l_acc_x"})
    assert load_recording(path, column_map={"ax": "shank_l_acc_x"}, source_hz=50.0).frames.shape[0] == 39
    with pytest.raises(RecordingError, match="'shank_acc_x' is not a channel"):
        load_recording(path, column_map={"ax": "shank_acc_x"}, source_hz=50.0)
    with pytest.raises(RecordingError, match="unit 'deg/s' does not convert to m/s\\^2"):
        load_recording(path, column_map={"ax": "shank_l_acc_x:deg/s"}, source_hz=50.0)
    with pytest.raises(RecordingError, match=r"no column\(s\) 'ay'"):
        load_recording(path, column_map={"ay": "shank_l_acc_y"}, source_hz=50.0)


def test_csv_time_must_increase(csv_file):
    rows = np.column_stack([[0.0, 0.01, 0.01, 0.03], [1.0, 1.0, 1.0, 1.0]])
    path = csv_file("lab3.csv", ["time", "ax"], rows, delimiter=";")
    with pytest.raises(RecordingError, match=r"lab3.csv: line 4: time goes from 0.01 s to 0.01 s"):
        load_recording(path, column_map={"time": "time", "ax": "shank_l_acc_x"})


def test_xsens_file_with_a_column_map(xsens_file):
    path = xsens_file("mounted_upside_down.txt")
    rec = load_recording(path, column_map={"Acc_X": "thigh_l_acc_z", "Gyr_Z": "-thigh_l_gyr_y"})
    assert set(rec.present) == {"thigh_l_acc_z", "thigh_l_gyr_y"}
    np.testing.assert_allclose(rec.frames[:, CHANNEL_INDEX["thigh_l_acc_z"]], -9.6, rtol=1e-6)


# ----------------------------------------------------------------------------- stream


def _toy(n: int = 23) -> Recording:
    frames = np.full((n, N_CHANNELS), np.nan, dtype=np.float32)
    frames[:, 0] = np.arange(n)
    return Recording(frames=frames, hz=100.0, absent=CHANNEL_NAMES[1:], source="toy", files=(), source_hz=100.0)


@pytest.mark.parametrize("chunk", [1, 7, 10, 23, 50])
def test_stream_is_continuous_and_loops(chunk):
    stream = RecordingStream(_toy())
    got = np.concatenate([stream.next(chunk) for _ in range(10)])
    assert got.shape == (10 * chunk, N_CHANNELS) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0], np.arange(10 * chunk) % 23)
    assert stream.loops == (10 * chunk) // 23
    assert stream.absent == CHANNEL_NAMES[1:]


def test_stream_without_loop_runs_out():
    stream = RecordingStream(_toy(), loop=False)
    assert stream.next(20).shape[0] == 20
    assert stream.next(20)[:, 0].tolist() == [20.0, 21.0, 22.0]
    assert stream.next(20).shape == (0, N_CHANNELS)


def test_stream_of_an_empty_recording_is_refused():
    empty = Recording(frames=np.empty((0, N_CHANNELS), np.float32), hz=100.0, absent=(), source="x", files=(),
                      source_hz=100.0)
    with pytest.raises(RecordingError, match="no frames"):
        RecordingStream(empty)


def test_values_of_real_replay_lie_inside_channel_ranges(shared_imu):
    rec = load_recording(f"{shared_imu}/walking_xsens_lowerLeg.txt+walking_xsens_upperLeg.txt")
    for name in rec.present:
        ch = CHANNELS[CHANNEL_INDEX[name]]
        col = rec.frames[:, CHANNEL_INDEX[name]]
        assert ch.lo <= col.min() and col.max() <= ch.hi
