"""The engine benchmark: structure of the report, costs, specs. Tiny budgets; no timing is
asserted (numbers go to docs/bench-engine.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.artifact import ModelArtifact
from engine.bench import (
    bench_encoder,
    gru_flops,
    model_cost,
    ort_op_profile,
    parse_case,
    run_engine_bench,
    torch_op_profile,
)
from engine.exceptions import EngineError
from engine.model import count_parameters
from tests.engine.backends.conftest import backend_artifact, cuda_available  # noqa: F401 (fixture)

FAST = {"budget_s": 0.0, "block_s": 0.0, "min_rounds": 3, "warmup": 1}


def test_parse_case() -> None:
    assert parse_case("onnxruntime", 2) == ("onnxruntime", 2)
    assert parse_case("onnxruntime@1", 2) == ("onnxruntime", 1)
    with pytest.raises(ValueError, match="thread count"):
        parse_case("torch@0", 2)
    with pytest.raises(ValueError, match="thread count"):
        parse_case("torch@x", 2)


@pytest.mark.parametrize("size", ["small", "default"])
def test_gru_flops_match_the_counter(backend_artifact, size: str) -> None:
    """On the CPU, FlopCounterMode sees the GRU's matmuls: the analytic count must agree."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    art = ModelArtifact.load(backend_artifact(size))
    model, cfg = art.build_model(), art.meta.config
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.gru(torch.zeros(1, cfg.time_steps, cfg.conv_dim))
    assert counter.get_total_flops() == gru_flops(cfg)


def test_model_cost(backend_artifact) -> None:
    art = ModelArtifact.load(backend_artifact("default"))
    cost = model_cost(art)
    assert cost.params == count_parameters(art.build_model())
    assert cost.gru_counted and cost.flops_per_window == sum(cost.by_op.values())
    assert cost.flops_per_window > cost.gru_flops > 0
    assert set(cost.by_op) >= {"aten.convolution", "aten.bmm"}


def test_report(backend_artifact, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "bench.md"
    backends = ["onnxruntime", "onnxruntime@2", "torch"] + ([] if cuda_available() else ["torch-cuda"])
    md = run_engine_bench(backend_artifact(), backends=backends, batch_sizes=(3, 1), threads=1, out_md=out,
                          extra_md="## Extra\n", profile_batches=(1, 2), profile_runs=1, **FAST)
    text = out.read_text()
    assert text.startswith(md) and text.endswith("## Extra\n")
    assert "Command: `python -m engine.bench --model" in md and "--batch-sizes 1,3" in md
    rows = [line for line in md.splitlines() if line.startswith("| onnxruntime-cpu") or line.startswith("| torch-cpu")]
    table = [r for r in rows if r.count("|") == 10]
    assert len(table) == 6  # 3 backends x 2 batch sizes, batch sizes sorted
    assert [int(r.split("|")[2]) for r in table] == [1, 1, 1, 3, 3, 3]
    torch_rows = [r for r in table if r.startswith("| torch-cpu (1 thr)")]
    assert all(r.split("|")[7].strip() == "1" and r.split("|")[9].strip() == "-" for r in torch_rows)
    for r in table:
        if not r.startswith("| torch-cpu"):
            assert float(r.split("|")[7]) > 0 and float(r.split("|")[9]) <= 1e-4  # ratio, parity
    assert "parameters" in md and "MFLOPs per window" in md and "counted by FlopCounterMode" in md
    assert "Speed-up against torch-cpu (1 thr)" in md and "| onnxruntime-cpu-2shards (2 thr) | torch-cpu (1 thr) | " in md
    assert "## Where the time goes" in md and "| GRU |" in md and "aten::" in md
    if not cuda_available():
        assert "Not run here: `torch-cuda` (BackendUnavailable" in md


def test_one_baseline_per_thread_count(backend_artifact) -> None:
    import torch

    before = torch.get_num_threads()
    md = run_engine_bench(backend_artifact(), backends=["onnxruntime@1", "onnxruntime@2", "torch@1", "torch@2"],
                          batch_sizes=(2,), threads=1, profile=False, **FAST)
    torch.set_num_threads(before)
    assert "x torch-cpu (same threads)" in md
    assert "| onnxruntime-cpu (1 thr) | torch-cpu (1 thr) |" in md
    assert "| onnxruntime-cpu-2shards (2 thr) | torch-cpu (2 thr) |" in md


def test_baseline_defaults_to_the_first_backend(backend_artifact) -> None:
    md = run_engine_bench(backend_artifact(), backends=["onnxruntime"], batch_sizes=(2,), threads=1, profile=False,
                          **FAST)
    assert "x onnxruntime-cpu (1 thr)" in md and "Where the time goes" not in md


def test_errors(backend_artifact) -> None:
    with pytest.raises(ValueError, match="no backends"):
        run_engine_bench(backend_artifact(), backends=[], **FAST)
    with pytest.raises(ValueError, match="repeat"):
        run_engine_bench(backend_artifact(), backends=["torch", "torch"], **FAST)
    if not cuda_available():
        with pytest.raises(EngineError, match="no backend could run"):
            run_engine_bench(backend_artifact(), backends=["torch-cuda"], **FAST)


def test_profiles_name_the_operators(backend_artifact) -> None:
    art = ModelArtifact.load(backend_artifact())
    ort = ort_op_profile(art, 2, threads=1, runs=3)
    assert "GRU" in ort and all(v >= 0 for v in ort.values())
    pt = torch_op_profile(art.build_model(), 2, runs=1)
    assert any(k.startswith("aten::") for k in pt)


def test_encoder_section() -> None:
    md = bench_encoder(batch_sizes=(1,), threads=1, budget_s=0.0, min_rounds=1)
    assert "ResNet50" in md and "23.5 M parameters" in md and "GFLOPs per 224x224 image" in md
    assert md.count("\n| cpu | 1 |") == 1
