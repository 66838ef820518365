"""``injury-monitor``: one console script, one subcommand per service or task.

Flags override environment variables (``INJURY_MONITOR_<FIELD>``), which override defaults.
This module only parses arguments and builds settings; the work is done by library functions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from schemas.exceptions import MonitorError


def _settings(cls, args: argparse.Namespace, **extra):
    given = {k: v for k, v in vars(args).items() if v is not None and k in cls.model_fields}
    given.update({k: v for k, v in extra.items() if v is not None})
    return cls(**given)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _service_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka-url", dest="kafka_url", help="kafka://host:port (env INJURY_MONITOR_KAFKA_URL)")
    p.add_argument("--redis-url", dest="redis_url", help="redis://host:port/db (env INJURY_MONITOR_REDIS_URL)")
    p.add_argument("--log-level", dest="log_level")


def cmd_worker(args: argparse.Namespace) -> int:
    from stream.settings import WorkerSettings
    from stream.worker import run_worker

    settings = _settings(WorkerSettings, args)
    _logging(settings.log_level)
    run_worker(settings)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from stream.settings import SimulatorSettings
    from stream.simulator import simulate

    settings = _settings(SimulatorSettings, args, replay=args.replay or None)
    _logging(settings.log_level)
    try:
        stats = asyncio.run(simulate(settings))
    except KeyboardInterrupt:
        return 0
    rate = stats.frames / max(1e-9, stats.stopped - stats.started)
    print(f"published {stats.messages} messages, {stats.frames} frames ({rate:,.0f} frames/s)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.launch import run_dashboard
    from dashboard.settings import DashboardSettings

    settings = _settings(DashboardSettings, args)
    proc = run_dashboard(settings, port=args.port, address=args.address)

    def forward(signum, frame):  # the page runs in its own session: stop it with us
        proc.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return proc.wait(timeout=None)
    finally:
        if proc.poll() is None:
            proc.kill()


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo
    from stream.settings import DemoSettings

    settings = _settings(DemoSettings, args, external_kafka=bool(args.kafka_url) or None,
                         external_redis=bool(args.redis_url) or None, dashboard=not args.no_dashboard)
    _logging(settings.log_level)
    return run_demo(settings)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.train import ensure_default_model, train

    _logging(args.log_level or "INFO")
    if args.default and not args.force:
        path = ensure_default_model(Path(args.out), progress=True)
    else:
        budget = None if args.time_budget is None else (math.inf if args.time_budget <= 0 else args.time_budget)
        path = train(Path(args.out), n_windows=args.windows, epochs=args.epochs, seed=args.seed, progress=True,
                     preset="demo" if args.default else args.preset, data=args.data, time_budget_s=budget,
                     encoder_checkpoint=args.checkpoint, finetune_last_stage=args.finetune or None)
    print(f"model artifact: {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.export import export_onnx

    report = export_onnx(Path(args.model), Path(args.out) if args.out else Path(args.model) / "model.onnx")
    print(report)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from stream.ingest_service import embed, listen
    from stream.settings import ImagingSettings

    settings = _settings(ImagingSettings, args, prefer_body_parts=args.prefer.split(",") if args.prefer else None,
                         allowed_roots=args.allowed_root or None)
    _logging(settings.log_level)
    if args.listen:
        try:
            asyncio.run(listen(settings))
        except KeyboardInterrupt:
            pass
        return 0
    if not args.athlete or not args.paths:
        print("injury-monitor embed: give --athlete ID and one or more files or folders", file=sys.stderr)
        return 2
    report = embed(settings, args.athlete, [Path(p) for p in args.paths], publish=not args.no_publish)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.evaluate import evaluate

    _logging(args.log_level or "INFO")
    report = evaluate(Path(args.model), seed=args.seed, n_windows=args.windows, backend=args.backend,
                      out_dir=Path(args.out) if args.out else None, progress=True)
    m = report.metrics
    print(f"{report.model_version} on seed {report.seed}: AUROC {m['auroc']} (Bayes {report.bayes_auroc})")
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from engine.tensorrt_build import build_engine

    from engine.tensorrt_build import default_engine_path

    model = Path(args.model)
    onnx_path = Path(args.onnx) if args.onnx else model / "model.onnx"
    out = Path(args.out) if args.out else default_engine_path(model, args.precision)
    info = build_engine(onnx_path, out, fp16=args.precision == "fp16", min_batch=args.min_batch,
                        opt_batch=args.opt_batch, max_batch=args.max_batch, timing_cache=args.timing_cache,
                        workspace_mb=args.workspace_mb)
    print(info.to_json())
    return 0


def cmd_passthrough(args: argparse.Namespace) -> int:
    """Subcommands whose own parser lives next to the code they run (bench, report): development
    tools, so a package of the dev extra that is missing gives a message, not a traceback."""
    from stream.devtools import run_tool

    def run() -> int:
        if args.command == "report":
            from engine.report import main
        elif args.what == "engine":
            from engine.bench import main
        elif args.what == "pipeline":
            from stream.bench.pipeline_cost import main
        else:
            from stream.bench.cli import main
        return main(args.rest)

    return run_tool(f"injury-monitor {args.command}", run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="injury-monitor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run broker, Redis, worker, simulator and dashboard on this machine")
    _service_flags(p)
    p.add_argument("--kafka", dest="kafka_url", help="use this broker instead of the embedded one")
    p.add_argument("--redis", dest="redis_url", help="use this Redis instead of the embedded one")
    p.add_argument("--athletes", type=int)
    p.add_argument("--duration", dest="duration_s", type=float, help="stop after S seconds")
    p.add_argument("--no-dashboard", action="store_true")
    p.add_argument("--workers", type=int)
    p.add_argument("--kafka-port", dest="kafka_port", type=int)
    p.add_argument("--redis-port", dest="redis_port", type=int)
    p.add_argument("--dashboard-port", dest="dashboard_port", type=int)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run the Faust scoring worker")
    _service_flags(p)
    p.add_argument("--app-id", dest="app_id")
    p.add_argument("--partitions", type=int)
    p.add_argument("--backend", help="onnxruntime | torch | tensorrt | auto")
    p.add_argument("--model-dir", dest="model_dir")
    p.add_argument("--web-port", dest="web_port", type=int)
    p.add_argument("--web-bind", dest="web_bind")
    p.add_argument("--max-batch", dest="max_batch", type=int)
    p.add_argument("--max-wait-ms", dest="max_wait_ms", type=float)
    p.add_argument("--window", dest="window_s", type=float)
    p.add_argument("--hop", dest="hop_s", type=float)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulate", help="publish simulated (or replayed) athletes' frames")
    _service_flags(p)
    p.add_argument("--athletes", type=int)
    p.add_argument("--hz", type=float)
    p.add_argument("--duration", dest="duration_s", type=float)
    p.add_argument("--frames-per-message", dest="frames_per_message", type=int)
    p.add_argument("--encoding", choices=["json", "binary"], help="FrameBatch wire encoding (default json)")
    p.add_argument("--seed", type=int)
    p.add_argument("--session", dest="session_id")
    p.add_argument("--fatigue-tau", dest="fatigue_tau_s", type=float)
    p.add_argument("--metrics-port", dest="metrics_port", type=int)
    p.add_argument("--replay", action="append", type=Path, help="recorded IMU file to replay (repeatable)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("dashboard", help="run the Streamlit coach dashboard")
    p.add_argument("--redis-url", dest="redis_url")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("embed", help="ingest DICOM studies: de-identify, embed with ResNet50, cache in Redis")
    _service_flags(p)
    p.add_argument("--athlete", help="pseudonymous athlete id the study belongs to")
    p.add_argument("paths", nargs="*", help="DICOM files or folders")
    p.add_argument("--model-dir", dest="model_dir", help="model whose encoder to match (default .cache/models/default)")
    p.add_argument("--checkpoint", dest="encoder_checkpoint", help="ResNet50 weights file (never downloaded)")
    p.add_argument("--policy", dest="study_policy", choices=["latest", "body_part"])
    p.add_argument("--prefer", help="comma-separated body parts preferred by --policy body_part")
    p.add_argument("--uid-key-file", dest="uid_key_file", help="site secret for SOP Instance UID hashes")
    p.add_argument("--no-publish", action="store_true", help="do not announce the study on imaging.studies")
    p.add_argument("--listen", action="store_true", help="serve IngestRequest messages from imaging.studies")
    p.add_argument("--allowed-root", action="append", type=Path, help="folder --listen may read (repeatable)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train", help="train a model artifact on the synthetic cohort")
    p.add_argument("--out", default=".cache/models/default")
    p.add_argument("--default", action="store_true", help="the demo's default model (< 2 min on 2 cores)")
    p.add_argument("--force", action="store_true", help="retrain even if a valid artifact exists")
    p.add_argument("--windows", type=int, help="synthetic windows to train on (default 6000)")
    p.add_argument("--epochs", type=int, help="most epochs (early stopping on validation AUROC)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=["full", "demo", "tiny"], help="training size (default full, < 10 min)")
    p.add_argument("--data", help="real image data set: mura:PATH, mrnet:PATH, fastmri:PATH?labels=CSV, dicom:PATH; "
                   "or stand-in (stand-in embeddings that show the lesion, no images)")
    p.add_argument("--checkpoint", help="local ResNet50 weights (ImageNet/RadImageNet style); never downloaded")
    p.add_argument("--finetune", action="store_true", help="fine-tune ResNet50's last stage (saves encoder.pt)")
    p.add_argument("--time-budget", dest="time_budget", type=float, help="seconds for the epoch loop (0: none)")
    p.add_argument("--log-level", dest="log_level")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model artifact on a fresh synthetic cohort (metrics, plots)")
    p.add_argument("--model", default=".cache/models/default")
    p.add_argument("--seed", type=int, default=1234, help="cohort seed (use one the model never saw)")
    p.add_argument("--windows", type=int, default=3000)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--out", help="report folder (default <model>/eval-seed<seed>)")
    p.add_argument("--log-level", dest="log_level")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="train the model and every baseline on the same splits; write the report",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_passthrough)

    p = sub.add_parser("bench", help="benchmarks: `bench engine ...` (backends), `bench stream ...` (capacity) or "
                                     "`bench pipeline ...` (the worker's own Python per window)")
    p.add_argument("what", choices=["engine", "stream", "pipeline"])
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark (--help to list)")
    p.set_defaults(func=cmd_passthrough)

    p = sub.add_parser("build-engine", help="build a TensorRT engine from the ONNX export (GPU node)")
    p.add_argument("--model", default=".cache/models/default")
    p.add_argument("--onnx", help="ONNX file (default <model>/model.onnx)")
    p.add_argument("--out", help="engine file (default <model>/engines/model-<precision>.engine)")
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--workspace-mb", dest="workspace_mb", type=int, default=1024)
    p.add_argument("--min-batch", dest="min_batch", type=int, default=1)
    p.add_argument("--opt-batch", dest="opt_batch", type=int, default=32)
    p.add_argument("--max-batch", dest="max_batch", type=int, default=256)
    p.add_argument("--timing-cache", dest="timing_cache")
    p.set_defaults(func=cmd_build_engine)

    p = sub.add_parser("export", help="export a model artifact to ONNX with a parity check")
    p.add_argument("--model", default=".cache/models/default")
    p.add_argument("--out")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # bench and report own their parsers: hand them every argument, --help included
    if argv[:1] == ["report"] or (argv[:1] == ["bench"] and argv[1:2] in (["engine"], ["stream"], ["pipeline"])):
        ns = argparse.Namespace(command=argv[0], what=argv[1] if argv[0] == "bench" else None,
                                rest=argv[2:] if argv[0] == "bench" else argv[1:])
        try:
            return cmd_passthrough(ns)
        except MonitorError as exc:
            print(f"injury-monitor {argv[0]}: {exc}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MonitorError as exc:
        print(f"injury-monitor {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
