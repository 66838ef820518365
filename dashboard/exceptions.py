"""Errors of the dashboard."""

from __future__ import annotations

from schemas.exceptions import MonitorError


class DashboardError(MonitorError):
    """A dashboard request that cannot be served (bad input, Redis unreachable)."""
