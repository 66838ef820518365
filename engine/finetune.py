"""Fine-tune the last stage (``layer4``) of the ResNet50 encoder on lesion labels.

The seed paper freezes the convolutional layers and fine-tunes the last ones on the medical
images. Here: ``conv1 .. layer3`` stay frozen; ``layer4`` (and a linear probe on its pooled
output, discarded afterwards) is trained with BCE + Adam to tell lesion from normal on the
**train part** of the image bank (synthetic radiographs, or a ``--data`` set's images),
with horizontal flips of the feature maps as augmentation; the val part gives the lesion
AUROC before and after. The whole ResNet50 is then written as a torchvision state dict
(``encoder.pt`` in the run folder): :class:`engine.imaging.encoder.ResNet50Encoder` loads it
like any local checkpoint, and its version (``resnet50-<sha8>-p0``) differs from the base
encoder's, so its embeddings never mix with another encoder's. The ingest service embeds
studies with the model folder's ``encoder.pt`` when there is one (stream/ingest_service.py).

Costly on a CPU: one layer1-3 pass per image, then ``epochs`` layer4 forward + backward
passes (about 2.4 GFLOPs per image each); off by default.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.synthetic import auroc

log = logging.getLogger(__name__)

_TRUNK_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _training_images(*, data: str | None, n_images: int, size: int, seed: int, max_images: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoder inputs (N, 224, 224, 3), lesion labels (N,) and part indices (N,) of the bank's
    train and val parts (train images augmented like the bank's)."""
    from engine.data.image_bank import (
        PARTS,
        Augment,
        bank_image_spec,
        encoder_input,
        render_bank_image,
        stratified_group_split,
    )

    imgs: list[np.ndarray] = []
    labels: list[bool] = []
    parts: list[int] = []
    if data is None:
        with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
            for i in range(n_images):
                spec = bank_image_spec(i)
                if spec.part == "test":
                    continue
                path = render_bank_image(i, Path(tmp) / f"{i}.dcm", size=size)
                imgs.append(encoder_input(path, spec.augment))
                labels.append(spec.has_lesion)
                parts.append(PARTS.index(spec.part))
        return np.stack(imgs), np.array(labels), np.array(parts)
    from engine.data.loaders import as_slices, open_dataset
    from engine.imaging.encoder import INPUT_SIZE
    from engine.imaging.pixels import letterbox

    ds = open_dataset(data)
    split = stratified_group_split(ds.groups, ds.labels, (0.7, 0.15, 0.15), seed=seed)
    rng = np.random.default_rng(seed + 17)
    for p in (0, 1):
        idx = np.asarray(split[p])
        keep = idx if idx.size <= max_images * (0.7 if p == 0 else 0.15) else rng.choice(
            idx, size=int(max_images * (0.7 if p == 0 else 0.15)), replace=False)
        for i in keep:
            sample = ds[int(i)]
            aug = Augment.draw(rng) if p == 0 else Augment()
            for sl in as_slices(sample.image)[:1]:
                imgs.append(letterbox(aug.apply(sl), INPUT_SIZE))
                labels.append(bool(sample.label))
                parts.append(p)
    return np.stack(imgs), np.array(labels), np.array(parts)


def finetune_last_stage(
    encoder: Any,
    out_path: str | Path,
    *,
    data: str | None = None,
    n_images: int = 256,
    size: int = 384,
    epochs: int = 8,
    seed: int = 0,
    max_images: int = 1500,
    lr: float = 1e-4,
    batch: int = 16,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``encoder``'s ``layer4``; write the full ResNet50 state dict to ``out_path``;
    return a summary (images, epochs, lesion AUROC of the val part before and after, seconds)."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from engine.imaging.encoder import IMAGENET_MEAN, IMAGENET_STD

    t0 = time.perf_counter()
    images, labels, parts = _training_images(data=data, n_images=n_images, size=size, seed=seed, max_images=max_images)
    trunk = encoder.trunk()
    stem = torch.nn.Sequential(*list(trunk.children())[:7]).eval()
    base_layer4 = list(trunk.children())[7]
    x = torch.from_numpy(np.ascontiguousarray(((images - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)))
    with torch.no_grad():  # not inference_mode: layer4 needs these for its backward pass
        h3 = torch.cat([stem(x[s:s + batch]) for s in range(0, x.shape[0], batch)])
    torch.manual_seed(seed)
    layer4 = copy.deepcopy(base_layer4)  # the encoder's own trunk stays untouched
    for p in layer4.parameters():
        p.requires_grad_(True)
    tr, va = np.flatnonzero(parts == 0), np.flatnonzero(parts == 1)
    tr_t = torch.from_numpy(tr)
    y = torch.from_numpy(labels.astype(np.float32))
    with torch.no_grad():
        feats = layer4.eval()(h3).mean(dim=(2, 3))
    mu, sd = feats[tr_t].mean(0), feats[tr_t].std(0) + 1e-6  # the probe sees standardised features
    probe = torch.nn.Linear(feats.shape[1], 1)

    def logits(h: Any) -> Any:
        return probe((layer4(h).mean(dim=(2, 3)) - mu) / sd).squeeze(-1)

    def val_auroc() -> float:
        if va.size == 0 or len(set(labels[va].tolist())) < 2:
            return float("nan")
        layer4.eval()
        with torch.no_grad():
            return auroc(logits(h3[torch.from_numpy(va)]).numpy(), labels[va])

    # fit the probe alone first, so "before" measures the frozen features; then the stage too
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    z_tr = (feats[tr_t] - mu) / sd
    for _ in range(200):
        loss = F.binary_cross_entropy_with_logits(probe(z_tr).squeeze(-1), y[tr_t])
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = val_auroc()
    opt = torch.optim.Adam(list(layer4.parameters()) + list(probe.parameters()), lr=lr)
    rng = np.random.default_rng(seed + 19)
    history = []
    bar = tqdm(total=epochs, desc="fine-tune layer4", unit="epoch", disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            layer4.eval()  # batch norms keep their statistics (tiny batches); weights and affine train
            perm = rng.permutation(tr)
            total = 0.0
            for s in range(0, perm.size, batch):
                i = torch.from_numpy(perm[s:s + batch])
                hb = h3[i]
                if rng.random() < 0.5:
                    hb = hb.flip(-1)
                loss = F.binary_cross_entropy_with_logits(logits(hb), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(i)
            history.append({"epoch": epoch + 1, "loss": round(total / max(1, tr.size), 4), "val_auroc": round(val_auroc(), 4)})
            bar.update(1)
    finally:
        bar.close()
    layer4.eval()
    state = {}
    for name, module in zip(_TRUNK_NAMES, trunk.children()):
        src = layer4 if name == "layer4" else module
        for k, v in src.state_dict().items():
            state[f"{name}.{k}"] = v.detach().clone()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    summary = {"images": int(tr.size), "val_images": int(va.size), "epochs": epochs, "lr": lr,
               "val_lesion_auroc_before": round(before, 4), "val_lesion_auroc_after": round(val_auroc(), 4),
               "history": history, "seconds": round(time.perf_counter() - t0, 2), "checkpoint": str(out)}
    log.info("fine-tuned layer4 on %d images: val lesion AUROC %.3f -> %.3f (%.1f s) -> %s", tr.size, before,
             summary["val_lesion_auroc_after"], summary["seconds"], out)
    return summary

