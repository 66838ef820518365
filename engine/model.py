"""RiskNet: the ResNet50-BiGRU-attention injury-risk model (DESIGN.md, "Model").

The ResNet50 image branch runs once per study at image ingest (``engine.imaging``); this
module consumes its outputs, the pooled 2048-d embedding and the 7x7 region features
(49 x 64), so the per-window model stays small enough for fast CPU inference.

Inputs (all float32):
  x        (B, T, C)   sensor window, normalised per channel (absent channels = 0)
  img      (B, 2048)   pooled image embedding (anything, e.g. zeros, when absent)
  regions  (B, 49, 64) image region features (anything when absent)
  has_img  (B,)        1.0 when the athlete's image embedding is present, else 0.0
Outputs:
  prob        (B,)     calibrated injury probability, sigmoid(logit / temperature)
  time_attn   (B, T')  attention over the T' = ceil(T / downsample) BiGRU steps (sums to 1)
  region_attn (B, 49)  attention over image regions (sums to 1); ALL ZEROS when has_img = 0

Architecture: per-frame projection (strided 1-D convolutions, each halving T) ->
2-layer BiGRU -> hidden states H. Time attention is scaled dot-product
``softmax(q K^T / sqrt(d)) V`` with K = W_k H, V = H and the query q formed from the image
embedding when present and a learned query otherwise; the two are blended by ``has_img``
so one graph serves both cases (and exports to ONNX as one graph). A second scaled
dot-product attention over the 49 image regions, queried by the sensor context, says
which part of the image mattered; it is multiplied by ``has_img`` so it is zero (and
contributes nothing) without an image. Head: [sensor context, image embedding, region
context, has_img] -> MLP -> logit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.model_config import ModelConfig

__all__ = ["ModelConfig", "RiskNet", "count_parameters", "example_inputs"]


class RiskNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ModelConfig()
        layers: list[nn.Module] = []
        c_in = cfg.n_channels
        if cfg.n_down == 0:
            layers += [nn.Conv1d(c_in, cfg.conv_dim, kernel_size=1), nn.GELU()]
        for _ in range(cfg.n_down):
            layers += [nn.Conv1d(c_in, cfg.conv_dim, kernel_size=5, stride=2, padding=2), nn.GELU()]
            c_in = cfg.conv_dim
        self.frontend = nn.Sequential(*layers)
        self.gru = nn.GRU(cfg.conv_dim, cfg.hidden, num_layers=cfg.gru_layers, batch_first=True, bidirectional=True,
                          dropout=cfg.dropout if cfg.gru_layers > 1 else 0.0)
        h2, d = 2 * cfg.hidden, cfg.attn_dim
        self.img_proj = nn.Sequential(nn.LayerNorm(cfg.img_dim), nn.Linear(cfg.img_dim, d), nn.GELU())
        self.q_img = nn.Linear(d, d)
        self.q_learned = nn.Parameter(torch.randn(d) * 0.1)
        self.k_time = nn.Linear(h2, d)
        self.region_norm = nn.LayerNorm(cfg.region_dim)
        self.k_region = nn.Linear(cfg.region_dim, d)
        self.v_region = nn.Linear(cfg.region_dim, d)
        self.q_region = nn.Linear(h2, d)
        self.head = nn.Sequential(
            nn.Linear(h2 + d + d + 1, 64), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(64, 1)
        )
        self.register_buffer("temperature", torch.tensor(1.0))
        self._scale = 1.0 / math.sqrt(d)

    def forward_logits(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uncalibrated logit (B,), time attention (B, T'), region attention (B, 49)."""
        h = self.frontend(x.transpose(1, 2)).transpose(1, 2)           # (B, T', conv_dim)
        states, _ = self.gru(h)                                          # (B, T', 2h)
        m = has_img.to(x.dtype).unsqueeze(-1)                            # (B, 1)
        e = self.img_proj(img) * m                                       # (B, d), zero without image
        q = m * self.q_img(e) + (1.0 - m) * self.q_learned               # (B, d)
        k = self.k_time(states)                                          # (B, T', d)
        a_t = torch.softmax(torch.bmm(k, q.unsqueeze(-1)).squeeze(-1) * self._scale, dim=-1)
        ctx = torch.bmm(a_t.unsqueeze(1), states).squeeze(1)            # (B, 2h)
        r = self.region_norm(regions)
        kr, vr = self.k_region(r), self.v_region(r)                      # (B, 49, d)
        qr = self.q_region(ctx)
        a_r = torch.softmax(torch.bmm(kr, qr.unsqueeze(-1)).squeeze(-1) * self._scale, dim=-1) * m
        ctx_r = torch.bmm(a_r.unsqueeze(1), vr).squeeze(1)              # (B, d), zero without image
        logit = self.head(torch.cat([ctx, e, ctx_r, m], dim=-1)).squeeze(-1)
        return logit, a_t, a_r

    def forward(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logit, a_t, a_r = self.forward_logits(x, img, regions, has_img)
        return torch.sigmoid(logit / self.temperature), a_t, a_r


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def example_inputs(batch: int, config: ModelConfig, *, seed: int = 0, image_fraction: float = 0.5
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inputs of the right shapes (parity checks, benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.window, config.n_channels, generator=g)
    img = torch.rand(batch, config.img_dim, generator=g)
    regions = torch.randn(batch, config.n_regions, config.region_dim, generator=g)
    has = (torch.rand(batch, generator=g) < image_fraction).float()
    return x, img, regions, has
