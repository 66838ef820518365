"""Engine benchmark: windows/s and latency per backend and batch size, in ONE interleaved run.

    md = run_engine_bench("models/default", backends=("onnxruntime", "torch"),
                          batch_sizes=(1, 8, 32, 128, 512), threads=2, out_md="docs/bench-engine.md")
    md += bench_encoder(batch_sizes=(1, 8), threads=2)

or ``python -m engine.bench --model models/default --out docs/bench-engine.md``.

Method. The machine is shared and noisy, so the backends are timed side by side: for each
batch size, every round runs each backend once on the same inputs (the order rotates
each round), until ``budget_s`` has passed and at least ``min_rounds`` rounds ran. A
sample is one ``Backend.infer`` call, numpy in -> numpy out (host<->device copies
included for GPU backends). Reported: median (p50) and p99 latency, windows/s = batch /
p50, and the speed-up against ``baseline`` as the median of the per-round ratios (paired,
so a slow moment slows both sides of a ratio). Each backend's outputs are compared with
the baseline's on the same inputs (max abs difference over probability and attention).

Costs. Parameters, and FLOPs per window from ``torch.utils.flop_counter.FlopCounterMode``
on the CPU model (2 FLOPs per multiply-add; matmuls and convolutions only, element-wise
operations are not counted). The counter sees the CPU GRU's matmuls; where it does not
(0 counted for the GRU), the GRU's FLOPs are added analytically (:func:`gru_flops`), and
the table says which.

Where the time goes: per-operator shares of ONNX Runtime (its profiler) and of torch eager
(``torch.profiler``, self CPU time) at batch 1 and 32.

Backend specs are those of :func:`engine.backends.base.get_backend` plus an optional
``@N`` suffix for that backend's thread count (``onnxruntime@1``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.artifact import ModelArtifact
from engine.exceptions import EngineError

DEFAULT_BATCH_SIZES = (1, 8, 32, 128, 512)
PROFILE_BATCHES = (1, 32)


# --------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class ModelCost:
    params: int
    flops_per_window: int           # counted + analytic GRU if the counter missed it
    by_op: dict[str, int]           # counter's FLOPs per aten op (batch 1)
    gru_flops: int                  # analytic GRU FLOPs per window
    gru_counted: bool               # whether FlopCounterMode saw the GRU's matmuls


def gru_flops(config: Any) -> int:
    """Analytic FLOPs of RiskNet's BiGRU for one window: per layer, direction and step,
    the input and recurrent matmuls (2 * 3h * (in + h)); gates' element-wise ops excluded."""
    h, steps = config.hidden, config.time_steps
    total, d_in = 0, config.conv_dim
    for _ in range(config.gru_layers):
        total += 2 * steps * 2 * 3 * h * (d_in + h)  # 2 directions
        d_in = 2 * h
    return total


def model_cost(artifact: ModelArtifact | str | os.PathLike[str]) -> ModelCost:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from engine.model import count_parameters, example_inputs

    art = artifact if isinstance(artifact, ModelArtifact) else ModelArtifact.load(artifact)
    model = art.build_model()
    cfg = art.meta.config
    inputs = example_inputs(1, cfg)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(*inputs)
        gru_counter = FlopCounterMode(display=False)
        with gru_counter:
            model.gru(torch.zeros(1, cfg.time_steps, cfg.conv_dim))
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    counted = int(counter.get_total_flops())
    analytic = gru_flops(cfg)
    gru_counted = int(gru_counter.get_total_flops()) > 0
    total = counted if gru_counted else counted + analytic
    return ModelCost(params=count_parameters(model), flops_per_window=total, by_op=by_op, gru_flops=analytic,
                     gru_counted=gru_counted)


def untrained_artifact(directory: str | os.PathLike[str] | None = None, *, seed: int = 0) -> ModelArtifact:
    """A seeded, untrained default-config RiskNet artifact (identity normalisation): the
    worker's architecture, for timing (speed does not depend on the weights). Saved to
    ``directory`` when given and the ONNX export can run (onnx, onnxruntime), else in memory
    (enough for the torch backends)."""
    import torch

    from engine.model import RiskNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RiskNet()
    n = model.config.n_channels
    art = ModelArtifact.from_model(
        model, norm_mean=np.zeros(n), norm_std=np.ones(n), hop=50, hz=100.0, encoder_version="untrained",
        training={"kind": f"untrained (seed {seed}), for benchmarks"},
    )
    if directory is not None:
        try:
            art.save(directory)
        except ImportError as exc:
            print(f"untrained artifact kept in memory ({exc}); ONNX Runtime cannot be benchmarked", file=sys.stderr)
    return art


# --------------------------------------------------------------------------- timing
@dataclass
class BenchRow:
    backend: str
    batch: int
    samples: int
    p50_ms: float
    p99_ms: float
    windows_per_s: float
    ratio: float | None             # paired median speed-up against the baseline (None: is the baseline)
    max_abs_diff: float | None      # outputs vs the baseline's on the same inputs
    vs: str = ""                    # the baseline this row's ratio and difference are against


@dataclass
class _Case:
    key: str        # as given, e.g. "onnxruntime@1"
    spec: str
    threads: int
    backend: Any = None
    label: str = ""
    error: str | None = None


def parse_case(spec: str, default_threads: int) -> tuple[str, int]:
    """``"onnxruntime@1"`` -> ("onnxruntime", 1); no suffix -> the default thread count."""
    name, _, t = spec.partition("@")
    if not t:
        return name, default_threads
    if not t.isdigit() or int(t) < 1:
        raise ValueError(f"bad thread count in backend spec {spec!r}")
    return name, int(t)


def _inputs(b: int, cfg: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, cfg.window, cfg.n_channels), dtype=np.float32)
    img = rng.random((b, cfg.img_dim), dtype=np.float32)
    regions = rng.standard_normal((b, cfg.n_regions, cfg.region_dim), dtype=np.float32)
    has = (rng.random(b) < 0.5).astype(np.float32)
    return x, img, regions, has


def _open(case: _Case, art: ModelArtifact, max_batch: int) -> None:
    from engine.backends.base import BackendUnavailable, get_backend

    try:
        be = get_backend(case.spec, art, threads=case.threads, max_batch=max_batch)
        be.activate()
    except (BackendUnavailable, EngineError, ValueError, RuntimeError) as exc:
        case.error = f"{type(exc).__name__}: {exc}"
        case.label = case.key
        return
    case.backend = be
    label = be.label
    if getattr(be, "device", "cpu") == "cpu" or label.startswith("onnxruntime-cpu"):
        label += f" ({case.threads} thr)"
    case.label = label


def run_engine_bench(
    artifact_dir: str | os.PathLike[str] | ModelArtifact,
    *,
    backends: tuple[str, ...] | list[str] = ("onnxruntime", "torch"),
    batch_sizes: tuple[int, ...] | list[int] = DEFAULT_BATCH_SIZES,
    threads: int = 2,
    out_md: str | os.PathLike[str] | None = None,
    baseline: str | None = "torch",
    budget_s: float = 2.0,
    block_s: float = 0.05,
    min_rounds: int = 10,
    max_rounds: int = 5000,
    warmup: int = 3,
    seed: int = 0,
    profile: bool = True,
    profile_batches: tuple[int, ...] = PROFILE_BATCHES,
    profile_runs: int = 5,
    command: str | None = None,
    extra_md: str = "",
) -> str:
    """Benchmark ``backends`` on the artifact; return the Markdown report (and write it to
    ``out_md`` with ``extra_md`` appended, e.g. :func:`bench_encoder`'s section).

    ``baseline`` is the spec the ratios are against (default ``torch``, i.e. torch eager
    on the CPU; it must be one of ``backends``, else the first backend is used). Backends
    that cannot run here are listed with the reason instead of failing the run.
    """
    if not backends:
        raise ValueError("no backends to benchmark")
    batch_sizes = tuple(sorted({int(b) for b in batch_sizes}))
    if batch_sizes[0] < 1:
        raise ValueError("batch sizes must be >= 1")
    art = artifact_dir if isinstance(artifact_dir, ModelArtifact) else ModelArtifact.load(artifact_dir)
    cfg = art.meta.config
    cases = [_Case(s, *parse_case(s, threads)) for s in backends]
    if len({c.key for c in cases}) != len(cases):
        raise ValueError(f"backend specs repeat: {list(backends)}")
    started = datetime.now(timezone.utc)
    load_before = _loadavg()
    for c in cases:
        _open(c, art, max(batch_sizes))
    live = [c for c in cases if c.backend is not None]
    if not live:
        raise EngineError("no backend could run: " + "; ".join(f"{c.spec}: {c.error}" for c in cases))
    bases = [c for c in live if baseline in (c.key, c.spec)] or [live[0]]
    refs = {c.key: next((bc for bc in bases if bc.threads == c.threads), bases[0]) for c in live}
    for bc in bases:
        refs[bc.key] = bc
    rows: list[BenchRow] = []
    t_start = time.perf_counter()
    try:
        for b in batch_sizes:
            inputs = _inputs(b, cfg, seed + b)
            outs = {}
            for c in live:
                for _ in range(warmup):
                    outs[c.key] = c.backend.infer(*inputs)
            rows += _time_batch(live, refs, b, inputs, outs, budget_s, min_rounds, max_rounds, block_s)
        profiles = _profiles(art, live, tuple(profile_batches), profile_runs) if profile else ""
    finally:
        for c in live:
            c.backend.deactivate()
    wall_s = time.perf_counter() - t_start
    cost = model_cost(art)
    md = _report(art, cost, cases, bases, rows, batch_sizes=batch_sizes, threads=threads, budget_s=budget_s,
                 block_s=block_s,
                 started=started, wall_s=wall_s, load=(load_before, _loadavg()), profiles=profiles,
                 command=command or _default_command(art, backends, batch_sizes, threads, out_md))
    if out_md is not None:
        out = Path(out_md)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md + ("\n" + extra_md if extra_md else ""), encoding="utf-8")
    return md


def _torch_threads(c: _Case) -> None:
    """torch's CPU thread count is process-wide: set it to this case's before its block."""
    if c.spec in ("torch", "torch-cpu"):
        import torch

        if torch.get_num_threads() != c.threads:
            torch.set_num_threads(c.threads)


def _time_batch(live: list[_Case], refs: dict[str, _Case], b: int, inputs: tuple[np.ndarray, ...], outs: dict[str, Any],
                budget_s: float, min_rounds: int, max_rounds: int, block_s: float) -> list[BenchRow]:
    """Rounds of blocks: in each round every backend runs one untimed settling call, then
    timed calls for ``block_s`` (at least one). Blocks keep one backend's idle threads (ONNX
    Runtime's spinning pool, torch's OpenMP team) from eating the next backend's calls, as
    call-by-call alternation on a 2-core machine does; the settling call absorbs the switch."""
    times: dict[str, list[float]] = {c.key: [] for c in live}
    blocks: dict[str, list[float]] = {c.key: [] for c in live}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        r = 0
        while r < max_rounds and (r < min_rounds or time.perf_counter() - t0 < budget_s):
            k = r % len(live)
            for c in live[k:] + live[:k]:
                _torch_threads(c)
                c.backend.infer(*inputs)  # settle
                ts: list[float] = []
                start = time.perf_counter()
                while not ts or time.perf_counter() - start < block_s:
                    s = time.perf_counter()
                    c.backend.infer(*inputs)
                    ts.append(time.perf_counter() - s)
                times[c.key] += ts
                blocks[c.key].append(float(np.median(ts)))
            r += 1
    finally:
        if gc_was:
            gc.enable()
    rows = []
    for c in live:
        base = refs[c.key]
        ref = outs[base.key]
        t = np.asarray(times[c.key])
        p50 = float(np.median(t))
        ratio = None if c is base else float(np.median(np.asarray(blocks[base.key]) / np.asarray(blocks[c.key])))
        diff = None
        if c is not base:
            o = outs[c.key]
            diff = max(float(np.max(np.abs(o.prob - ref.prob))), float(np.max(np.abs(o.time_attn - ref.time_attn))),
                       float(np.max(np.abs(o.region_attn - ref.region_attn))))
        rows.append(BenchRow(backend=c.label, batch=b, samples=len(t), p50_ms=p50 * 1e3,
                             p99_ms=float(np.percentile(t, 99)) * 1e3, windows_per_s=b / p50, ratio=ratio,
                             max_abs_diff=diff, vs=base.label))
    return rows


# --------------------------------------------------------------------------- profiles
def ort_op_profile(artifact: ModelArtifact, batch: int, *, threads: int = 2, runs: int = 30,
                   seed: int = 0) -> dict[str, float]:
    """ONNX Runtime kernel time per op type, microseconds per run (its profiler; the
    warm-up runs are left out)."""
    import onnxruntime as ort

    from engine.export import INPUT_NAMES

    warm = 3
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(artifact.onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        feed = dict(zip(INPUT_NAMES, _inputs(batch, artifact.meta.config, seed)))
        for _ in range(warm + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "Session" and e.get("name") == "model_run")[warm:]
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            if any(a <= e["ts"] <= b for a, b in spans):
                per_op[e["args"]["op_name"]] += float(e["dur"])
    return {k: v / max(len(spans), 1) for k, v in per_op.items()}


def torch_op_profile(model: Any, batch: int, *, runs: int = 5, seed: int = 0) -> dict[str, float]:
    """torch eager (CPU) self time per aten op, microseconds per run."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cfg = model.config
    inputs = [torch.from_numpy(a) for a in _inputs(batch, cfg, seed)]
    with torch.inference_mode():
        model(*inputs)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(*inputs)
    per_op = {e.key: float(e.self_cpu_time_total) / runs for e in prof.key_averages() if e.self_cpu_time_total > 0}
    return per_op


def _share_table(title: str, profiles: dict[int, dict[str, float]], top: int = 8) -> str:
    totals = {b: sum(p.values()) or 1.0 for b, p in profiles.items()}
    score: dict[str, float] = defaultdict(float)
    for b, p in profiles.items():
        for k, v in p.items():
            score[k] += v / totals[b]
    keys = sorted(score, key=score.get, reverse=True)[:top]  # type: ignore[arg-type]
    bs = sorted(profiles)
    lines = [f"**{title}**", "", "| op | " + " | ".join(f"batch {b}: µs/run (share)" for b in bs) + " |",
             "| --- | " + " | ".join("---:" for _ in bs) + " |"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(
            f"{profiles[b].get(k, 0.0):.0f} ({100 * profiles[b].get(k, 0.0) / totals[b]:.0f}%)" for b in bs) + " |")
    lines.append("| (all ops) | " + " | ".join(f"{totals[b]:.0f}" for b in bs) + " |")
    return "\n".join(lines)


def _profiles(art: ModelArtifact, live: list[_Case], batches: tuple[int, ...], runs: int) -> str:
    parts = []
    specs = {c.spec for c in live}
    ort_case = next((c for c in live if c.spec in ("onnxruntime", "onnxruntime-cpu")), None)
    if ort_case is not None:
        prof = {b: ort_op_profile(art, b, threads=ort_case.threads, runs=6 * runs) for b in batches}
        parts.append(_share_table(f"ONNX Runtime ({ort_case.threads} threads), kernel time by op type", prof))
    if specs & {"torch", "torch-cpu"}:
        model = art.build_model()
        _torch_threads(next(c for c in live if c.spec in ("torch", "torch-cpu")))
        prof = {b: torch_op_profile(model, b, runs=runs) for b in batches}
        parts.append(_share_table("torch eager (CPU), self time by op", prof))
    if not parts:
        return ""
    return ("## Where the time goes\n\nProfiler runs (separate from the timed runs above; profilers add "
            "overhead, read the shares).\n\n" + "\n\n".join(parts) + "\n")


# --------------------------------------------------------------------------- report
def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> str:
    out = [f"Python {platform.python_version()}"]
    for mod in ("numpy", "torch", "onnxruntime", "tensorrt"):
        m = sys.modules.get(mod)
        if m is not None:
            out.append(f"{mod} {getattr(m, '__version__', '?')}")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        out.append(f"GPU {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    return ", ".join(out)


def _default_command(art: ModelArtifact, backends: Any, batch_sizes: tuple[int, ...], threads: int,
                     out_md: Any) -> str:
    parts = ["python -m engine.bench", "--model", str(art.directory or "<in-memory>"),
             "--backends", ",".join(backends), "--batch-sizes", ",".join(map(str, batch_sizes)),
             "--threads", str(threads)]
    if out_md is not None:
        parts += ["--out", str(out_md)]
    return " ".join(shlex.quote(p) if p != "python -m engine.bench" else p for p in parts)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _report(art: ModelArtifact, cost: ModelCost, cases: list[_Case], bases: list[_Case], rows: list[BenchRow], *,
            batch_sizes: tuple[int, ...], threads: int, budget_s: float, block_s: float, started: datetime, wall_s: float,
            load: tuple[Any, Any], profiles: str, command: str) -> str:
    cfg = art.meta.config
    gru_note = ("counted by FlopCounterMode" if cost.gru_counted
                else f"not seen by FlopCounterMode: {cost.gru_flops / 1e6:.2f} M added analytically")
    ops = ", ".join(f"{k.removeprefix('aten.')} {v / 1e6:.2f} M" for k, v in sorted(cost.by_op.items()))
    if len(bases) == 1:
        base_name = bases[0].label
        vs_text = f"**x {base_name}**"
    else:
        base_name = bases[0].label.split(" (")[0] + " (same threads)"
        vs_text = (f"**x {base_name}**: against the baseline with the row's thread count ("
                   + ", ".join(b.label for b in bases) + ")")
    lb, la = load
    load_s = (f"load average {lb[0]:.2f} before, {la[0]:.2f} after" if lb and la else "load average n/a")
    lines = [
        "# Engine benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"- Run {started.isoformat(timespec='seconds')}, {wall_s:.0f} s; {_cpu_name()}, {os.cpu_count()} CPUs "
        f"({load_s}); {_versions()}.",
        f"- Model {art.meta.model_version}: window {cfg.window} x {cfg.n_channels}, downsample {cfg.downsample} "
        f"-> {cfg.time_steps} BiGRU steps, hidden {cfg.hidden}, {cfg.gru_layers} layers; "
        f"**{cost.params:,} parameters**, **{cost.flops_per_window / 1e6:.2f} MFLOPs per window** "
        f"(2 per multiply-add; {ops}; the BiGRU's {cost.gru_flops / 1e6:.2f} M are {gru_note}).",
        f"- Interleaved rounds for >= {budget_s:g} s per batch size: in each round every backend (rotating "
        f"order) runs one untimed settling call, then timed calls for {block_s * 1e3:g} ms (at least one); "
        "p50/p99 over the timed calls (numpy in, numpy out); windows/s = batch / p50; "
        f"{vs_text} = median over rounds of the ratio of the two backends' block medians "
        f"(paired). Max |diff| = largest absolute difference of any output (probability, attention) from "
        "that baseline on the same inputs.",
        "",
        f"| backend | batch | calls | p50 ms | p99 ms | windows/s | x {base_name} | GFLOP/s | max abs diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        gflops = r.windows_per_s * cost.flops_per_window / 1e9
        lines.append(
            f"| {r.backend} | {r.batch} | {r.samples} | {r.p50_ms:.3g} | {r.p99_ms:.3g} | {_fmt(r.windows_per_s)} | "
            f"{'1' if r.ratio is None else f'{r.ratio:.2f}'} | {gflops:.2g} | "
            f"{'-' if r.max_abs_diff is None else f'{r.max_abs_diff:.1e}'} |")
    down = [c for c in cases if c.backend is None]
    if down:
        lines += ["", "Not run here: " + "; ".join(f"`{c.key}` ({c.error})" for c in down) + "."]
    # ratio summary: each non-baseline backend at each batch size, one line
    lines += ["", f"Speed-up against {base_name} (paired median), by batch size:", ""]
    by_backend: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r.ratio is not None:
            by_backend[(r.backend, r.vs)][r.batch] = r.ratio
    lines.append("| backend | against | " + " | ".join(f"b={b}" for b in batch_sizes) + " |")
    lines.append("| --- | --- | " + " | ".join("---:" for _ in batch_sizes) + " |")
    for (name, vs), d in by_backend.items():
        lines.append(f"| {name} | {vs} | " + " | ".join(f"{d[b]:.2f}x" if b in d else "-" for b in batch_sizes) + " |")
    lines.append("")
    if profiles:
        lines += [profiles]
    return "\n".join(lines)


# --------------------------------------------------------------------------- image encoder
def bench_encoder(
    *,
    batch_sizes: tuple[int, ...] | list[int] = (1, 8),
    device: str = "cpu",
    threads: int | None = 2,
    budget_s: float = 3.0,
    min_rounds: int = 3,
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> str:
    """ResNet50 image encoder (``engine.imaging.encoder.ResNet50Encoder.encode``: normalise,
    trunk, pooled + region projection) images/s per batch size; a Markdown section."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from engine.imaging.encoder import INPUT_SIZE, ResNet50Encoder

    if device.startswith("cuda") and not torch.cuda.is_available():
        return "## Image encoder (ResNet50)\n\nNot run: device " + device + " requested but CUDA is not available.\n"
    if threads is not None and device == "cpu":
        torch.set_num_threads(int(threads))
    enc = ResNet50Encoder(checkpoint, device=device, batch_size=max(batch_sizes))
    trunk = enc.trunk()
    params = sum(p.numel() for p in trunk.parameters())
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            trunk(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, device=device))
    flops = int(counter.get_total_flops())
    rng = np.random.default_rng(seed)
    rows = []
    for b in sorted(set(int(b) for b in batch_sizes)):
        images = rng.random((b, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        enc.encode(images)  # warm-up
        times = []
        t0 = time.perf_counter()
        while len(times) < min_rounds or time.perf_counter() - t0 < budget_s:
            s = time.perf_counter()
            enc.encode(images)
            times.append(time.perf_counter() - s)
        t = np.asarray(times)
        p50 = float(np.median(t))
        rows.append(f"| {device} | {b} | {len(t)} | {p50 * 1e3:.0f} | {float(t.min()) * 1e3:.0f} | {b / p50:.1f} | "
                    f"{b / p50 * flops / 1e9:.0f} |")
    thr = f"{threads} threads" if device == "cpu" and threads is not None else device
    return "\n".join([
        "## Image encoder (ResNet50, once per study at ingest)",
        "",
        f"`engine.imaging.encoder.ResNet50Encoder` ({enc.version}, {thr}): {params / 1e6:.1f} M parameters "
        f"(trunk), {flops / 1e9:.1f} GFLOPs per 224x224 image (FlopCounterMode, 2 per multiply-add). "
        "One sample = one `encode()` call (normalisation, trunk, pooled and 7x7 region projection).",
        "",
        "| device | batch | calls | p50 ms | min ms | images/s | GFLOP/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ])


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model artifact folder")
    p.add_argument("--untrained", action="store_true",
                   help="write a seeded untrained default-config artifact to --model first if it has none")
    p.add_argument("--backends", default="onnxruntime,torch", help="comma-separated backend specs (spec[@threads])")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", default="torch")
    p.add_argument("--budget-s", type=float, default=2.0, help="seconds of interleaved rounds per batch size")
    p.add_argument("--block-s", type=float, default=0.05, help="timed calls per backend and round, in seconds")
    p.add_argument("--min-rounds", type=int, default=10)
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator profiles")
    p.add_argument("--encoder-batch-sizes", default="1,8", help="'' to skip the ResNet50 encoder")
    p.add_argument("--encoder-device", default="cpu")
    p.add_argument("--out", help="write the Markdown report here")
    a = p.parse_args(argv)
    command = "python -m engine.bench " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    model: str | ModelArtifact = a.model
    if a.untrained and not (Path(a.model) / "meta.json").is_file():
        model = untrained_artifact(a.model)
    extra = ""
    if a.encoder_batch_sizes:
        extra = bench_encoder(batch_sizes=[int(b) for b in a.encoder_batch_sizes.split(",")],
                              device=a.encoder_device, threads=a.threads)
    md = run_engine_bench(model, backends=[s for s in a.backends.split(",") if s],
                          batch_sizes=[int(b) for b in a.batch_sizes.split(",")], threads=a.threads,
                          out_md=a.out, baseline=a.baseline, budget_s=a.budget_s, block_s=a.block_s, min_rounds=a.min_rounds,
                          profile=not a.no_profile, command=command, extra_md=extra)
    print(md + ("\n" + extra if extra else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
