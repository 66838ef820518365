from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.artifact import ModelArtifact
from engine.evaluate import encoder_for_artifact
from engine.imaging.encoder import ResNet50Encoder
from engine.train import ENCODER_FILE, TrainConfig, train


def test_finetuned_encoder_is_saved_used_and_found_again(tmp_path: Path) -> None:
    base = ResNet50Encoder()
    before = {k: v.clone() for k, v in base.trunk()[7].state_dict().items()}
    cfg = replace(TrainConfig.tiny(), n_windows=160, epochs=1, n_boot=20, finetune_last_stage=True, finetune_epochs=1,
                  bank_size_px=96)
    out = train(tmp_path / "run", config=cfg, bank_cache_dir=tmp_path / "cache", progress=False)
    ckpt = out / ENCODER_FILE
    assert ckpt.is_file()
    tuned = ResNet50Encoder(ckpt)
    art = ModelArtifact.load(out)
    assert art.meta.encoder_version == tuned.version != base.version
    ft = art.meta.training["image_bank"]["finetune"]
    assert ft["images"] > 0 and ft["epochs"] == 1 and "val_lesion_auroc_after" in ft
    # the bank of the run was embedded with the fine-tuned encoder, cached under its version
    assert (tmp_path / "cache" / tuned.version).is_dir()
    assert encoder_for_artifact(art).version == tuned.version
    # only layer4 changed; the encoder that was fine-tuned is left as it was
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    assert not np.allclose(tuned.encode(x)[0], base.encode(x)[0])
    for k, v in base.trunk()[7].state_dict().items():
        assert torch.equal(v, before[k]), k
    t3, b3 = tuned.trunk()[6].state_dict(), base.trunk()[6].state_dict()
    assert all(torch.equal(t3[k], b3[k]) for k in b3)
