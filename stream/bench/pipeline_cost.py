"""In-process cost of the worker's own Python per window, without Kafka or Faust.

    injury-monitor bench pipeline [--athletes 200] [--hops 20] [--batch 64] [--out cost.json]

The bench's paced messages (binary, 50 frames = one hop each) go through the worker's
``Intake`` (decode, validate, window) and ``ScoringPipeline`` (``infer`` with the null model,
then ``emit``: scores, traces, PlayerLoad, alert steps, serialisation for Kafka, and the real
``RedisSink`` writing to an embedded Redis) on one thread. It prints microseconds per window
for each stage. What this leaves out (Faust's consumer, aiokafka, librdkafka, the broker) is
what ``bench stream`` adds; the difference between the two is the streaming framework's share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


async def measure(athletes: int, hops: int, batch: int, redis_url: str, model_dir: Path | None) -> dict:
    from schemas.codec import dumps
    from stream.alerting import AlertPolicy
    from stream.bench.load import LoadSpec, MessageFactory
    from stream.bench.null_scorer import NullScorer
    from stream.intake import ClockLimits, Intake
    from stream.metrics import WorkerMetrics
    from stream.pipeline import Levels, ScoringPipeline
    from stream.settings import WorkerSettings
    from stream.sinks.redis import RedisSink, connect
    from stream.windowing import Windower

    s = WorkerSettings()
    cfg = s.window_config()
    spec = LoadSpec(athletes=athletes, frames_per_message=cfg.hop, encoding="binary", phase_hop=cfg.hop if cfg.stagger else 0)
    factory = MessageFactory(spec)
    if model_dir is not None:
        scorer = NullScorer.from_artifact(model_dir)
    else:
        scorer = NullScorer(time_steps=50, attn_step_s=0.04, encoder_version="none")
    intake = Intake(Windower(cfg), hz=s.hz, clock=ClockLimits(1e12, 1e12))
    sink = RedisSink(connect(redis_url), history_cap=s.history_cap)

    async def publish(scored, alerts) -> None:  # what the worker serialises for Kafka
        for s in scored:
            s.body  # noqa: B018 (serialised once, cached for the sink, as in the worker)
        for a in alerts:
            dumps(a)

    pipe = ScoringPipeline(scorer=scorer, sink=sink, publish=publish, levels=Levels(s.level_moderate, s.level_high), metrics=WorkerMetrics(),
                           policy=AlertPolicy(s.alert_raise, s.alert_raise_windows, s.alert_clear,
                                              s.alert_clear_windows),
                           executor=ThreadPoolExecutor(1), hop=cfg.hop)
    warm = int(cfg.window_s * s.hz / cfg.hop)  # no window before a full one
    spent = {"intake": 0.0, "infer": 0.0, "emit": 0.0}
    windows = 0
    try:
        for k in range(warm + hops):
            msgs = [(factory.key(i), factory.message(i, k)) for i in range(athletes)]
            now = factory.t0(0, k) + 1.0
            t0 = time.perf_counter()
            ready = []
            for key, raw in msgs:
                _, offer = intake.handle(raw, key, now)
                ready += offer.windows
            t1 = time.perf_counter()
            t_infer = t_emit = 0.0
            for i in range(0, len(ready), batch):
                a = time.perf_counter()
                done = await pipe.infer(ready[i:i + batch])
                b = time.perf_counter()
                if done is not None:
                    await pipe.emit(done)
                t_infer += b - a
                t_emit += time.perf_counter() - b
            if k >= warm:
                spent["intake"] += t1 - t0
                spent["infer"] += t_infer
                spent["emit"] += t_emit
                windows += len(ready)
    finally:
        await sink.close()
    us = {name: round(t / max(windows, 1) * 1e6, 1) for name, t in spent.items()}
    total = sum(spent.values())
    return {"athletes": athletes, "hops": hops, "batch": batch, "windows": windows, "us_per_window": us,
            "windows_per_s_one_thread": round(windows / total, 1) if total else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="injury-monitor bench pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--athletes", type=int, default=200)
    p.add_argument("--hops", type=int, default=20, help="hops measured per athlete (after the first window)")
    p.add_argument("--batch", type=int, default=64, help="windows per infer/emit call (the worker's max_batch)")
    p.add_argument("--redis-url", help="use this Redis (default: an embedded one)")
    p.add_argument("--model-dir", type=Path, help="shapes and versions of this artifact for the null model")
    p.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    from stream.embedded import EmbeddedRedis

    def run(url: str) -> dict:
        return asyncio.run(measure(args.athletes, args.hops, args.batch, url, args.model_dir))

    if args.redis_url:
        res = run(args.redis_url)
    else:
        with EmbeddedRedis() as red:
            res = run(red.url)
    us = res["us_per_window"]
    print(f"{res['windows']} windows of {res['athletes']} athletes, batches of {res['batch']}: "
          f"intake {us['intake']} µs, infer (null model) {us['infer']} µs, emit {us['emit']} µs per window; "
          f"{res['windows_per_s_one_thread']} windows/s on one thread")
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
