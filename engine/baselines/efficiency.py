"""Efficiency, honestly measured: parameters, FLOPs and CPU inference time per window.

* FLOPs of one window (batch 1) by :class:`torch.utils.flop_counter.FlopCounterMode`
  (matrix products and convolutions, 2 FLOPs per multiply-add), plus an analytic count
  for ``nn.LSTM`` layers, which its CPU kernel hides from the counter:
  ``2 x 4 x (in x h + h x h + 2h) x steps x directions`` per layer (gates only).
* Inference time: median wall time of ``repeats`` forward passes on this CPU with
  ``threads`` torch threads, after warm-up, batch 1 (latency) and batch 64 (per window).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np


def count_trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lstm_flops(module: Any, steps: int) -> int:
    """Gate FLOPs of one ``nn.LSTM`` over ``steps`` steps for one sequence."""
    total = 0
    dirs = 2 if module.bidirectional else 1
    h = module.hidden_size
    for layer in range(module.num_layers):
        inp = module.input_size if layer == 0 else h * dirs
        total += 2 * 4 * (inp * h + h * h + 2 * h) * steps * dirs
    return total


def forward_flops(model: Any, inputs: tuple[Any, ...]) -> int:
    """FLOPs of ``model.forward_logits(*inputs)`` (FlopCounterMode + analytic LSTM)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    lstm_total = 0
    hooks = []

    def hook(mod: Any, args: tuple[Any, ...], _out: Any) -> None:
        nonlocal lstm_total
        x = args[0]
        steps = x.shape[1] if mod.batch_first else x.shape[0]
        batch = x.shape[0] if mod.batch_first else x.shape[1]
        lstm_total += lstm_flops(mod, steps) * batch

    for m in model.modules():
        if isinstance(m, torch.nn.LSTM):
            hooks.append(m.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model.forward_logits(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return int(fc.get_total_flops()) + lstm_total


def time_forward(model: Any, inputs: tuple[Any, ...], *, repeats: int = 30, threads: int = 1) -> float:
    """Median seconds of one ``forward_logits`` call on ``inputs``."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        with torch.no_grad():
            for _ in range(3):
                model.forward_logits(*inputs)
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                model.forward_logits(*inputs)
                ts.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(prev)
    return statistics.median(ts)


def example_batch(batch: int, *, window: int, n_channels: int, img_dim: int, n_regions: int, region_dim: int,
                  seed: int = 0) -> tuple[Any, ...]:
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, window, n_channels, generator=g), torch.rand(batch, img_dim, generator=g),
            torch.randn(batch, n_regions, region_dim, generator=g), torch.ones(batch))


def measure(model: Any, *, window: int, n_channels: int, img_dim: int, n_regions: int = 49, region_dim: int = 64,
            threads: int = 1, repeats: int = 30) -> dict[str, float]:
    """Trainable parameters, FLOPs per window, ms per window at batch 1 and at batch 64."""
    kw = dict(window=window, n_channels=n_channels, img_dim=img_dim, n_regions=n_regions, region_dim=region_dim)
    one = example_batch(1, **kw)
    many = example_batch(64, **kw)
    return {
        "params": float(count_trainable(model)),
        "flops": float(forward_flops(model, one)),
        "ms_batch1": 1000.0 * time_forward(model, one, repeats=repeats, threads=threads),
        "ms_per_window_batch64": 1000.0 * time_forward(model, many, repeats=max(5, repeats // 3), threads=threads) / 64,
    }


def encoder_cost(encoder: Any, *, repeats: int = 3, threads: int = 2) -> dict[str, float]:
    """Parameters, FLOPs and seconds of one 224 x 224 image through an encoder's trunk (once
    per study at ingest, not per window)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    trunk = encoder.trunk()
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32))
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            trunk(x)
        ts = []
        with torch.no_grad():
            trunk(x)
            for _ in range(repeats):
                t = time.perf_counter()
                trunk(x)
                ts.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(prev)
    return {"params": float(sum(p.numel() for p in trunk.parameters())), "flops": float(fc.get_total_flops()),
            "ms_per_image": 1000.0 * statistics.median(ts)}
