"""Arguments of ``injury-monitor bench stream`` (also ``python -m stream.bench.cli``).

``stream.cli`` hands everything after ``bench stream`` to :func:`main`. Only parsing here;
the work is :func:`stream.bench.stream_bench.bench_stream`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from schemas.exceptions import MonitorError
from stream.bench.contenders import KINDS
from stream.bench.stream_bench import PROFILERS, BenchConfig, bench_stream


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown contender(s) {bad}; choose from {', '.join(KINDS)}")
    return kinds


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="injury-monitor bench stream",
        description="Throughput (backlog drain) and live capacity of the Faust worker against an aiokafka floor, "
                    "a Quix Streams reference and the worker with a null model. See BENCHMARKS.md.")
    p.add_argument("--kafka-url", help="use this broker (default: an embedded Tansu, fresh for each live step)")
    p.add_argument("--redis-url", help="use this Redis (default: an embedded one); only the bench's keys are touched")
    p.add_argument("--out", type=Path, default=Path("runs/bench-stream"), help="results.json, report.md, plot, logs")
    p.add_argument("--no-drain", dest="drain", action="store_false", help="skip the backlog-drain measurement")
    p.add_argument("--no-live", dest="live", action="store_false", help="skip the live capacity search")
    p.add_argument("--no-inference-probe", dest="inference_probe", action="store_false",
                   help="skip measuring the backend's windows/s (the inference-bound limit)")
    p.add_argument("--contenders", type=_kinds, default=KINDS, help=f"drain: comma list of {', '.join(KINDS)}")
    p.add_argument("--live-contenders", type=_kinds, default=("faust", "quix"), help="live: comma list")
    p.add_argument("--drain-athletes", type=int, default=200)
    p.add_argument("--drain-seconds", type=float, default=15.0, help="event-time seconds per athlete in the backlog")
    p.add_argument("--repeats", type=int, default=3, help="drain runs per contender (medians are reported)")
    p.add_argument("--start", dest="start_athletes", type=int, default=50, help="live: first N of the search")
    p.add_argument("--max-athletes", type=int, default=4000)
    p.add_argument("--resolution", type=float, default=0.05, help="live: stop bisecting at this relative gap")
    p.add_argument("--min-step", type=int, default=2, help="live: ... or at this gap in athletes")
    p.add_argument("--athletes", type=_ints, default=(), help="live: run exactly these N (comma list), no search")
    p.add_argument("--warmup", dest="warmup_s", type=float, default=6.0)
    p.add_argument("--measure", dest="measure_s", type=float, default=18.0)
    p.add_argument("--p99-limit-ms", type=float, default=250.0)
    p.add_argument("--no-half-check", dest="half_check", action="store_false",
                   help="skip the longer step at half the capacity")
    p.add_argument("--encoding", choices=("json", "binary"), default="json")
    p.add_argument("--frames-per-message", type=int, default=10)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--no-stagger", dest="stagger", action="store_false",
                   help="every athlete's windows end at the same instant (window_stagger=false): one burst per hop")
    p.add_argument("--model-dir", type=Path, default=BenchConfig.model_dir)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--inference-threads", type=int, default=2)
    p.add_argument("--max-batch", type=int)
    p.add_argument("--max-wait-ms", type=float)
    p.add_argument("--quix-python", help="interpreter with quixstreams 3.28 (default .cache/quix-venv/bin/python)")
    p.add_argument("--quix-commit-interval", dest="quix_commit_interval_s", type=float,
                   help="Quix checkpoint (= micro-batch) interval, s (default: max_wait_ms)")
    p.add_argument("--fetch-wait-ms", dest="fetch_wait_ms", type=int,
                   help="longest fetch wait (Tansu answers a fetch after about half of it): Quix's fetch.wait.max.ms "
                        "and INJURY_MONITOR_FETCH_MAX_WAIT_MS for every contender")
    p.add_argument("--profile", choices=PROFILERS,
                   help="one extra drain run of each Faust contender under py-spy (flamegraph SVG) or cProfile "
                        "(pstats), with a text summary, in --out")
    p.add_argument("--profile-seconds", type=float, help="py-spy: stop sampling after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    fields = set(BenchConfig.__dataclass_fields__)
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given["out_dir"] = args.out
    return BenchConfig(**given)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        bench_stream(config_from(args))
    except MonitorError as exc:
        print(f"injury-monitor bench stream: {exc}", file=sys.stderr)
        return 2
    print(f"results: {args.out / 'results.json'}\nreport: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
