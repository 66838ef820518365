"""A VGG16 image encoder with the interface of :class:`engine.imaging.encoder.ResNet50Encoder`.

torchvision ``vgg16`` convolutional part (13 conv layers, 5 max-pools), frozen, eval mode;
weights from a local checkpoint when given, else a seeded random init (nothing is
downloaded). At 224 x 224 the last feature map is 512 x 7 x 7: ``pooled`` is its global
average (512-d), ``regions`` each cell's 512-d vector times a fixed (512, 64) matrix from
``numpy.random.default_rng(projection_seed)`` / sqrt(512), the same recipe as the
ResNet50 encoder. ``version`` is ``vgg16-rand<seed>-p<projection seed>`` or
``vgg16-<sha8 of the checkpoint>-p<projection seed>``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.features import N_REGIONS, REGION_DIM
from engine.imaging.encoder import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, checkpoint_digest
from engine.imaging.exceptions import EncoderError

VGG16_POOLED_DIM = 512


class VGG16Encoder:
    def __init__(self, checkpoint: str | Path | None = None, *, init_seed: int = 0, projection_seed: int = 0,
                 device: str = "cpu", batch_size: int = 8) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise EncoderError(self.checkpoint, "VGG16 checkpoint file not found")
        self.init_seed = init_seed
        self.device = device
        self.batch_size = max(1, batch_size)
        source = checkpoint_digest(self.checkpoint) if self.checkpoint is not None else f"rand{init_seed}"
        self.version = f"vgg16-{source}-p{projection_seed}"
        rng = np.random.default_rng(projection_seed)
        self.projection = (rng.standard_normal((VGG16_POOLED_DIM, REGION_DIM)) / np.sqrt(VGG16_POOLED_DIM)).astype(np.float32)
        self._trunk: Any = None
        self._lock = threading.Lock()

    def trunk(self) -> Any:
        with self._lock:
            if self._trunk is None:
                import torch
                import torchvision

                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.init_seed)
                    model = torchvision.models.vgg16(weights=None)
                if self.checkpoint is not None:
                    try:
                        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
                    except Exception as exc:
                        raise EncoderError(self.checkpoint, f"cannot load the VGG16 checkpoint ({exc})") from None
                    missing, _ = model.load_state_dict(state, strict=False)
                    if [k for k in missing if k.startswith("features.")]:
                        raise EncoderError(self.checkpoint, "checkpoint lacks VGG16 convolution weights")
                trunk = model.features
                for p in trunk.parameters():
                    p.requires_grad_(False)
                self._trunk = trunk.eval().to(self.device)
            return self._trunk

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 224, 224, 3) in [0, 1] -> pooled (N, 512), regions (N, 49, 64), float32."""
        import torch

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"images must be (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), got {images.shape}")
        n = images.shape[0]
        pooled = np.empty((n, VGG16_POOLED_DIM), dtype=np.float32)
        regions = np.empty((n, N_REGIONS, REGION_DIM), dtype=np.float32)
        trunk = self.trunk()
        for s in range(0, n, self.batch_size):
            chunk = (images[s:s + self.batch_size] - IMAGENET_MEAN) / IMAGENET_STD
            x = torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))).to(self.device)
            with torch.inference_mode():
                fmap = trunk(x)  # (b, 512, 7, 7)
            fm = fmap.float().cpu().numpy().reshape(fmap.shape[0], VGG16_POOLED_DIM, N_REGIONS)
            pooled[s:s + len(chunk)] = fm.mean(axis=2)
            regions[s:s + len(chunk)] = fm.transpose(0, 2, 1) @ self.projection
        return pooled, regions
