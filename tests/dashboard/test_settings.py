"""dashboard.settings: environment prefix, secrets and consistency checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dashboard.settings import DashboardSettings


def test_reads_the_injury_monitor_environment(monkeypatch):
    monkeypatch.setenv("INJURY_MONITOR_REDIS_URL", "redis://db:6380/2")
    monkeypatch.setenv("INJURY_MONITOR_AUTH_PASSWORD", "hunter2")
    monkeypatch.setenv("INJURY_MONITOR_REFRESH_S", "2.5")
    cfg = DashboardSettings()
    assert cfg.redis_url == "redis://db:6380/2" and cfg.refresh_s == 2.5
    assert cfg.auth_password.get_secret_value() == "hunter2" and "hunter2" not in repr(cfg)


def test_defaults_leave_login_off(monkeypatch):
    monkeypatch.delenv("INJURY_MONITOR_AUTH_PASSWORD", raising=False)
    cfg = DashboardSettings()
    assert cfg.auth_password is None and cfg.refresh_s == 1.0 and cfg.stale_after_s == 5.0


def test_frozen_and_checked():
    cfg = DashboardSettings()
    with pytest.raises(ValidationError):
        cfg.refresh_s = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="level_moderate"):
        DashboardSettings(level_moderate=0.8, level_high=0.6)
    with pytest.raises(ValidationError, match="alert_clear"):
        DashboardSettings(alert_raise=0.5, alert_clear=0.6)
