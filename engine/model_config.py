"""RiskNet's hyper-parameters, importable without torch (artifact metadata, scorer)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM
from schemas.channels import N_CHANNELS


@dataclass(frozen=True)
class ModelConfig:
    n_channels: int = N_CHANNELS
    window: int = 200
    downsample: int = 4        # 1, 2, 4 or 8: number of stride-2 convolutions = log2
    conv_dim: int = 48
    hidden: int = 48           # per direction of the BiGRU
    gru_layers: int = 2
    attn_dim: int = 64
    img_dim: int = POOLED_DIM
    n_regions: int = N_REGIONS
    region_dim: int = REGION_DIM
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.downsample not in (1, 2, 4, 8):
            raise ValueError(f"downsample must be 1, 2, 4 or 8, got {self.downsample}")

    @property
    def n_down(self) -> int:
        return int(math.log2(self.downsample))

    @property
    def time_steps(self) -> int:
        """T' for a window of ``window`` frames."""
        t = self.window
        for _ in range(self.n_down):
            t = (t + 1) // 2
        return t

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**d)
