"""Ingest throughput on CPU: studies/s and images/s, split into read+decode, encode, store.

``python -m engine.imaging.bench [--studies 16] [--size 1024] [--redis-url URL] [--real]``

Writes synthetic CR studies (one image each, ``size`` x ``size``, 12-bit) to a temporary
folder, then times :func:`ingest_paths` over the folder: once to build the encoder and
warm up (not counted), then ``--repeat`` timed runs (median reported). ``--real`` also
times the real pydicom-data radiographs (RG3 lower leg CR 1760^2, uncompressed and
JPEG 2000; MR2 shoulder MR 1024^2; a 120-frame US cine, JPEG baseline) one study at a time. Without ``--redis-url`` the
store step is skipped (``store=None``).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.imaging.encoder import ResNet50Encoder
from engine.imaging.ingest import IngestReport, ingest_paths
from engine.imaging.synthetic import render_radiograph

REAL_FILES = ("RG3_UNCI.dcm", "RG3_J2KR.dcm", "MR2_UNCI.dcm", "color3d_jpeg_baseline.dcm")


@dataclass(frozen=True)
class BenchResult:
    label: str
    studies: int
    images: int
    seconds: float
    decode_s: float
    encode_s: float
    store_s: float

    @property
    def studies_per_s(self) -> float:
        return self.studies / self.seconds if self.seconds else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        ms = 1000.0 / max(self.images, 1)
        return (
            f"| {self.label} | {self.studies} | {self.images} | {self.studies_per_s:.2f} | {self.images_per_s:.2f} | "
            f"{self.decode_s * ms:.0f} | {self.encode_s * ms:.0f} | {self.store_s * 1000.0 / max(self.studies, 1):.1f} |"
        )


HEADER = (
    "| input | studies | images | studies/s | images/s | read+decode ms/img | encode ms/img | store ms/study |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _median_run(label: str, paths: list[Path], *, encoder: ResNet50Encoder, store: Any, repeat: int) -> BenchResult:
    runs: list[IngestReport] = [
        ingest_paths(paths, "bench-athlete", store=store, encoder=encoder) for _ in range(max(1, repeat))
    ]
    mid = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return BenchResult(
        label=label, studies=len(mid.studies), images=mid.images, seconds=mid.seconds,
        decode_s=mid.decode_seconds, encode_s=mid.encode_seconds, store_s=mid.store_seconds,
    )


def run_benchmark(
    *,
    studies: int = 16,
    size: int = 1024,
    repeat: int = 3,
    store: Any = None,
    real: bool = False,
    encoder: ResNet50Encoder | None = None,
    workdir: Path | None = None,
) -> list[BenchResult]:
    """Time ingest of synthetic (and optionally real) studies; returns one result per input set."""
    encoder = encoder or ResNet50Encoder()
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        files = [
            render_radiograph(folder / f"study{i:03d}.dcm", seed=i, size=size, anatomy="knee" if i % 2 else "lower_leg")
            for i in range(studies)
        ]
        ingest_paths(files[:1], "bench-athlete", store=None, encoder=encoder)  # build + warm up
        label = f"synthetic CR {size}x{size}, 1 image/study"
        results.append(_median_run(label, files, encoder=encoder, store=store, repeat=repeat))
    if real:
        from pydicom.data import get_testdata_file

        for name in REAL_FILES:
            path = get_testdata_file(name, download=False)
            if path is None:
                continue
            results.append(_median_run(name, [Path(path)], encoder=encoder, store=store, repeat=repeat))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ingest throughput of the imaging pipeline (CPU).")
    parser.add_argument("--studies", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default=None, help="store into this Redis (default: no store step)")
    parser.add_argument("--real", action="store_true", help="also time RG3 (CR) and MR2 (MR) from pydicom-data")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    store = None
    if args.redis_url:
        import redis

        from engine.imaging.store import RedisEmbeddingStore

        store = RedisEmbeddingStore(redis.Redis.from_url(args.redis_url))
    results = run_benchmark(studies=args.studies, size=args.size, repeat=args.repeat, store=store, real=args.real)
    print(HEADER)
    for r in results:
        print(r.row())
    for r in results:
        print({**asdict(r), "studies_per_s": round(r.studies_per_s, 3), "images_per_s": round(r.images_per_s, 3)})


if __name__ == "__main__":
    main()
