"""Errors of the engine (model, training, export, backends, imaging)."""

from __future__ import annotations

from schemas.exceptions import MonitorError


class EngineError(MonitorError):
    """Model, artifact or backend problem."""


class ArtifactError(EngineError):
    """A model artifact is missing, corrupt or does not match this code's channel list."""


class BackendUnavailable(EngineError):
    """The requested runtime backend cannot run here (library or device missing)."""


class InputError(EngineError):
    """Inference input rejected (shape, dtype, NaN)."""
