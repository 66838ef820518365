"""Baselines and ablations of RiskNet, trained and evaluated like it on the same splits.

* :mod:`engine.baselines.workload` - logistic regression on workload features
  (PlayerLoad-style accumulated acceleration, acute:chronic load ratio);
* :mod:`engine.baselines.sequence` - CNN-LSTM and BiLSTM fusion models (no attention);
* :mod:`engine.baselines.vgg16` - a VGG16 image encoder, the image branch the field would
  pick instead of ResNet50 (RiskNet on its embeddings);
* :mod:`engine.baselines.ablations` - RiskNet without attention, without region
  attention, sensors only, image only;
* :mod:`engine.baselines.efficiency` - parameters, FLOPs and CPU inference time.

:data:`MODELS` lists every model of the report (:mod:`engine.report`) with how to build it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from engine.model_config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """One row of the report: how to build the model and what it sees."""

    name: str
    kind: Literal["torch", "workload"]
    build: Callable[[ModelConfig], Any] | None
    image_encoder: Literal["resnet50", "vgg16", "none"]
    uses_sensors: bool
    uses_image: bool
    description: str


def _risknet(cfg: ModelConfig) -> Any:
    from engine.model import RiskNet

    return RiskNet(cfg)


def _ablation(mode: str) -> Callable[[ModelConfig], Any]:
    def build(cfg: ModelConfig) -> Any:
        from engine.baselines.ablations import RiskNetAblation

        return RiskNetAblation(cfg, mode=mode)

    return build


def _cnn_lstm(cfg: ModelConfig) -> Any:
    from engine.baselines.sequence import CNNLSTM

    return CNNLSTM(cfg)


def _bilstm(cfg: ModelConfig) -> Any:
    from engine.baselines.sequence import BiLSTMNet

    return BiLSTMNet(cfg)


def _vgg(cfg: ModelConfig) -> Any:
    from dataclasses import replace

    from engine.baselines.vgg16 import VGG16_POOLED_DIM
    from engine.model import RiskNet

    return RiskNet(replace(cfg, img_dim=VGG16_POOLED_DIM))


FULL_MODEL = "RiskNet (ResNet50-BiGRU-attention)"

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(FULL_MODEL, "torch", _risknet, "resnet50", True, True,
              "the served model: conv front end, 2-layer BiGRU, image-queried time attention, region attention"),
    ModelSpec("Logistic regression, workload", "workload", None, "none", True, False,
              "PlayerLoad of the window, acute (5 min) and chronic (session) load rate, ACWR, session load"),
    ModelSpec("CNN-LSTM", "torch", _cnn_lstm, "resnet50", True, True,
              "same conv front end, 2-layer LSTM, last state + ResNet50 pooled embedding, no attention"),
    ModelSpec("BiLSTM", "torch", _bilstm, "resnet50", True, True,
              "4x average-pooled frames, 2-layer BiLSTM, mean+max pooling + ResNet50 pooled embedding"),
    ModelSpec("VGG16 image branch", "torch", _vgg, "vgg16", True, True,
              "RiskNet with VGG16 (conv5) embeddings instead of ResNet50"),
    ModelSpec("Ablation: no attention", "torch", _ablation("no_attention"), "resnet50", True, True,
              "RiskNet with mean pooling over time steps and over image regions"),
    ModelSpec("Ablation: no region attention", "torch", _ablation("no_region_attention"), "resnet50", True, True,
              "RiskNet with mean pooling over image regions (time attention kept)"),
    ModelSpec("Ablation: sensors only", "torch", _ablation("sensors_only"), "none", True, False,
              "RiskNet never given an image"),
    ModelSpec("Ablation: image only", "torch", _ablation("image_only"), "resnet50", False, True,
              "RiskNet given the image and no sensor data"),
)


def model_spec(name: str) -> ModelSpec:
    for m in MODELS:
        if m.name == name:
            return m
    raise KeyError(f"no model {name!r}; one of {[m.name for m in MODELS]}")
