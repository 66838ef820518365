"""Turn stream-bench results into Markdown tables, the latency-vs-athletes plot and
profile summaries. Pure formatting over the ``results.json`` dictionary."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

from stream.bench.contenders import LABELS


def _fmt(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        if math.isnan(v):
            return "–"
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_inference(inf: dict) -> str:
    med = inf.get("windows_per_s_median", {})
    rows = [[str(b), _fmt(v), _fmt(med.get(b, med.get(str(b))))]
            for b, v in sorted(inf["windows_per_s"].items(), key=lambda kv: int(kv[0]))]
    return (f"`Scorer.score` on backend `{inf['backend']}`, {inf['threads']} threads, one caller (like the worker's "
            f"executor), best and median of {inf.get('rounds', 1)} interleaved rounds:\n\n"
            + _table(["batch", "windows/s (best round)", "windows/s (median round)"], rows)
            + f"\n\nBest: {_fmt(inf['best_windows_per_s'])} windows/s at batch {inf['best_batch']}; "
              f"{_fmt(inf['windows_per_athlete_s'], 1)} windows per athlete per second, so the "
              f"**inference-bound limit is {_fmt(inf['limit_athletes'])} athletes** (load average {inf['loadavg']}).")


def render_drain(drain: dict) -> str:
    s = drain["summary"]
    rows = []
    for kind, v in s.items():
        rows.append([LABELS.get(kind, kind), _fmt(v["frames_per_s"]), _fmt(v.get("messages_per_s")),
                     _fmt(v["windows_per_s"]), _fmt(v["ratio_to_floor"], 3),
                     ", ".join(_fmt(x) for x in v["frames_per_s_all"]) + (f" ({v['failed']} failed)" if v["failed"]
                                                                          else "")])
    head = (f"{drain['athletes']} athletes x {drain['seconds']:g} s of 100 Hz frames = {drain['messages']:,} messages "
            f"({drain['frames']:,} frames, {drain['encoding']}, {drain['message_bytes']:,} B each), "
            f"{drain['windows']:,} windows; preloaded at {_fmt(drain['preload']['messages_per_s'])} msg/s.\n\n")
    table = _table(["contender", "frames/s (median)", "messages/s", "windows/s", "ratio to (a)", "frames/s of each run"],
                   rows)
    raw = [[r["kind"], str(r["repeat"]), _fmt(r.get("frames_per_s")), _fmt(r.get("frames_per_s_whole")),
            _fmt(r.get("windows_per_s")), _fmt(r.get("drain_s"), 1), str(r.get("loadavg_before")),
            (r.get("error") or "")[:80].replace("\n", " ").replace("|", "/")] for r in drain["runs"]]
    raw_table = _table(["contender", "repeat", "frames/s 10–90 %", "frames/s whole", "windows/s", "drain s",
                        "load avg before", "error"], raw)
    prof = ""
    for p in drain.get("profiles", []):
        prof += (f"\n- profiled {p['kind']}: {_fmt(p.get('frames_per_s'))} frames/s under the profiler; files "
                 + ", ".join(f"`{f}`" for f in p.get("profile_files", [])))
    return head + table + "\n\nEvery run:\n\n" + raw_table + ("\n" + prof if prof else "")


def render_live(live: dict, limit_ms: float) -> str:
    parts = []
    for kind, cap in live.items():
        rows = []
        steps = list(cap.get("steps", [])) + ([cap["half"]] if cap.get("half") else [])
        for s in steps:
            rows.append([_fmt(s["athletes"]) + (" (½ cap)" if s.get("half_capacity_check") else ""),
                         _fmt(s.get("p50_kafka_ms"), 1), _fmt(s.get("p99_kafka_ms"), 1),
                         _fmt(s.get("p50_redis_ms"), 1), _fmt(s.get("p99_redis_ms"), 1),
                         _fmt(s.get("p99_worker_ms"), 1),
                         f'{_fmt(s.get("p50_ready_ms"), 1)} / {_fmt(s.get("p99_ready_ms"), 1)}',
                         f'{_fmt(s.get("p50_built_ms"), 1)} / {_fmt(s.get("p99_built_ms"), 1)}',
                         _fmt(s.get("lag_growth_msgs_per_s"), 1),
                         _fmt(s.get("load_max_behind_s"), 3), str(s.get("loadavg_before")),
                         "pass" if s.get("passed") else "fail" + (f": {s['error'][:60]}" if s.get("error") else "")])
        parts.append(f"**{LABELS.get(kind, kind)}**: capacity **{_fmt(cap.get('capacity'))} athletes** "
                     f"(p99 < {limit_ms:g} ms, lag not growing)\n\n"
                     + _table(["athletes", "p50 topic ms", "p99 topic ms", "p50 Redis ms", "p99 Redis ms",
                               "p99 worker hist. ms", "end→ready p50/p99 ms", "ready→built p50/p99 ms",
                               "lag growth msg/s", "load behind s", "load avg", "result"], rows)
                     + (f"\n\nError: {cap['error']}" if cap.get("error") else ""))
    return "\n\n".join(parts)


def render_markdown(results: dict, plot: Path | None = None) -> str:
    m = results["machine"]
    out = [f"# Stream benchmark {results.get('started', '')}", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Python {m['python']}; "
           f"versions {m['versions']}; Quix Streams {results.get('quix', {}).get('version')}. "
           f"Load average at start {results.get('loadavg_start')}, at end {results.get('loadavg_end')}.", "",
           "Window grid: " + ("staggered (each athlete's windows end at its own phase of the hop; its messages are "
                              "cut on its window ends)" if results["config"].get("stagger", False) else
                              "aligned (every athlete's window ends at the same instant: one burst of messages per "
                              "hop)") + ".", ""]
    if "inference" in results:
        out += ["## Inference-bound limit", "", render_inference(results["inference"]), ""]
    if "drain" in results:
        out += ["## Throughput (backlog drain)", "", render_drain(results["drain"]), ""]
    if "live" in results:
        out += ["## Live capacity", "", render_live(results["live"], results["config"]["p99_limit_ms"]), ""]
    if plot is not None:
        out += [f"![latency vs athletes]({plot.name})", ""]
    return "\n".join(out)


def plot_latency(results: dict, path: Path) -> Path | None:
    """Latency against athletes, per contender: p99 as the capacity criterion takes it (the worse
    of ``injury.risk`` and Redis) and p50 on ``injury.risk``."""
    live = results.get("live") or {}
    if not any(cap.get("steps") for cap in live.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    colors = {"faust": "tab:blue", "quix": "tab:orange", "faust-null": "tab:green"}
    cap_ms = 30_000.0
    for kind, cap in live.items():
        steps = sorted(list(cap.get("steps", [])) + ([cap["half"]] if cap.get("half") else []),
                       key=lambda s: s["athletes"])
        steps = [s for s in steps if s.get("p99_kafka_ms") is not None]
        if not steps:
            continue
        n = [s["athletes"] for s in steps]
        p99 = [min(cap_ms, s.get("p99_ms", s["p99_kafka_ms"])) for s in steps]  # the criterion: worse of topic, Redis
        p50 = [min(cap_ms, s["p50_kafka_ms"]) for s in steps]
        c = colors.get(kind)
        ax.plot(n, p99, "o-", color=c, label=f"{LABELS.get(kind, kind)}: p99")
        ax.plot(n, p50, "s--", color=c, alpha=0.6, label=f"{kind}: p50")
        if cap.get("capacity"):
            ax.axvline(cap["capacity"], color=c, lw=0.8, ls=":")
    limit = results["config"]["p99_limit_ms"]
    ax.axhline(limit, color="red", lw=1, label=f"{limit:g} ms (capacity criterion)")
    ax.axhline(100, color="grey", lw=1, ls="--", label="100 ms")
    inf = results.get("inference")
    if inf:
        ax.axvline(inf["limit_athletes"], color="black", lw=1, ls="-.",
                   label=f"inference-bound limit ({inf['limit_athletes']:,})")
        ax.axvline(inf["limit_athletes"] / 2, color="black", lw=0.8, ls=":", label="half of it")
    ax.set_xscale("log")  # a doubling search and the inference limit span decades
    ax.set_xlabel("athletes at 100 Hz (one worker, log scale)")
    ax.set_ylabel("last frame → score (ms): p99 worse of topic and Redis, p50 topic")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Latency vs athletes ({results['machine']['cores']} cores; broker, Redis, load and worker together)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def summarize_pstats(path: Path, top: int = 40) -> str:
    """The ``top`` functions by cumulative and by own time of a cProfile dump."""
    import io
    import pstats

    out = io.StringIO()
    st = pstats.Stats(str(path), stream=out)
    st.strip_dirs()
    out.write(f"# {path.name}: by cumulative time\n")
    st.sort_stats("cumulative").print_stats(top)
    out.write(f"\n# {path.name}: by own time\n")
    st.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def parse_collapsed(path: Path) -> dict[tuple[str, ...], int]:
    """py-spy ``--format raw`` (collapsed stacks: ``root;...;leaf count`` per line)."""
    stacks: dict[tuple[str, ...], int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            key = tuple(stack.split(";"))
            stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


# leaf frames that wait: selectors, locks, queues, sleeps, and an executor thread waiting for work
_IDLE = re.compile(r"^(select|poll|epoll|_poll|wait|_wait_for_tstate_lock|sleep|acquire|get) \(|"
                   r"\((selectors|threading|queue)\.py:|^_worker \(concurrent/futures/thread\.py:")


_LINE = re.compile(r":\d+\)$")
PROJECT_PACKAGES = ("stream/", "schemas/", "engine/", "dashboard/")


def _function(frame: str) -> str:
    """``f (path/x.py:12)`` -> ``f (path/x.py)``: samples of one function on different lines merged."""
    return _LINE.sub(")", frame)


def summarize_collapsed(stacks: dict[tuple[str, ...], int], top: int = 25, title: str = "profile") -> str:
    """Own (leaf) and inclusive shares of the busy samples, per function; samples whose leaf
    waits (selectors, locks, queues, an idle executor thread) are counted as idle."""
    total = sum(stacks.values())
    idle = sum(c for st, c in stacks.items() if _IDLE.search(st[-1]))
    busy = total - idle
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    for st, c in stacks.items():
        if _IDLE.search(st[-1]):
            continue
        leaf = _function(st[-1])
        own[leaf] = own.get(leaf, 0) + c
        for f in {_function(f) for f in st if not f.startswith("thread (")}:
            incl[f] = incl.get(f, 0) + c
    pct = lambda c: 100.0 * c / busy if busy else 0.0  # noqa: E731
    ours = {f: c for f, c in incl.items() if any(f"({p}" in f for p in PROJECT_PACKAGES)}
    lines = [f"# {title}: {total} samples, {idle} idle (waiting), {busy} busy; shares of the busy samples", ""]
    threads: dict[str, list[int]] = {}  # py-spy --threads: the root frame is "thread (id): name"
    for st, c in stacks.items():
        if st[0].startswith("thread ("):
            t = threads.setdefault(st[0], [0, 0])
            t[bool(_IDLE.search(st[-1]))] += c
    if threads:
        lines.append("## threads: busy share of each thread's own samples")
        for name, (b, i) in sorted(threads.items(), key=lambda kv: -sum(kv[1])):
            lines.append(f"{100.0 * b / (b + i):6.1f}% busy  {b + i:6d} samples  {name}")
        lines.append("")
    lines.append("## own time (leaf functions)")
    lines += [f"{pct(c):6.2f}%  {f}" for f, c in sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "## inclusive time, this project's functions"]
    lines += [f"{pct(c):6.2f}%  {f}" for f, c in sorted(ours.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "## inclusive time, all functions"]
    lines += [f"{pct(c):6.2f}%  {f}" for f, c in sorted(incl.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines) + "\n"


def flamegraph_svg(stacks: dict[tuple[str, ...], int], title: str = "profile", width: int = 1600) -> str:
    """A static flamegraph (SVG, tooltips on every frame) of collapsed stacks."""
    tree: dict = {}
    for st, c in stacks.items():
        node = tree
        for f in st:
            child = node.setdefault(f, {"_n": 0, "_c": {}})
            child["_n"] += c
            node = child["_c"]
    total = sum(stacks.values()) or 1
    row_h, rects, depth_max = 16, [], [0]

    def walk(children: dict, x: float, depth: int) -> None:
        for name, node in sorted(children.items()):
            w = node["_n"] / total * width
            if w >= 0.5:
                rects.append((x, depth, w, name, node["_n"]))
                depth_max[0] = max(depth_max[0], depth)
                walk(node["_c"], x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max[0] + 3) * row_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
           f'font-size="11"><text x="4" y="12">{html.escape(title)} ({total} samples)</text>']
    for x, depth, w, name, n in rects:
        y = height - (depth + 1) * row_h
        hue = 20 + (hash(name.split(" (")[0]) % 40)
        label = html.escape(name if len(name) * 6.5 < w else name[: max(0, int(w / 6.5) - 2)] + "..")
        out.append(f'<g><title>{html.escape(name)} ({n} samples, {100 * n / total:.2f}%)</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 1}" fill="hsl({hue},85%,60%)"/>'
                   + (f'<text x="{x + 2:.1f}" y="{y + 11}">{label}</text>' if w > 20 else "") + "</g>")
    out.append("</svg>")
    return "\n".join(out)
