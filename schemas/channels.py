"""The documented, versioned channel list of a biomechanical frame.

Every FrameBatch carries frames of exactly ``len(CHANNELS)`` values in this order.
A sensor that cannot measure a channel lists it in ``FrameBatch.absent`` and sends
``null`` in its column; it is never silently zero-filled.

Axes of every IMU follow the segment frame: x forward (anterior), y left, z up.
Angles are in degrees; knee flexion is positive when the knee bends, knee valgus is
positive when the knee moves medially (knock-knee), hip flexion is positive when the
thigh moves forward. Vertical ground reaction force is in body weights (BW).
Bump ``CHANNELS_VERSION`` on any change to order, meaning or unit.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS_VERSION = 1


@dataclass(frozen=True)
class Channel:
    name: str
    segment: str
    quantity: str
    unit: str
    lo: float  # physical range: values outside are rejected as out_of_range
    hi: float


def _imu(segment: str) -> list[Channel]:
    acc = [Channel(f"{segment}_acc_{a}", segment, f"linear acceleration, {a} axis", "m/s^2", -200.0, 200.0) for a in "xyz"]
    gyr = [Channel(f"{segment}_gyr_{a}", segment, f"angular velocity, {a} axis", "rad/s", -50.0, 50.0) for a in "xyz"]
    return acc + gyr


CHANNELS: tuple[Channel, ...] = tuple(
    _imu("thigh_l")
    + _imu("thigh_r")
    + _imu("shank_l")
    + _imu("shank_r")
    + [
        Channel("knee_flexion_l", "knee_l", "knee flexion angle", "deg", -30.0, 180.0),
        Channel("knee_flexion_r", "knee_r", "knee flexion angle", "deg", -30.0, 180.0),
        Channel("knee_valgus_l", "knee_l", "knee valgus (abduction) angle", "deg", -60.0, 60.0),
        Channel("knee_valgus_r", "knee_r", "knee valgus (abduction) angle", "deg", -60.0, 60.0),
        Channel("hip_flexion_l", "hip_l", "hip flexion angle", "deg", -60.0, 150.0),
        Channel("hip_flexion_r", "hip_r", "hip flexion angle", "deg", -60.0, 150.0),
        Channel("grf_vertical_l", "foot_l", "vertical ground reaction force", "BW", -0.5, 15.0),
        Channel("grf_vertical_r", "foot_r", "vertical ground reaction force", "BW", -0.5, 15.0),
    ]
)
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
N_CHANNELS = len(CHANNELS)
CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNEL_NAMES)}


def channel_table_markdown() -> str:
    """The channel list as a Markdown table (README and schema docs)."""
    rows = ["| # | name | segment | quantity | unit | valid range |", "|---|---|---|---|---|---|"]
    for i, c in enumerate(CHANNELS):
        rows.append(f"| {i} | `{c.name}` | {c.segment} | {c.quantity} | {c.unit} | [{c.lo:g}, {c.hi:g}] |")
    return "\n".join(rows)
