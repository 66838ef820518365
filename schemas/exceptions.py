"""The project's root exception and the schema errors."""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error raised on purpose by injury-monitor."""


class ValidationFailed(MonitorError):
    """A message broke a contract. ``reason`` is one of :class:`schemas.rejected.Reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
