"""RiskNet ablations: the same network with one part taken away.

* ``no_attention``: uniform weights over time steps and over image regions (mean pooling);
* ``no_region_attention``: uniform weights over image regions only;
* ``sensors_only``: never given an image (``has_img`` forced to 0);
* ``image_only``: given the image and no sensor data (the window forced to zeros, i.e.
  the training mean of every channel).
"""

from __future__ import annotations

from typing import Literal

import torch

from engine.model import RiskNet
from engine.model_config import ModelConfig

Mode = Literal["no_attention", "no_region_attention", "sensors_only", "image_only"]
MODES: tuple[str, ...] = ("no_attention", "no_region_attention", "sensors_only", "image_only")


class RiskNetAblation(RiskNet):
    def __init__(self, config: ModelConfig | None = None, *, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        super().__init__(config)
        self.mode = mode

    def _attend_time(self, scores: torch.Tensor) -> torch.Tensor:
        if self.mode == "no_attention":
            return torch.full_like(scores, 1.0 / scores.shape[-1])
        return super()._attend_time(scores)

    def _attend_regions(self, scores: torch.Tensor) -> torch.Tensor:
        if self.mode in ("no_attention", "no_region_attention"):
            return torch.full_like(scores, 1.0 / scores.shape[-1])
        return super()._attend_regions(scores)

    def forward_logits(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.mode == "sensors_only":
            has_img = torch.zeros_like(has_img)
        elif self.mode == "image_only":
            x = torch.zeros_like(x)
            has_img = torch.ones_like(has_img)
        return super().forward_logits(x, img, regions, has_img)
