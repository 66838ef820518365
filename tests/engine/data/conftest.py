"""Fixture factories of the data tests: recordings written in the exact on-disk layouts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# The two Xsens walking recordings (scikit-kinematics test data, BSD-3), kept in the repo.
SHARED_IMU = Path(__file__).resolve().parents[2] / "data" / "imu"
XSENS_HEADER = "Counter\tAcc_X\tAcc_Y\tAcc_Z\tGyr_X\tGyr_Y\tGyr_Z\tMag_X\tMag_Y\tMag_Z\tLatitude\tLongitude\tAltitude\t"


@pytest.fixture
def shared_imu() -> Path:
    if not (SHARED_IMU / "walking_xsens_lowerLeg.txt").is_file():
        pytest.fail(f"Xsens recordings missing under {SHARED_IMU} (see tests/data/imu/README.md)")
    return SHARED_IMU


def xsens_text(acc: np.ndarray, gyr: np.ndarray, *, counter: np.ndarray | None = None, counter_start: int = 100,
               rate: float = 120.0) -> str:
    """An MT Manager export: 4 ``//`` lines, tab table with a trailing tab on every line, CRLF."""
    n = len(acc)
    if counter is None:
        counter = (counter_start + np.arange(n)) % 65536
    lines = ["// Start Time: 0", f"// Sample rate: {rate:.1f}Hz", "// Scenario: 5.9", "// Firmware Version: 2.5.1",
             XSENS_HEADER]
    for c, a, g in zip(counter, acc, gyr):
        vals = [f"{int(c)}"] + [f"{v:.6f}" for v in a] + [f"{v:.6f}" for v in g]
        vals += ["0.832098", "0.534800", "-0.180303", "0.000000000", "0.000000000", "0.000000"]
        lines.append("\t".join(vals) + "\t")
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def xsens_file(tmp_path: Path) -> Callable[..., Path]:
    """``xsens_file(name, n=..., acc=..., gyr=..., **xsens_text kw)`` -> path of a written export.

    Default signal: standing still (gravity on -X, as in the shared files) with a slow
    sine on Gyr_Z.
    """

    def make(name: str, n: int = 240, acc: np.ndarray | None = None, gyr: np.ndarray | None = None, **kw) -> Path:
        t = np.arange(n) / kw.get("rate", 120.0)
        if acc is None:
            acc = np.column_stack([np.full(n, -9.6), np.full(n, -1.0), 0.5 * np.sin(2 * np.pi * t)])
        if gyr is None:
            gyr = np.column_stack([np.zeros(n), 0.1 * np.cos(2 * np.pi * t), 2.0 * np.sin(2 * np.pi * t)])
        path = tmp_path / name
        path.write_bytes(xsens_text(acc, gyr, **kw).encode())
        return path

    return make


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[[str, list[str], np.ndarray], Path]:
    """``csv_file(name, header, rows)`` -> a comma-separated file with one header row."""

    def make(name: str, header: list[str], rows: np.ndarray, delimiter: str = ",") -> Path:
        path = tmp_path / name
        body = [delimiter.join(header)] + [delimiter.join(f"{v:.9g}" for v in r) for r in rows]
        path.write_text("\n".join(body) + "\n")
        return path

    return make
