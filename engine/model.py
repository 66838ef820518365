"""RiskNet: the ResNet50-BiGRU-attention injury-risk model (docs/model.md).

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

Image standardisation: the image features are standardised per dimension with the
statistics of the training images (buffers ``img_mean``/``img_std`` for the pooled
embedding, ``region_mean``/``region_std`` for the 64-d region features, set by
:meth:`RiskNet.set_image_stats`) and clipped to +-``IMAGE_CLIP`` standard deviations.
The frozen ResNet50's embeddings share a large common component (with a random-init
encoder, cosine similarity ~0.9998 between any two radiographs), so without this the
differences between images would be invisible next to it. The statistics travel in the
state dict, so the scorer, the ONNX export and every backend apply them. Defaults (0, 1)
leave the features unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.model_config import ModelConfig

__all__ = ["IMAGE_CLIP", "ModelConfig", "RiskNet", "count_parameters", "example_inputs"]

IMAGE_CLIP = 8.0  # standardised image features are clipped to +- this many standard deviations


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
        self.register_buffer("img_mean", torch.zeros(cfg.img_dim))
        self.register_buffer("img_std", torch.ones(cfg.img_dim))
        self.register_buffer("region_mean", torch.zeros(cfg.region_dim))
        self.register_buffer("region_std", torch.ones(cfg.region_dim))
        self._scale = 1.0 / math.sqrt(d)

    @torch.no_grad()
    def set_image_stats(self, pooled_mean, pooled_std, region_mean, region_std) -> None:  # noqa: ANN001 - array-likes
        """Per-dimension statistics of the training images (see the module docstring)."""
        for name, value in (("img_mean", pooled_mean), ("img_std", pooled_std),
                            ("region_mean", region_mean), ("region_std", region_std)):
            buf = getattr(self, name)
            t = torch.as_tensor(value, dtype=buf.dtype).reshape(buf.shape)
            if name.endswith("std") and not bool((t > 0).all()):
                raise ValueError(f"{name} must be positive")
            buf.copy_(t)

    def standardise_image(self, img: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised, clipped pooled (B, D) and region (B, 49, 64) features."""
        img = torch.clamp((img - self.img_mean) / self.img_std, -IMAGE_CLIP, IMAGE_CLIP)
        regions = torch.clamp((regions - self.region_mean) / self.region_std, -IMAGE_CLIP, IMAGE_CLIP)
        return img, regions

    def forward_logits(self, x: torch.Tensor, img: torch.Tensor, regions: torch.Tensor, has_img: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uncalibrated logit (B,), time attention (B, T'), region attention (B, 49)."""
        h = self.frontend(x.transpose(1, 2)).transpose(1, 2)           # (B, T', conv_dim)
        states, _ = self.gru(h)                                          # (B, T', 2h)
        m = has_img.to(x.dtype).unsqueeze(-1)                            # (B, 1)
        img, regions = self.standardise_image(img, regions)
        e = self.img_proj(img) * m                                       # (B, d), zero without image
        q = m * self.q_img(e) + (1.0 - m) * self.q_learned               # (B, d)
        k = self.k_time(states)                                          # (B, T', d)
        a_t = self._attend_time(torch.bmm(k, q.unsqueeze(-1)).squeeze(-1) * self._scale)
        ctx = torch.bmm(a_t.unsqueeze(1), states).squeeze(1)            # (B, 2h)
        r = self.region_norm(regions)
        kr, vr = self.k_region(r), self.v_region(r)                      # (B, 49, d)
        qr = self.q_region(ctx)
        a_r = self._attend_regions(torch.bmm(kr, qr.unsqueeze(-1)).squeeze(-1) * self._scale) * m
        ctx_r = torch.bmm(a_r.unsqueeze(1), vr).squeeze(1)              # (B, d), zero without image
        logit = self.head(torch.cat([ctx, e, ctx_r, m], dim=-1)).squeeze(-1)
        return logit, a_t, a_r

    def _attend_time(self, scores: torch.Tensor) -> torch.Tensor:
        """Attention weights over time steps from scaled scores (B, T'); ablations override it."""
        return torch.softmax(scores, dim=-1)

    def _attend_regions(self, scores: torch.Tensor) -> torch.Tensor:
        """Attention weights over image regions from scaled scores (B, 49); ablations override it."""
        return torch.softmax(scores, dim=-1)

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
