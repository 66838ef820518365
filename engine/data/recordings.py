"""Recorded sensor files -> frames at the stream rate on the documented channel list.

The simulator replays a :class:`Recording` as a live athlete (``injury-monitor simulate
--replay SPEC``): :func:`load_recording` reads and maps the file(s), :class:`RecordingStream`
hands out ``next(n)`` frames forever (it loops the recording).

Formats
-------
* **Xsens MT export** (MT Manager text, e.g. ``tests/data/imu/walking_xsens_*.txt``):
  ``//`` header lines (one says ``Sample rate: 120.0Hz`` or ``Update Rate: ...``), then a
  tab-separated table whose header row names ``Counter`` (or ``PacketCounter``),
  ``Acc_X..Z`` (m/s^2), ``Gyr_X..Z`` (rad/s) and more columns that are ignored (``Mag_*``,
  ``Latitude``...). A trailing tab at the end of a line is allowed. The sample time is
  ``Counter / rate`` (the 16-bit counter may wrap); a file without a counter is taken as
  evenly sampled.
* **Generic CSV** (``,`` ``;`` or tab, one header row, ``#`` comment lines skipped) with a
  ``column_map``: CSV column -> target. A target is a channel name, optionally negated and
  with a unit, ``[-]CHANNEL[:UNIT]`` (units: ``m/s^2``, ``g``; ``rad/s``, ``deg/s``; ``deg``,
  ``rad``; ``BW``), or the time column: ``time`` / ``time_s`` (seconds), ``time_ms``,
  ``time_us``. Without a time column, pass ``source_hz``.

Path spec (one athlete from several files recorded together)
-----------------------------------------------------------
``FILE[=SEGMENT][+FILE[=SEGMENT]...]``, e.g.
``tests/data/imu/walking_xsens_lowerLeg.txt+walking_xsens_upperLeg.txt``.
A spec that names an existing file is that file, even if its name holds ``+``. A part
without a folder that does not exist as given is looked up next to the first part.
``SEGMENT`` is ``shank_l``, ``shank_r``, ``thigh_l`` or ``thigh_r``; without it the segment
comes from the file name (``lowerLeg``/``shank``/``tibia``/``shin`` -> shank,
``upperLeg``/``thigh``/``femur`` -> thigh; ``left``/``right`` in the name gives the side)
or from the ``segment`` argument (a segment, or a side ``l``/``r`` for every part); the side
defaults to :data:`DEFAULT_SIDE`. Files with a counter at the same rate are aligned on the
counter, files with a time column on the time, others at their first sample; the
recording covers the span all of them share.

Axis convention (an assumption, not recorded metadata)
------------------------------------------------------
The channel list's segment frame is x forward, y left, z up; rotations follow the right-hand
rule about those axes (as any gyroscope measures). An Xsens MTx strapped to the lateral
side of a leg with its case base on the skin has sensor X along the segment (in the bundled
walking files X points down: ``Acc_X`` ~ -9.5 m/s^2 while standing), Z out of the case (laterally)
and Y forward. So :data:`XSENS_AXES`: segment x = +Y, y = -Z, z = -X. The signs were checked
on the bundled walking files: the largest angular-velocity peak of the shank, mid-swing,
must be negative about segment y (the foot swings forward), and it is +5.5 rad/s about
sensor Z. Lateral mounting with Z pointing out of the leg puts Z to the athlete's right,
which is why the default side is ``r``. A sensor mounted otherwise needs a ``column_map``.

Physical range
--------------
Every mapped value must lie in its channel's ``[lo, hi]`` (:mod:`schemas.channels`), or the
worker would reject the batch. The default, ``out_of_range="reject"``, raises a
:class:`RecordingError` that names the file, line, column and value (out-of-range values
in a recording almost always mean a wrong unit: deg/s read as rad/s). ``"clip"`` clips,
counts the clipped source values per channel in ``Recording.clipped`` and logs a warning.

Resampling is linear interpolation onto ``start + k / hz``; gaps longer than
:data:`MAX_GAP_S` are refused rather than bridged. Channels the recording lacks are NaN in
``frames`` and named in ``Recording.absent`` (never zero-filled).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from engine.data.exceptions import RecordingError
from schemas.channels import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS, N_CHANNELS

log = logging.getLogger(__name__)

SEGMENTS: tuple[str, ...] = ("thigh_l", "thigh_r", "shank_l", "shank_r")
DEFAULT_SIDE = "r"
MAX_GAP_S = 0.5
COUNTER_WRAP = 65536
# segment axis <- (sign, Xsens sensor axis); see the module docstring
XSENS_AXES: dict[str, tuple[float, str]] = {"x": (1.0, "Y"), "y": (-1.0, "Z"), "z": (-1.0, "X")}
XSENS_COUNTERS = ("Counter", "PacketCounter")
SEGMENT_WORDS: dict[str, tuple[str, ...]] = {
    "shank": ("lowerleg", "lower_leg", "lower-leg", "shank", "tibia", "shin"),
    "thigh": ("upperleg", "upper_leg", "upper-leg", "thigh", "femur"),
}
UNIT_SCALE: dict[str, dict[str, float]] = {  # channel unit -> {accepted source unit: factor}
    "m/s^2": {"m/s^2": 1.0, "m/s2": 1.0, "g": 9.80665},
    "rad/s": {"rad/s": 1.0, "deg/s": math.pi / 180.0},
    "deg": {"deg": 1.0, "rad": 180.0 / math.pi},
    "BW": {"bw": 1.0},
}
TIME_COLUMNS: dict[str, float] = {"time": 1.0, "time_s": 1.0, "time_ms": 1e-3, "time_us": 1e-6}
_RATE = re.compile(r"(?:sample|update)\s*rate\s*:\s*([0-9]*\.?[0-9]+)\s*hz", re.IGNORECASE)
_LO = np.array([c.lo for c in CHANNELS])
_HI = np.array([c.hi for c in CHANNELS])


@dataclass(frozen=True)
class Recording:
    """Frames ``(n, 32)`` float32 at ``hz``; absent channels are NaN and listed in ``absent``."""

    frames: np.ndarray
    hz: float
    absent: tuple[str, ...]
    source: str
    files: tuple[str, ...]
    source_hz: float
    clipped: dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds covered by the frames."""
        return len(self.frames) / self.hz

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(n for n in CHANNEL_NAMES if n not in self.absent)


class RecordingStream:
    """``next(n) -> (n, 32)`` frames, continuous across calls; loops at the end when ``loop``.

    Looping jumps from the last frame back to the first (a step in the signal once per
    pass). Without ``loop``, the last call returns the remaining frames (fewer than ``n``)
    and later calls return ``(0, 32)``.
    """

    def __init__(self, recording: Recording, *, loop: bool = True) -> None:
        if len(recording.frames) == 0:
            raise RecordingError(recording.source, "recording has no frames")
        self.recording = recording
        self.loop = loop
        self.position = 0
        self.loops = 0

    @property
    def absent(self) -> tuple[str, ...]:
        return self.recording.absent

    def next(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError("n must be >= 0")
        frames = self.recording.frames
        total = len(frames)
        if not self.loop:
            out = frames[self.position : self.position + n].copy()
            self.position += len(out)
            return out
        parts = []
        need = n
        while need > 0:
            take = min(need, total - self.position)
            parts.append(frames[self.position : self.position + take])
            self.position += take
            need -= take
            if self.position == total:
                self.position = 0
                self.loops += 1
        if not parts:
            return np.empty((0, N_CHANNELS), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- pure parsing


@dataclass(frozen=True)
class Table:
    """One parsed file: selected numeric columns, their source line numbers and sample times."""

    path: str
    columns: tuple[str, ...]
    values: np.ndarray  # (n, k) float64
    lines: np.ndarray  # (n,) 1-based line of each row in the file
    t: np.ndarray  # (n,) seconds on the file's clock
    clock: Literal["counter", "time", "rate"]
    rate: float | None  # nominal sample rate, if known

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


@dataclass(frozen=True)
class Target:
    channel: str
    scale: float


def parse_target(value: str, where: str) -> Target:
    """``[-]CHANNEL[:UNIT]`` -> channel and factor (raises RecordingError naming ``where``)."""
    spec = value.strip()
    sign = -1.0 if spec.startswith("-") else 1.0
    spec = spec.lstrip("+-").strip()
    name, _, unit = spec.partition(":")
    name = name.strip()
    if name not in CHANNEL_INDEX:
        raise RecordingError(where, f"column_map target {value!r}: {name!r} is not a channel (see schemas/channels.py)")
    ch_unit = CHANNELS[CHANNEL_INDEX[name]].unit
    if not unit:
        return Target(name, sign)
    scales = UNIT_SCALE[ch_unit]
    factor = scales.get(unit.strip().lower())
    if factor is None:
        raise RecordingError(where, f"column_map target {value!r}: unit {unit!r} does not convert to {ch_unit} "
                                    f"(accepted: {', '.join(scales)})")
    return Target(name, sign * factor)


def _split_tab(line: str) -> list[str]:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) > 1 and fields[-1].strip() == "":
        fields.pop()  # every Xsens line ends with a tab
    return [f.strip() for f in fields]


def _number(text: str, path: str, line: int, column: str) -> float:
    try:
        v = float(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise RecordingError(path, f"line {line} column {column}: {shown!r} is not a number") from None
    if not math.isfinite(v):
        raise RecordingError(path, f"line {line} column {column}: {text!r} is not finite")
    return v


def is_xsens(text: str) -> bool:
    """True for an Xsens MT text export (``//`` header lines or an ``Acc_X`` tab column)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("//"):
            return True
        return "Acc_X" in _split_tab(line)
    return False


def parse_xsens(text: str, path: str, *, source_hz: float | None = None,
                columns: tuple[str, ...] | None = None) -> Table:
    """Parse an Xsens MT export. ``columns``: which to keep (default Acc_* and Gyr_*)."""
    lines = text.splitlines()
    rate = None
    i = 0
    while i < len(lines) and (lines[i].startswith("//") or not lines[i].strip()):
        m = _RATE.search(lines[i])
        if m:
            rate = float(m.group(1))
        i += 1
    if i == len(lines):
        raise RecordingError(path, "no table header row (Counter, Acc_X, ...) after the // lines")
    header = _split_tab(lines[i])
    header_line = i + 1
    wanted = columns if columns is not None else tuple(f"{q}_{a}" for q in ("Acc", "Gyr") for a in "XYZ")
    missing = [c for c in wanted if c not in header]
    if missing:
        raise RecordingError(path, f"line {header_line}: no column(s) {', '.join(missing)} "
                                   f"(header has {', '.join(header) or 'nothing'})")
    counter = next((c for c in XSENS_COUNTERS if c in header), None)
    if source_hz is not None:
        rate = float(source_hz)
    if rate is None or rate <= 0:
        raise RecordingError(path, "no 'Sample rate: ...Hz' header line; pass source_hz")
    keep = [header.index(c) for c in wanted]
    cidx = header.index(counter) if counter else None
    rows: list[list[float]] = []
    counts: list[int] = []
    numbers: list[int] = []
    for ln in range(i + 1, len(lines)):
        line = lines[ln]
        if not line.strip():
            continue
        fields = _split_tab(line)
        if len(fields) != len(header):
            raise RecordingError(path, f"line {ln + 1} has {len(fields)} columns, expected {len(header)}")
        rows.append([_number(fields[k], path, ln + 1, header[k]) for k in keep])
        if cidx is not None:
            c = _number(fields[cidx], path, ln + 1, counter)  # type: ignore[arg-type]
            if c != int(c) or c < 0:
                raise RecordingError(path, f"line {ln + 1} column {counter}: {fields[cidx]!r} is not a counter value")
            counts.append(int(c))
        numbers.append(ln + 1)
    if not rows:
        raise RecordingError(path, "no data rows after the header")
    line_no = np.array(numbers)
    if cidx is None:
        t = np.arange(len(rows)) / rate
        clock: Literal["counter", "time", "rate"] = "rate"
    else:
        c = np.array(counts, dtype=np.int64)
        d = np.diff(c)
        if c.max() < COUNTER_WRAP:
            d = np.where(d < 0, d + COUNTER_WRAP, d)  # the 16-bit counter wrapped
        bad = np.flatnonzero(d <= 0)
        if bad.size:
            k = int(bad[0])
            raise RecordingError(path, f"line {line_no[k + 1]}: {counter} goes from {c[k]} to {c[k + 1]} "
                                       "(repeated or out-of-order sample)")
        ticks = np.concatenate([[0], np.cumsum(d)]) + c[0]
        t = ticks / rate
        clock = "counter"
    return Table(path, tuple(wanted), np.array(rows, dtype=np.float64), line_no, t, clock, rate)


def _delimiter(header_line: str) -> str:
    if "\t" in header_line:
        return "\t"
    if ";" in header_line and "," not in header_line:
        return ";"
    return ","


def parse_csv(text: str, path: str, column_map: Mapping[str, str], *, source_hz: float | None = None) -> Table:
    """Parse a delimited table; keep the mapped columns (and the time column, if mapped)."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].lstrip().startswith("#")):
        start += 1
    if start == len(lines):
        raise RecordingError(path, "no header row")
    delim = _delimiter(lines[start])
    reader = csv.reader(lines[start:], delimiter=delim)
    header = [h.strip() for h in next(reader)]
    if header and header[-1] == "":
        header.pop()
    missing = [c for c in column_map if c not in header]
    if missing:
        raise RecordingError(path, f"line {start + 1}: no column(s) {', '.join(map(repr, missing))} "
                                   f"(columns: {', '.join(header)})")
    time_cols = [c for c, v in column_map.items() if v.strip().lower() in TIME_COLUMNS]
    if len(time_cols) > 1:
        raise RecordingError(path, f"column_map names {len(time_cols)} time columns: {', '.join(time_cols)}")
    data_cols = tuple(c for c in column_map if c not in time_cols)
    used = list(data_cols) + time_cols
    idx = [header.index(c) for c in used]
    rows: list[list[float]] = []
    numbers: list[int] = []
    for fields in reader:
        ln = start + reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if fields[0].lstrip().startswith("#"):
            continue
        if len(fields) == len(header) + 1 and not fields[-1].strip():
            fields = fields[:-1]
        if len(fields) != len(header):
            raise RecordingError(path, f"line {ln} has {len(fields)} columns, expected {len(header)}")
        row = []
        for k, name in zip(idx, used):
            if not fields[k].strip():
                raise RecordingError(path, f"line {ln} column {name}: empty value")
            row.append(_number(fields[k].strip(), path, ln, name))
        rows.append(row)
        numbers.append(ln)
    if not rows:
        raise RecordingError(path, "no data rows after the header")
    arr = np.array(rows, dtype=np.float64)
    line_no = np.array(numbers)
    if time_cols:
        unit = TIME_COLUMNS[column_map[time_cols[0]].strip().lower()]
        t = arr[:, -1] * unit
        arr = arr[:, :-1]
        d = np.diff(t)
        bad = np.flatnonzero(d <= 0)
        if bad.size:
            k = int(bad[0])
            raise RecordingError(path, f"line {line_no[k + 1]}: time goes from {t[k]:g} s to {t[k + 1]:g} s "
                                       "(must increase)")
        rate = 1.0 / float(np.median(d)) if len(d) else source_hz
        return Table(path, data_cols, arr, line_no, t, "time", rate)
    if source_hz is None or source_hz <= 0:
        raise RecordingError(path, "column_map has no time column (time, time_ms, ...); pass source_hz")
    return Table(path, data_cols, arr, line_no, np.arange(len(arr)) / float(source_hz), "rate", float(source_hz))


# ----------------------------------------------------------------------------- mapping, resampling


@dataclass(frozen=True)
class Part:
    """One file of a path spec and the segment named for it (None: infer)."""

    path: Path
    segment: str | None = None


def _side_word(value: str) -> str | None:
    v = value.strip().lower()
    return {"l": "l", "left": "l", "r": "r", "right": "r"}.get(v)


def parse_spec(spec: str | Path) -> list[Part]:
    """``FILE[=SEGMENT][+FILE[=SEGMENT]...]`` -> parts (see the module docstring)."""
    text = str(spec)
    if Path(text).is_file():
        return [Part(Path(text))]
    parts: list[Part] = []
    for piece in text.split("+"):
        piece = piece.strip()
        if not piece:
            raise RecordingError(text, "empty file name in the path spec (two '+' in a row, or a trailing '+')")
        name, seg = piece, None
        if "=" in piece:
            head, _, tail = piece.rpartition("=")
            if tail.strip() not in SEGMENTS:
                raise RecordingError(text, f"{tail!r} after '=' is not a segment (one of {', '.join(SEGMENTS)})")
            name, seg = head, tail.strip()
        p = Path(name)
        if parts and not p.exists() and p.parent == Path("."):
            sibling = parts[0].path.parent / p
            if sibling.exists():
                p = sibling
        parts.append(Part(p, seg))
    return parts


def infer_segment(path: Path, segment: str | None) -> str:
    """Segment from the file name, or from ``segment`` (a segment, or a side for the name's segment)."""
    if segment is not None and segment in SEGMENTS:
        return segment
    side = _side_word(segment) if segment is not None else None
    if segment is not None and side is None:
        raise RecordingError(path, f"segment={segment!r} is neither a segment ({', '.join(SEGMENTS)}) nor a side (l, r)")
    stem = path.stem.lower()
    kinds = [k for k, words in SEGMENT_WORDS.items() if any(w in stem for w in words)]
    if len(kinds) != 1:
        raise RecordingError(path, "cannot tell from the file name which segment the sensor was on; "
                                   "append =shank_r (or shank_l, thigh_l, thigh_r) to the path, or pass segment=")
    if side is None:
        has_l, has_r = "left" in stem, "right" in stem
        side = "l" if has_l and not has_r else "r" if has_r and not has_l else DEFAULT_SIDE
    return f"{kinds[0]}_{side}"


def xsens_targets(segment: str) -> dict[str, Target]:
    """Default Xsens column -> channel mapping for one segment (see :data:`XSENS_AXES`)."""
    out: dict[str, Target] = {}
    for q_src, q in (("Acc", "acc"), ("Gyr", "gyr")):
        for seg_axis, (sign, s_axis) in XSENS_AXES.items():
            out[f"{q_src}_{s_axis}"] = Target(f"{segment}_{q}_{seg_axis}", sign)
    return out


def check_range(table: Table, targets: Mapping[str, Target], *, clip: bool) -> tuple[np.ndarray, dict[str, int]]:
    """Scaled values (n, k) in the table's column order; reject or clip out-of-range ones."""
    scaled = np.empty_like(table.values)
    clipped: dict[str, int] = {}
    for j, col in enumerate(table.columns):
        tg = targets[col]
        ch = CHANNELS[CHANNEL_INDEX[tg.channel]]
        v = table.values[:, j] * tg.scale
        bad = (v < ch.lo) | (v > ch.hi)
        if bad.any():
            if not clip:
                k = int(np.flatnonzero(bad)[0])
                raise RecordingError(
                    table.path,
                    f"line {table.lines[k]} column {col}: {table.values[k, j]:g} -> {tg.channel}={v[k]:g} {ch.unit} "
                    f"is outside [{ch.lo:g}, {ch.hi:g}] ({int(bad.sum())} value(s); a wrong unit? "
                    "pass out_of_range='clip' to clip them)")
            clipped[tg.channel] = int(bad.sum())
            v = np.clip(v, ch.lo, ch.hi)
        scaled[:, j] = v
    return scaled, clipped


def check_gaps(table: Table, max_gap_s: float = MAX_GAP_S) -> None:
    d = np.diff(table.t)
    big = np.flatnonzero(d > max_gap_s)
    if big.size:
        k = int(big[0])
        raise RecordingError(table.path, f"lines {table.lines[k]}-{table.lines[k + 1]}: {d[k]:.3g} s without samples "
                                         f"(gaps over {max_gap_s:g} s are not interpolated)")


def common_span(tables: list[Table], source: str) -> tuple[list[np.ndarray], float, float]:
    """Each table's time axis on a shared clock and the span they all cover."""
    clocks = {t.clock for t in tables}
    rates = {t.rate for t in tables}
    if len(tables) > 1 and (clocks == {"counter"} and len(rates) == 1 or clocks == {"time"}):
        axes = [t.t for t in tables]
    else:
        axes = [t.t - t.t[0] for t in tables]
    start = max(float(a[0]) for a in axes)
    end = min(float(a[-1]) for a in axes)
    if end < start:
        spans = ", ".join(f"{Path(t.path).name}: {a[0]:.3f}-{a[-1]:.3f} s" for t, a in zip(tables, axes))
        raise RecordingError(source, f"the files were not recorded together: their times do not overlap ({spans})")
    for t, a in zip(tables, axes):
        lost = (start - float(a[0])) + (float(a[-1]) - end)
        if lost > 1.0:
            log.warning("%s: %.1f s outside the span shared with the other files is dropped", t.path, lost)
    return axes, start, end


def resample(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of each column of ``values`` (n, k) from times ``t`` onto ``grid``."""
    out = np.empty((len(grid), values.shape[1]), dtype=np.float64)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(grid, t, values[:, j])
    return out


def assemble(tables: list[Table], targets: list[Mapping[str, Target]], *, hz: float, source: str,
             clip: bool) -> tuple[np.ndarray, tuple[str, ...], dict[str, int]]:
    """Map, range-check and resample the tables onto one (n, 32) float32 frame array."""
    owner: dict[str, str] = {}
    for table, tg in zip(tables, targets):
        for col in table.columns:
            ch = tg[col].channel
            if ch in owner:
                raise RecordingError(source, f"{owner[ch]} and {table.path} both provide {ch}")
            owner[ch] = table.path
        check_gaps(table)
    axes, start, end = common_span(tables, source)
    n = int(math.floor((end - start) * hz + 1e-9)) + 1
    grid = start + np.arange(n) / hz
    frames = np.full((n, N_CHANNELS), np.nan, dtype=np.float32)
    clipped: dict[str, int] = {}
    for table, tg, axis in zip(tables, targets, axes):
        scaled, cl = check_range(table, tg, clip=clip)
        clipped.update(cl)
        res = resample(axis, scaled, grid)
        for j, col in enumerate(table.columns):
            frames[:, CHANNEL_INDEX[tg[col].channel]] = res[:, j]
    filled = {tg[col].channel for table, tg in zip(tables, targets) for col in table.columns}
    absent = tuple(name for name in CHANNEL_NAMES if name not in filled)
    # float32 rounding must not push a value just past a bound
    present = [CHANNEL_INDEX[c] for c in filled]
    frames[:, present] = np.clip(frames[:, present], _LO[present].astype(np.float32), _HI[present].astype(np.float32))
    if clipped:
        log.warning("%s: clipped %d value(s) to the channel ranges: %s", source, sum(clipped.values()), clipped)
    return frames, absent, clipped


# ----------------------------------------------------------------------------- I/O


def read_text(path: Path) -> str:
    if not path.exists():
        raise RecordingError(path, "no such file")
    if not path.is_file():
        raise RecordingError(path, "not a file")
    raw = path.read_bytes()
    if not raw.strip():
        raise RecordingError(path, "empty file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordingError(path, f"not a text file (byte {exc.start} is not UTF-8)") from None


def load_recording(
    path: str | Path,
    *,
    hz: float = 100.0,
    column_map: Mapping[str, str] | None = None,
    segment: str | None = None,
    source_hz: float | None = None,
    out_of_range: Literal["reject", "clip"] = "reject",
) -> Recording:
    """Read a recording (or a ``+`` spec of files recorded together) as frames at ``hz``.

    ``column_map`` (single file only) maps source columns to ``[-]CHANNEL[:UNIT]`` or a
    time column and replaces the Xsens default mapping; ``segment`` names the segment (or
    only the side) of Xsens files; ``source_hz`` overrides / supplies the source rate.
    """
    if hz <= 0:
        raise ValueError("hz must be positive")
    if out_of_range not in ("reject", "clip"):
        raise ValueError("out_of_range must be 'reject' or 'clip'")
    source = str(path)
    parts = parse_spec(path)
    if column_map is not None and len(parts) > 1:
        raise RecordingError(source, "column_map applies to a single file, not to a '+' combination")
    if segment in SEGMENTS and len(parts) > 1:
        raise RecordingError(source, f"segment={segment!r} cannot apply to {len(parts)} files; "
                                     "name each file's segment with FILE=SEGMENT")
    tables: list[Table] = []
    targets: list[dict[str, Target]] = []
    for part in parts:
        where = str(part.path)
        text = read_text(part.path)
        if column_map is not None:
            tg = {col: parse_target(v, where) for col, v in column_map.items() if v.strip().lower() not in TIME_COLUMNS}
            if is_xsens(text):
                table = parse_xsens(text, where, source_hz=source_hz, columns=tuple(tg))
            else:
                table = parse_csv(text, where, column_map, source_hz=source_hz)
        elif is_xsens(text):
            seg = part.segment or infer_segment(part.path, segment)
            tg = xsens_targets(seg)
            table = parse_xsens(text, where, source_hz=source_hz)
        else:
            raise RecordingError(where, "not an Xsens MT export (no // header lines, no Acc_X column); "
                                        "a CSV needs a column_map")
        tables.append(table)
        targets.append(tg)
    frames, absent, clipped = assemble(tables, targets, hz=float(hz), source=source, clip=out_of_range == "clip")
    rates = {t.rate for t in tables}
    return Recording(
        frames=frames,
        hz=float(hz),
        absent=absent,
        source=source,
        files=tuple(t.path for t in tables),
        source_hz=float(rates.pop()) if len(rates) == 1 else float("nan"),
        clipped=clipped,
    )
