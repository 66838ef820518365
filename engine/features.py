"""Image features as the model consumes them (computed once per study, cached in Redis)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POOLED_DIM = 2048      # ResNet50 global-average-pooled embedding
REGION_GRID = 7        # ResNet50 last stage at 224x224 input: 7 x 7 regions
N_REGIONS = REGION_GRID * REGION_GRID
REGION_DIM = 64        # each region's 2048-d feature, projected by a fixed, versioned matrix


@dataclass(frozen=True)
class ImageFeatures:
    """One athlete's image embedding: pooled (2048,) and regions (49, 64), float32."""

    pooled: np.ndarray
    regions: np.ndarray
    encoder_version: str

    def __post_init__(self) -> None:
        if self.pooled.shape != (POOLED_DIM,) or self.regions.shape != (N_REGIONS, REGION_DIM):
            raise ValueError(f"bad image feature shapes {self.pooled.shape}, {self.regions.shape}")
