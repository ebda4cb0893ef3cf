"""Latency measurement and the shareable latency report behind ``rtsep bench``.

The hot path is timed call by call (``perf_counter_ns`` around each call, nothing else
inside), because what matters for real-time audio is the tail, not the mean: a block's
budget is ``frames / rate`` s, and one call over it is an audible dropout. Each call's
thread CPU time is kept too, so that a tail caused by other work on a shared machine
(preemption) can be told from one the code causes. The same
helpers serve the pytest-benchmark suites in ``benchmarks/``, so both judge by one rule:
p99 within a third of the budget and mean within a sixth.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtsep import contract
from rtsep.model import Model

if TYPE_CHECKING:
    from rtsep.engine import Separator

P99_SHARE = 1 / 3
"""The p99 of per-call times must stay within this share of the block's budget."""

MEAN_SHARE = 1 / 6
"""The mean per-call time must stay within this share of the block's budget."""

OFFLINE_SECONDS = 20.0
"""Length of the stereo test signal for offline throughput."""


def budget_ns(frames: int, rate: int = contract.SAMPLE_RATE) -> float:
    """Real-time budget of a block of ``frames`` at ``rate`` Hz, in nanoseconds."""
    return frames / rate * 1e9


def noise(frames: int, channels: int = contract.CHANNELS, seed: int = 0) -> np.ndarray:
    """Deterministic noise at about -12 dBFS, float32 (frames, channels).

    Noise rather than silence, so that no network runs on zeros or denormals that real
    music never feeds it.
    """
    rng = np.random.default_rng(seed)
    return (0.25 * rng.standard_normal((frames, channels))).astype(np.float32)


@dataclass
class Timings:
    """Per-call times of one run, and why calls may have waited.

    ``cpu_ns`` is the calling thread's own CPU time per call: the code's cost, whatever
    else runs on the machine. ``wall_ns - cpu_ns`` is time off the CPU; the hot path never
    blocks, so that is the scheduler running other work (``involuntary`` switches) unless
    ``voluntary`` switches show the code itself waited (a lock, I/O, a sleep).
    """

    wall_ns: np.ndarray
    cpu_ns: np.ndarray
    voluntary: int = 0
    involuntary: int = 0


def context_switches() -> tuple[int, int]:
    """(voluntary, involuntary) context switches of this thread so far; (0, 0) if unknown."""
    try:
        import resource

        usage = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    except (ImportError, OSError):
        return 0, 0
    return usage.ru_nvcsw, usage.ru_nivcsw


def time_calls(
    fn: Callable[[], object],
    *,
    seconds: float | None = None,
    calls: int | None = None,
    min_calls: int = 20,
    tick: Callable[[float], None] | None = None,
) -> Timings:
    """Time ``fn()`` call by call, back to back, for ``seconds`` or for ``calls`` calls.

    Only ``fn()`` sits between the two wall-clock reads; the thread-CPU-time reads (a
    system call each) wrap them from outside. ``tick(elapsed_s)`` runs about every 0.1 s
    between calls, outside the timed region (for a progress bar).
    """
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    walls: list[int] = []
    cpus: list[int] = []
    start = wall()
    end = start + int((seconds or 0.0) * 1e9)
    want = calls if calls is not None else min_calls
    next_tick = start + 100_000_000
    before = context_switches()
    while True:
        c0 = cpu()
        t0 = wall()
        fn()
        t1 = wall()
        cpus.append(cpu() - c0)
        walls.append(t1 - t0)
        if len(walls) >= want and (calls is not None or t1 >= end):
            break
        if tick is not None and t1 >= next_tick:
            tick((t1 - start) / 1e9)
            next_tick = wall() + 100_000_000
    after = context_switches()
    return Timings(
        np.asarray(walls, np.int64),
        np.asarray(cpus, np.int64),
        after[0] - before[0],
        after[1] - before[1],
    )


def busy_machine(timings: Timings, frames: int, rate: int = contract.SAMPLE_RATE) -> str | None:
    """Why a wall-clock miss of the rule is the machine's doing, not the code's; else None.

    It is when the calls' own CPU time holds the rule, the thread never waited on its own
    (no voluntary switch), and the scheduler did preempt it.
    """
    wall = summarize(timings.wall_ns, frames, rate)
    cpu = summarize(timings.cpu_ns, frames, rate)
    if budget_problems(cpu) or timings.voluntary or not timings.involuntary:
        return None
    return (
        f"the machine is busy: wall-clock p99 {wall['p99_us']:.0f} µs, but on-CPU p99 "
        f"{cpu['p99_us']:.0f} µs holds the rule; the thread was preempted "
        f"{timings.involuntary} times by other work"
    )


def summarize(
    times_ns: Iterable[float], frames: int, rate: int = contract.SAMPLE_RATE
) -> dict[str, float]:
    """Per-call statistics in µs against the budget of a ``frames`` block at ``rate`` Hz.

    ``misses`` counts calls longer than the whole budget (each one a dropout in a live
    stream); ``budget_share`` is p99 / budget.
    """
    t = np.asarray(times_ns, np.float64) / 1e3
    budget = budget_ns(frames, rate) / 1e3
    p50, p99, p999 = np.percentile(t, [50, 99, 99.9])
    return {
        "frames": frames,
        "rate": rate,
        "calls": len(t),
        "budget_us": budget,
        "mean_us": float(t.mean()),
        "p50_us": float(p50),
        "p99_us": float(p99),
        "p99.9_us": float(p999),
        "max_us": float(t.max()),
        "misses": int((t > budget).sum()),
        "budget_share": float(p99 / budget),
    }


def budget_problems(summary: dict[str, float]) -> list[str]:
    """Why a summary breaks the hot-path rule (empty when it holds)."""
    budget = summary["budget_us"]
    problems = []
    if summary["p99_us"] > budget * P99_SHARE:
        problems.append(
            f"p99 {summary['p99_us']:.1f} µs > {budget * P99_SHARE:.1f} µs "
            f"(a third of the {budget:.0f} µs budget of {summary['frames']} frames)"
        )
    if summary["mean_us"] > budget * MEAN_SHARE:
        problems.append(
            f"mean {summary['mean_us']:.1f} µs > {budget * MEAN_SHARE:.1f} µs "
            f"(a sixth of the {budget:.0f} µs budget of {summary['frames']} frames)"
        )
    return problems


def process_call(
    sep: Separator, frames: int, channels: int = contract.CHANNELS
) -> Callable[[], None]:
    """A no-argument call of ``sep.process`` on fresh blocks of ``frames`` (sep prepared).

    The blocks are views into one second of noise, made beforehand, so the timed call is
    the engine's alone; ``out=`` keeps it allocation-free, as in an audio callback.
    """
    signal = noise(contract.SAMPLE_RATE, channels)
    blocks = itertools.cycle(
        [signal[i : i + frames] for i in range(0, len(signal) - frames + 1, frames)]
    )
    out = np.empty((frames, channels), np.float32)
    process = sep.process

    def call() -> None:
        process(next(blocks), out=out)

    return call


class StepCall:
    """One hop of the step graph as the engine runs it (``Stepper.run``), on noise.

    ``cuda_graph=False`` times CUDA without a graph.
    """

    def __init__(self, model: Model, cuda_graph: bool = True) -> None:
        from rtsep.step import Stepper

        rows, n, hop = model.channels, len(model.sources), model.hop
        self.audio = noise(hop, rows).T.copy()
        self.sources = np.zeros((rows, n, hop), np.float32)
        self.stepper = Stepper(model, self.audio, self.sources, cuda_graph)

    def __call__(self) -> None:
        self.stepper.run()


def offline_speed(model: Model, seconds: float, audio_seconds: float = OFFLINE_SECONDS) -> dict:
    """Throughput of ``rtsep.separate`` on stereo noise: x real time, median of the runs.

    Runs for about ``seconds`` of wall time (at least one run after a short warm-up);
    each run includes what a user's call costs: session creation and chunking. On one
    onnxruntime thread all work is on this thread, so ``cpu_x_realtime`` (audio seconds
    per second of this thread's CPU time) is the speed on an idle machine.
    """
    from rtsep.offline import separate

    audio = noise(int(audio_seconds * contract.SAMPLE_RATE))
    separate(audio[: contract.SAMPLE_RATE], contract.SAMPLE_RATE, model=model)
    runs: list[float] = []
    cpu_runs: list[float] = []
    start = time.perf_counter()
    while not runs or time.perf_counter() - start < seconds:
        c0, t0 = time.thread_time(), time.perf_counter()
        separate(audio, contract.SAMPLE_RATE, model=model)
        runs.append(time.perf_counter() - t0)
        cpu_runs.append(time.thread_time() - c0)
    median = float(np.median(runs))
    return {
        "audio_seconds": audio_seconds,
        "channels": contract.CHANNELS,
        "runs_s": runs,
        "cpu_runs_s": cpu_runs,
        "median_s": median,
        "x_realtime": audio_seconds / median,
        "cpu_x_realtime": audio_seconds / float(np.median(cpu_runs)),
    }


def cpu_model() -> str:
    """The CPU's marketing name, as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(model: Model) -> dict[str, Any]:
    """What a shared report must say about where it was measured."""
    import onnxruntime as ort

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "provider": model.provider,
        "onnxruntime_providers": model.session("step").get_providers(),
        "model": model.name,
        "model_path": str(model.path),
    }


def verdict(row: dict[str, Any]) -> str:
    """``yes`` when the wall-clock rule holds; ``busy`` when only preemption broke it."""
    if not budget_problems(row["summary"]):
        return "yes"
    s = row["summary"]
    return "busy" if busy_machine(row["timings"], s["frames"], s["rate"]) else "NO"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header lines, the per-block table, offline throughput."""
    m = report["machine"]
    load = m["load_average"]
    rate = report["rate"]
    resampled = (
        f" (resampled to the model's {contract.SAMPLE_RATE / 1e3:g} kHz and back in each call)"
        if rate != contract.SAMPLE_RATE
        else ""
    )
    lines = [
        "# rtsep latency report",
        "",
        f"- model: **{m['model']}** ({m['model_path']})",
        f"- provider: **{m['provider']}** (onnxruntime: {', '.join(m['onnxruntime_providers'])})",
        f"- machine: {m['cpu']}, {m['usable_cores']} of {m['cores']} cores usable, {m['os']}"
        + (f", load average {load[0]:.2f}" if load else ""),
        f"- versions: python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}",
        f"- measured: {report['date']}, {report['seconds']:g} s per row after warm-up",
        f"- reproduce: `{report.get('command', 'rtsep bench')}`",
        "",
        f"`Separator.process`, stereo, {rate / 1e3:g} kHz{resampled}, one onnxruntime thread, "
        "calls back to back; `step call` is one hop of the ONNX step graph as the engine runs "
        f"it. Latency of the engine: {report['latency_samples']} samples "
        f"({report['latency_samples'] / rate * 1e3:.2f} ms). Budget = block / {rate} s (the "
        f"step call: one hop / {contract.SAMPLE_RATE} s); a miss is a call longer than the "
        "budget; holds = p99 ≤ budget/3 and "
        "mean ≤ budget/6 (wall clock). On-CPU p99 is the thread's own CPU time per call; "
        "preempted counts the times the scheduler ran other work instead (busy = the rule "
        "fails on the wall clock only because of that).",
        "",
        "| block | budget µs | calls | mean µs | p50 µs | p99 µs | p99.9 µs | max µs "
        "| misses | p99 / budget | holds | on-CPU p99 µs | preempted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for row in report["rows"]:
        s = row["summary"]
        lines.append(
            f"| {row['label']} | {s['budget_us']:.0f} | {s['calls']} | {s['mean_us']:.1f} "
            f"| {s['p50_us']:.1f} | {s['p99_us']:.1f} | {s['p99.9_us']:.1f} | {s['max_us']:.1f} "
            f"| {s['misses']} | {s['budget_share']:.1%} | {verdict(row)} "
            f"| {row['cpu']['p99_us']:.1f} | {row['timings'].involuntary} |"
        )
    off = report["offline"]
    lines += [
        "",
        f"Offline `rtsep.separate` ({off['audio_seconds']:g} s stereo, one thread, "
        f"median of {len(off['runs_s'])} runs of {off['median_s']:.3f} s): "
        f"**{off['x_realtime']:.1f}x real time** (on-CPU: {off['cpu_x_realtime']:.1f}x).",
        "",
    ]
    return "\n".join(lines)


def histogram(report: dict[str, Any], path: Path) -> None:
    """PNG: per-call latency histogram per row, the budget and its third marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = report["rows"]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.9 * len(rows) + 0.8), squeeze=False)
    m = report["machine"]
    fig.suptitle(
        f"rtsep per-call latency · model {m['model']} · {m['provider']} · {m['cpu']}", fontsize=10
    )
    for ax, row in zip(axes[:, 0], rows):
        s = row["summary"]
        t = row["timings"].wall_ns / 1e3
        on_cpu = row["timings"].cpu_ns / 1e3
        budget = s["budget_us"]
        low = max(1.0, float(min(t.min(), on_cpu.min())) * 0.8)
        top = max(budget * 1.3, float(max(t.max(), on_cpu.max())) * 1.2)
        bins = np.geomspace(low, top, 100)
        ax.hist(t, bins=bins, color="tab:blue", log=True, label="wall clock")
        ax.hist(on_cpu, bins=bins, color="tab:green", histtype="step", label="on-CPU")
        ax.set_xscale("log")
        ax.axvline(budget, color="tab:red", lw=1.5, label=f"budget {budget:.0f} µs")
        ax.axvline(
            budget * P99_SHARE, color="tab:orange", ls="--", lw=1.2, label="budget / 3: p99 limit"
        )
        ax.axvline(s["p99_us"], color="black", ls=":", lw=1.2, label=f"p99 {s['p99_us']:.0f} µs")
        ax.set_xlim(low, top)
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(
            f"{row['label']}: {s['calls']} calls, {s['misses']} misses, "
            f"preempted {row['timings'].involuntary}x",
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("calls")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("time per call (µs, log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_report(
    model: Model,
    blocksizes: list[int],
    seconds: float,
    progress: Callable[[str, float], None] = lambda stage, done: None,
    rate: int = contract.SAMPLE_RATE,
) -> dict[str, Any]:
    """Measure every block size (a stream at ``rate`` Hz), the bare step call and offline
    speed; return the report.

    ``progress(stage, seconds_done)`` is called between timed calls for a progress bar.
    """
    from rtsep.engine import Separator

    sep = Separator(model)
    rows = []
    stages: list[tuple[str, int, int, Callable[[], Callable[[], None]]]] = []
    for frames in blocksizes:

        def make(frames: int = frames) -> Callable[[], None]:
            sep.prepare(rate, max_block_size=frames, channels=contract.CHANNELS)
            return process_call(sep, frames)

        stages.append((f"process {frames}", frames, rate, make))
    stages.append(
        (f"step call ({model.hop})", model.hop, contract.SAMPLE_RATE, lambda: StepCall(model))
    )
    for label, frames, row_rate, make in stages:
        call = make()
        time_calls(call, seconds=min(0.2, seconds / 4))  # warm-up: caches, allocator, clocks
        timings = time_calls(call, seconds=seconds, tick=lambda t, label=label: progress(label, t))
        progress(label, seconds)
        rows.append(
            {
                "label": label,
                "summary": summarize(timings.wall_ns, frames, row_rate),
                "cpu": summarize(timings.cpu_ns, frames, row_rate),
                "timings": timings,
            }
        )
    progress("offline", 0.0)
    offline = offline_speed(model, seconds)
    progress("offline", seconds)
    return {
        "format": "rtsep-bench/1",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": seconds,
        "rate": rate,
        "latency_samples": sep.latency_samples,
        "machine": machine_info(model),
        "rows": rows,
        "offline": offline,
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    """The whole report with the raw per-call timings (ns), for sharing and re-plotting."""
    data = dict(report)
    data["rows"] = [
        {
            "label": r["label"],
            **r["summary"],
            "holds": verdict(r),
            "cpu_mean_us": r["cpu"]["mean_us"],
            "cpu_p99_us": r["cpu"]["p99_us"],
            "voluntary_switches": r["timings"].voluntary,
            "involuntary_switches": r["timings"].involuntary,
            "times_ns": r["timings"].wall_ns.tolist(),
            "cpu_times_ns": r["timings"].cpu_ns.tolist(),
        }
        for r in report["rows"]
    ]
    path.write_text(json.dumps(data, indent=1))
