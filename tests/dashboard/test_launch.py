"""dashboard.launch: the ``streamlit run`` child process the CLI and the demo start."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from dashboard.launch import APP, run_dashboard, settings_env, streamlit_command
from dashboard.settings import DashboardSettings
from stream.embedded import free_port, wait_port


def test_command_runs_the_app_by_absolute_path_headless():
    cmd = streamlit_command(8600, "0.0.0.0")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP) and APP.is_absolute() and APP.exists()
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags == {"--server.port": "8600", "--server.address": "0.0.0.0", "--server.headless": "true",
                     "--browser.gatherUsageStats": "false"}


def test_settings_travel_to_the_child_through_the_environment(monkeypatch):
    cfg = DashboardSettings(redis_url="redis://h:1/3", refresh_s=2.0, auth_password="pw", history_points=99)
    env = settings_env(cfg)
    assert env["INJURY_MONITOR_AUTH_PASSWORD"] == "pw" and env["INJURY_MONITOR_REDIS_PASSWORD"] is None
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    assert DashboardSettings() == cfg


def test_run_dashboard_serves_the_page(redis_url, tmp_path):
    port = free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    proc = run_dashboard(DashboardSettings(redis_url=redis_url), port, "127.0.0.1", stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, 60, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as r:
            assert r.status == 200 and r.read() == b"ok"
        child_env = (Path("/proc") / str(proc.pid) / "environ").read_bytes().split(b"\0")
        assert f"INJURY_MONITOR_REDIS_URL={redis_url}".encode() in child_env
        assert any(e.startswith(b"MALLOC_ARENA_MAX=") for e in child_env)
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode is not None
