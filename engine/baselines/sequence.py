"""Recurrent fusion baselines without attention: CNN-LSTM and BiLSTM.

Both take RiskNet's inputs ``(x, img, regions, has_img)`` and return ``(logit,)``; they
use the standardised pooled ResNet50 embedding (not the region features: no attention to
spend on them), projected and zeroed without an image, concatenated with the sequence
summary and the ``has_img`` flag, then an MLP head. They have the ``temperature``
buffer and :meth:`set_image_stats` of :class:`engine.model.RiskNet`, so training,
calibration and evaluation treat them alike.

* :class:`CNNLSTM` (Lu et al. 2018 style): RiskNet's strided 1-D convolution front end,
  a 2-layer unidirectional LSTM, its last hidden state.
* :class:`BiLSTMNet` (Guo et al. 2020 style): frames average-pooled by ``downsample``
  and projected, a 2-layer bidirectional LSTM, mean and max over time.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.model import IMAGE_CLIP
from engine.model_config import ModelConfig


class _FusionBase(nn.Module):
    def __init__(self, cfg: ModelConfig, seq_dim: int) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.attn_dim
        self.img_proj = nn.Sequential(nn.LayerNorm(cfg.img_dim), nn.Linear(cfg.img_dim, d), nn.GELU())
        self.head = nn.Sequential(nn.Linear(seq_dim + d + 1, 64), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(64, 1))
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("img_mean", torch.zeros(cfg.img_dim))
        self.register_buffer("img_std", torch.ones(cfg.img_dim))

    @torch.no_grad()
    def set_image_stats(self, pooled_mean, pooled_std, region_mean=None, region_std=None) -> None:  # noqa: ANN001
        self.img_mean.copy_(torch.as_tensor(pooled_mean, dtype=self.img_mean.dtype).reshape(self.img_mean.shape))
        self.img_std.copy_(torch.as_tensor(pooled_std, dtype=self.img_std.dtype).reshape(self.img_std.shape))

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_logits(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor
                       ) -> tuple[torch.Tensor]:
        m = has_img.to(x.dtype).unsqueeze(-1)
        z = torch.clamp((img - self.img_mean) / self.img_std, -IMAGE_CLIP, IMAGE_CLIP)
        e = self.img_proj(z) * m
        return (self.head(torch.cat([self.sequence(x), e, m], dim=-1)).squeeze(-1),)

    def forward(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x, img, regions, has_img)[0] / self.temperature)


class CNNLSTM(_FusionBase):
    def __init__(self, cfg: ModelConfig | None = None, *, hidden: int | None = None) -> None:
        cfg = cfg or ModelConfig()
        h = hidden or 2 * cfg.hidden
        super().__init__(cfg, h)
        layers: list[nn.Module] = []
        c_in = cfg.n_channels
        if cfg.n_down == 0:
            layers += [nn.Conv1d(c_in, cfg.conv_dim, kernel_size=1), nn.GELU()]
        for _ in range(cfg.n_down):
            layers += [nn.Conv1d(c_in, cfg.conv_dim, kernel_size=5, stride=2, padding=2), nn.GELU()]
            c_in = cfg.conv_dim
        self.frontend = nn.Sequential(*layers)
        self.lstm = nn.LSTM(cfg.conv_dim, h, num_layers=2, batch_first=True, dropout=cfg.dropout)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frontend(x.transpose(1, 2)).transpose(1, 2)
        states, _ = self.lstm(h)
        return states[:, -1]


class BiLSTMNet(_FusionBase):
    def __init__(self, cfg: ModelConfig | None = None) -> None:
        cfg = cfg or ModelConfig()
        super().__init__(cfg, 4 * cfg.hidden)
        self.pool = nn.AvgPool1d(cfg.downsample, ceil_mode=True) if cfg.downsample > 1 else nn.Identity()
        self.proj = nn.Sequential(nn.Linear(cfg.n_channels, cfg.conv_dim), nn.GELU())
        self.lstm = nn.LSTM(cfg.conv_dim, cfg.hidden, num_layers=2, batch_first=True, bidirectional=True,
                            dropout=cfg.dropout)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.pool(x.transpose(1, 2)).transpose(1, 2))
        states, _ = self.lstm(h)
        return torch.cat([states.mean(dim=1), states.amax(dim=1)], dim=-1)
