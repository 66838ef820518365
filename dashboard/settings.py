"""Settings of the coach dashboard. Built once per page run from the environment and passed down.

Every field can be set by ``INJURY_MONITOR_<FIELD>`` (upper case). Threshold fields share
their names with :class:`stream.settings.WorkerSettings`, so one environment configures the
worker and what the dashboard shows as its thresholds.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INJURY_MONITOR_", frozen=True, extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis:// or rediss://)")
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (overrides the URL's)")
    refresh_s: float = Field(1.0, ge=0.1, le=60, description="Live panels refresh every this many seconds")
    stale_after_s: float = Field(5.0, gt=0, description="An athlete without a new score for longer is flagged stale")
    auth_password: SecretStr | None = Field(None, description="When set, the page asks for this password first")
    history_points: int = Field(3600, ge=10, le=100_000, description="Risk history entries read per athlete")
    chart_points: int = Field(600, ge=50, le=10_000, description="Most points drawn in a timeline (max-pooled)")
    trend_window_s: float = Field(10.0, gt=0, description="Trend arrow compares the risk now with this long ago")
    trend_dead_band: float = Field(0.02, ge=0, le=1, description="Smaller risk changes show a flat arrow")
    level_moderate: float = Field(0.35, ge=0, le=1, description="Risk at or above this is 'moderate' (worker's level)")
    level_high: float = Field(0.6, ge=0, le=1, description="Risk at or above this is 'high' (worker's level)")
    alert_raise: float = Field(0.6, ge=0, le=1, description="Worker raises an alert at or above this risk")
    alert_raise_windows: int = Field(2, ge=1, description="... for this many consecutive windows")
    alert_clear: float = Field(0.45, ge=0, le=1, description="Worker clears an alert below this risk")
    alert_clear_windows: int = Field(4, ge=1, description="... for this many consecutive windows")
    alert_history: int = Field(50, ge=1, le=1000, description="Alert events read per athlete for the history")

    @model_validator(mode="after")
    def _ordered(self) -> "DashboardSettings":
        if self.level_moderate > self.level_high:
            raise ValueError(f"level_moderate ({self.level_moderate}) must not exceed level_high ({self.level_high})")
        if self.alert_clear > self.alert_raise:
            raise ValueError(f"alert_clear ({self.alert_clear}) must not exceed alert_raise ({self.alert_raise})")
        return self
