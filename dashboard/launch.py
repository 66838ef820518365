"""Start the dashboard as a ``streamlit run`` child process (used by ``injury-monitor dashboard`` and the demo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dashboard.settings import DashboardSettings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(port: int, address: str) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def settings_env(settings: DashboardSettings) -> dict[str, str | None]:
    """``INJURY_MONITOR_*`` variables that rebuild ``settings`` in the child (secrets included; None: unset)."""
    env: dict[str, str | None] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            env[f"INJURY_MONITOR_{name.upper()}"] = None
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"INJURY_MONITOR_{name.upper()}"] = str(value)
    return env


def run_dashboard(settings: DashboardSettings, port: int = 8501, address: str = "127.0.0.1", *,
                  stdout=None, stderr=None) -> subprocess.Popen:
    """Run the Streamlit page on ``address:port`` with ``settings``; the caller owns (and stops) the process."""
    env = dict(os.environ)
    # Fewer glibc malloc arenas keep the server's RSS flat under fast refreshes (docs/dashboard.md, Measured).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    for key, value in settings_env(settings).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.Popen(streamlit_command(port, address), env=env, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=stderr, start_new_session=True)
