"""The frozen ResNet50 image encoder: pooled (2048,) and region (49, 64) features per image.

* Backbone: torchvision ``resnet50`` up to its last stage (``layer4``), eval mode, every
  parameter frozen. Weights come from a local checkpoint when one is given, else from a
  seeded random init (``torch.manual_seed(init_seed)`` inside a forked RNG), so every
  process builds the same encoder. Nothing is downloaded.
* Input: (N, 224, 224, 3) float32 in [0, 1] (:func:`engine.imaging.pixels.letterbox`),
  normalised with the ImageNet mean and standard deviation.
* pooled = global average of the 7 x 7 x 2048 map; regions = each of the 49 cells'
  2048-d vector times a fixed (2048, 64) matrix drawn from
  ``numpy.random.default_rng(projection_seed)`` and scaled by 1/sqrt(2048).
* ``version`` names weights and projection: ``resnet50-rand0-p0`` or
  ``resnet50-<first 8 hex of the checkpoint's SHA-256>-p0``. A new version never mixes
  with stored embeddings of another one (it is part of the Redis key).

torch is imported lazily, when the first batch is encoded.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM, ImageFeatures
from engine.imaging.exceptions import EncoderError

INPUT_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def projection_matrix(seed: int) -> np.ndarray:
    """The fixed (2048, 64) float32 region projection of ``seed``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((POOLED_DIM, REGION_DIM)) / np.sqrt(POOLED_DIM)).astype(np.float32)


def checkpoint_digest(path: Path) -> str:
    """First 8 hex digits of the SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:8]


def encoder_version(checkpoint: Path | None = None, *, init_seed: int = 0, projection_seed: int = 0) -> str:
    """The version string an encoder with these settings has (reads the checkpoint to hash it)."""
    source = checkpoint_digest(Path(checkpoint)) if checkpoint is not None else f"rand{init_seed}"
    return f"resnet50-{source}-p{projection_seed}"


def _state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderError(path, f"cannot load the ResNet50 checkpoint ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise EncoderError(path, "checkpoint is not a state dict")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in obj.items()}


class ResNet50Encoder:
    """Batch ResNet50 feature extractor. Thread-safe; builds itself on first use."""

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        init_seed: int = 0,
        projection_seed: int = 0,
        device: str = "cpu",
        batch_size: int = 16,
    ) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise EncoderError(self.checkpoint, "ResNet50 checkpoint file not found")
        self.init_seed = init_seed
        self.projection_seed = projection_seed
        self.device = device
        self.batch_size = max(1, batch_size)
        self.version = encoder_version(self.checkpoint, init_seed=init_seed, projection_seed=projection_seed)
        self.projection = projection_matrix(projection_seed)
        self._trunk: Any = None
        self._lock = threading.Lock()

    def trunk(self) -> Any:
        """The frozen torch module (conv1 .. layer4), built once."""
        with self._lock:
            if self._trunk is None:
                self._trunk = self._build()
            return self._trunk

    def _build(self) -> Any:
        import torch
        import torchvision

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            model = torchvision.models.resnet50(weights=None)
        if self.checkpoint is not None:
            state = _state_dict(self.checkpoint)
            missing, _unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing:
                raise EncoderError(self.checkpoint, f"checkpoint lacks {len(missing)} ResNet50 weights, e.g. {missing[:3]}")
        trunk = torch.nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc
        for p in trunk.parameters():
            p.requires_grad_(False)
        return trunk.eval().to(self.device)

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 224, 224, 3) in [0, 1] -> pooled (N, 2048), regions (N, 49, 64), float32."""
        import torch

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"images must be (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), got {images.shape}")
        n = images.shape[0]
        pooled = np.empty((n, POOLED_DIM), dtype=np.float32)
        regions = np.empty((n, N_REGIONS, REGION_DIM), dtype=np.float32)
        if n == 0:
            return pooled, regions
        trunk = self.trunk()
        for start in range(0, n, self.batch_size):
            chunk = (images[start:start + self.batch_size] - IMAGENET_MEAN) / IMAGENET_STD
            x = torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))).to(self.device)
            with torch.inference_mode():
                fmap = trunk(x)  # (b, 2048, 7, 7)
            fm = fmap.float().cpu().numpy().reshape(fmap.shape[0], POOLED_DIM, N_REGIONS)
            pooled[start:start + len(chunk)] = fm.mean(axis=2)
            regions[start:start + len(chunk)] = fm.transpose(0, 2, 1) @ self.projection
        return pooled, regions

    def features(self, images: np.ndarray) -> list[ImageFeatures]:
        """One :class:`ImageFeatures` per image."""
        pooled, regions = self.encode(images)
        return [ImageFeatures(pooled=p, regions=r, encoder_version=self.version) for p, r in zip(pooled, regions)]
