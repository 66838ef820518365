"""A model artifact: one folder that carries the model and everything needed to use it.

Layout::

    <dir>/model.pt     torch state_dict of :class:`engine.model.RiskNet`
    <dir>/model.onnx   the same model exported to ONNX (opset 17, dynamic batch), meta in metadata_props
    <dir>/meta.json    channels + channels_version, per-channel normalisation mean/std, window,
                       hop, hz, model_version, encoder_version, model_config, temperature,
                       training summary, created_at, sha256 of model.pt and model.onnx

``meta.json`` is written last, after both model files are in place, and records their
checksums, so a half-written or corrupted artifact is detected at load time. Loading
checks files and metadata without importing torch; :meth:`ModelArtifact.build_model`
loads the weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.exceptions import ArtifactError
from schemas.channels import CHANNEL_NAMES, CHANNELS_VERSION

if TYPE_CHECKING:
    import torch

    from engine.model import RiskNet
    from engine.model_config import ModelConfig

ARTIFACT_FORMAT = 1
MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
META_FILE = "meta.json"
ONNX_META_KEY = "injury_monitor.meta"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of the weights (stable across save formats)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ArtifactMeta:
    channels: tuple[str, ...]
    channels_version: int
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    window: int
    hop: int
    hz: float
    model_version: str
    encoder_version: str
    model_config: dict[str, Any]
    temperature: float
    training: dict[str, Any]
    created_at: str
    format: int = ARTIFACT_FORMAT
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    @property
    def config(self) -> ModelConfig:
        from engine.model_config import ModelConfig

        return ModelConfig.from_dict(self.model_config)

    @property
    def time_steps(self) -> int:
        return self.config.time_steps

    @property
    def attn_step_s(self) -> float:
        """Seconds covered by one time-attention step."""
        return self.config.downsample / self.hz

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["norm_mean"] = list(self.norm_mean)
        d["norm_std"] = list(self.norm_std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = META_FILE) -> ArtifactMeta:
        required = ("channels", "channels_version", "norm_mean", "norm_std", "window", "hop", "hz", "model_version",
                    "encoder_version", "model_config", "temperature", "training", "created_at", "format")
        missing = [k for k in required if k not in d]
        if missing:
            raise ArtifactError(f"{source}: missing keys {missing}")
        if d["format"] != ARTIFACT_FORMAT:
            raise ArtifactError(f"{source}: artifact format {d['format']!r}, this code reads format {ARTIFACT_FORMAT}")
        try:
            meta = cls(
                channels=tuple(str(c) for c in d["channels"]),
                channels_version=int(d["channels_version"]),
                norm_mean=tuple(float(v) for v in d["norm_mean"]),
                norm_std=tuple(float(v) for v in d["norm_std"]),
                window=int(d["window"]),
                hop=int(d["hop"]),
                hz=float(d["hz"]),
                model_version=str(d["model_version"]),
                encoder_version=str(d["encoder_version"]),
                model_config=dict(d["model_config"]),
                temperature=float(d["temperature"]),
                training=dict(d["training"]),
                created_at=str(d["created_at"]),
                format=int(d["format"]),
                files={str(k): str(v) for k, v in dict(d.get("files", {})).items()},
            )
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: bad value ({exc})") from exc
        meta.validate(source=source)
        return meta

    def validate(self, *, source: str = META_FILE) -> None:
        """Check the metadata against this code's channel list and itself."""
        if self.channels_version != CHANNELS_VERSION or self.channels != CHANNEL_NAMES:
            extra = sorted(set(self.channels) - set(CHANNEL_NAMES))
            lacking = sorted(set(CHANNEL_NAMES) - set(self.channels))
            raise ArtifactError(
                f"{source}: the model was trained on channels v{self.channels_version} "
                f"({len(self.channels)} channels) but schemas/channels.py is v{CHANNELS_VERSION} "
                f"({len(CHANNEL_NAMES)} channels); not in schemas: {extra}, not in model: {lacking}"
                + ("; same names in another order" if not extra and not lacking else "")
                + ". Retrain the model (injury-monitor train)."
            )
        n = len(self.channels)
        if len(self.norm_mean) != n or len(self.norm_std) != n:
            raise ArtifactError(f"{source}: norm_mean/norm_std must have {n} values")
        if not all(math.isfinite(v) for v in self.norm_mean) or not all(math.isfinite(v) and v > 0 for v in self.norm_std):
            raise ArtifactError(f"{source}: normalisation statistics must be finite (std > 0)")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ArtifactError(f"{source}: temperature must be > 0, got {self.temperature}")
        if self.window < 2 or self.hop < 1 or not (self.hz > 0):
            raise ArtifactError(f"{source}: bad window/hop/hz {self.window}/{self.hop}/{self.hz}")
        try:
            cfg = self.config
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: bad model_config ({exc})") from exc
        if cfg.window != self.window or cfg.n_channels != n:
            raise ArtifactError(f"{source}: model_config window/channels ({cfg.window}, {cfg.n_channels}) "
                                f"disagree with meta ({self.window}, {n})")


class ModelArtifact:
    """A trained model plus its metadata; either in memory (``from_model``) or on disk (``load``)."""

    def __init__(self, meta: ArtifactMeta, *, state_dict: dict[str, torch.Tensor] | None = None,
                 directory: Path | None = None) -> None:
        if state_dict is None and directory is None:
            raise ValueError("a ModelArtifact needs a state_dict or a directory")
        self.meta = meta
        self._state_dict = state_dict
        self.directory = Path(directory) if directory is not None else None

    # ------------------------------------------------------------------ paths and views
    @property
    def model_path(self) -> Path:
        return self._dir() / MODEL_FILE

    @property
    def onnx_path(self) -> Path:
        return self._dir() / ONNX_FILE

    @property
    def meta_path(self) -> Path:
        return self._dir() / META_FILE

    def _dir(self) -> Path:
        if self.directory is None:
            raise ArtifactError("this artifact is in memory only; save() it first")
        return self.directory

    @property
    def norm_mean(self) -> np.ndarray:
        return np.asarray(self.meta.norm_mean, dtype=np.float32)

    @property
    def norm_std(self) -> np.ndarray:
        return np.asarray(self.meta.norm_std, dtype=np.float32)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: RiskNet,
        *,
        norm_mean: np.ndarray,
        norm_std: np.ndarray,
        hop: int,
        hz: float,
        encoder_version: str,
        training: dict[str, Any] | None = None,
    ) -> ModelArtifact:
        cfg = model.config
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        meta = ArtifactMeta(
            channels=CHANNEL_NAMES,
            channels_version=CHANNELS_VERSION,
            norm_mean=tuple(float(v) for v in np.asarray(norm_mean).ravel()),
            norm_std=tuple(float(v) for v in np.asarray(norm_std).ravel()),
            window=cfg.window,
            hop=int(hop),
            hz=float(hz),
            model_version=f"risknet-{state_dict_digest(state)[:12]}",
            encoder_version=encoder_version,
            model_config=cfg.to_dict(),
            temperature=float(model.temperature),
            training=dict(training or {}),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        meta.validate(source="new artifact")
        return cls(meta, state_dict=state)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ModelArtifact:
        """Open and verify an artifact folder (files present, checksums, channel list)."""
        d = Path(directory)
        if not d.is_dir():
            raise ArtifactError(f"model artifact folder {d} does not exist")
        missing = [name for name in (META_FILE, MODEL_FILE, ONNX_FILE) if not (d / name).is_file()]
        if missing:
            raise ArtifactError(f"model artifact {d} is incomplete: missing {', '.join(missing)}")
        meta_path = d / META_FILE
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{meta_path} is corrupt: {exc}") from exc
        if not isinstance(raw, dict):
            raise ArtifactError(f"{meta_path} is corrupt: not a JSON object")
        meta = ArtifactMeta.from_dict(raw, source=str(meta_path))
        for name in (MODEL_FILE, ONNX_FILE):
            want = meta.files.get(name)
            if want is None:
                raise ArtifactError(f"{meta_path} records no checksum for {name}")
            got = sha256_file(d / name)
            if got != want:
                raise ArtifactError(f"{d / name} is corrupt or was replaced: sha256 {got[:12]}..., "
                                    f"{META_FILE} expects {want[:12]}...")
        return cls(meta, directory=d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self._state_dict is not None:
            return self._state_dict
        import torch

        try:
            return torch.load(self.model_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise ArtifactError(f"{self.model_path} cannot be read: {exc}") from exc

    def build_model(self) -> RiskNet:
        """The torch model with the artifact's weights, in eval mode, on the CPU."""
        from engine.model import RiskNet

        model = RiskNet(self.meta.config)
        try:
            model.load_state_dict(self.state_dict(), strict=True)
        except RuntimeError as exc:
            where = self.model_path if self.directory is not None else "state_dict"
            raise ArtifactError(f"{where} does not match the model config: {exc}") from exc
        model.eval()
        return model

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write model.pt, model.onnx (export + parity check) and, last, meta.json."""
        import torch

        from engine.export import export_onnx

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp_pt, tmp_onnx, tmp_meta = d / f".{MODEL_FILE}.tmp", d / f".{ONNX_FILE}.tmp", d / f".{META_FILE}.tmp"
        (d / META_FILE).unlink(missing_ok=True)  # invalid until the new meta lands
        torch.save(self.state_dict(), tmp_pt)
        export_onnx(self.build_model(), tmp_onnx,
                    metadata={k: v for k, v in self.meta.to_dict().items() if k != "files"})
        os.replace(tmp_pt, d / MODEL_FILE)
        os.replace(tmp_onnx, d / ONNX_FILE)
        files = {MODEL_FILE: sha256_file(d / MODEL_FILE), ONNX_FILE: sha256_file(d / ONNX_FILE)}
        meta = ArtifactMeta(**{**asdict(self.meta), "files": files})
        tmp_meta.write_text(meta.to_json(), encoding="utf-8")
        os.replace(tmp_meta, d / META_FILE)
        self.meta = meta
        self.directory = d
        return d

    def update_onnx_checksum(self) -> None:
        """Record the current model.onnx checksum in meta.json (after a re-export in place)."""
        files = {**self.meta.files, ONNX_FILE: sha256_file(self.onnx_path)}
        meta = ArtifactMeta(**{**asdict(self.meta), "files": files})
        tmp = self._dir() / f".{META_FILE}.tmp"
        tmp.write_text(meta.to_json(), encoding="utf-8")
        os.replace(tmp, self.meta_path)
        self.meta = meta
