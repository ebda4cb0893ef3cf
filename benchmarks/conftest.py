"""Fixtures for the benchmarks: the model under test, the Identity floor, per-call timing.

The model is the folder in ``RTSEP_BENCH_MODEL`` if set, else the bundled default when it
exists, else the toy model of the root conftest; the choice is printed in pytest's summary
and stored in every benchmark's ``extra_info``.
Short mode (``--bench-short`` or ``RTSEP_BENCH_SHORT=1``, what CI runs) takes about a tenth
of the calls; the budget rule is the same in both modes.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from rtsep import bench, contract
from rtsep.model import Model, default_model_path, load_model

MODEL = os.environ.get("RTSEP_BENCH_MODEL")
"""A model folder to benchmark instead of the default choice."""

PROVIDER = os.environ.get("RTSEP_BENCH_PROVIDER", "cpu")
"""onnxruntime provider to benchmark: cpu (the engine's default), cuda or auto."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-short",
        action="store_true",
        help="rtsep benchmarks: few calls, for CI (same as RTSEP_BENCH_SHORT=1)",
    )


def _short(config: pytest.Config) -> bool:
    return bool(config.getoption("--bench-short")) or os.environ.get("RTSEP_BENCH_SHORT") == "1"


def _model_choice() -> str:
    if MODEL:
        return f"the model in RTSEP_BENCH_MODEL ({MODEL})"
    if default_model_path().is_dir():
        return f"the bundled default model ({default_model_path()})"
    return f"the toy model (no bundled default model at {default_model_path()})"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Say which model the benchmarks ran on (also under ``-q``), when they ran."""
    if model := config.stash.get(_CHOSEN, None):
        mode = "short" if _short(config) else "full"
        terminalreporter.write_line(
            f"rtsep benchmarks: {_model_choice()}: {model.name}, provider {model.provider}, "
            f"{mode} mode"
        )


_CHOSEN = pytest.StashKey[Model]()


@pytest.fixture(scope="session")
def short(request: pytest.FixtureRequest) -> bool:
    """Whether the benchmarks run in short mode."""
    return _short(request.config)


@pytest.fixture(scope="session")
def bench_model(request: pytest.FixtureRequest) -> Model:
    """The model to benchmark: RTSEP_BENCH_MODEL, else the bundled default, else the toy."""
    if MODEL:
        model = load_model(MODEL, PROVIDER)
    elif default_model_path().is_dir():
        model = load_model(None, PROVIDER)
    else:
        model = load_model(request.getfixturevalue("toy_model_dir"), PROVIDER)
    request.config.stash[_CHOSEN] = model
    return model


@pytest.fixture(scope="session")
def identity_model(bench_model: Model, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """``bench_model`` with its step graph replaced by a trivial one: the floor.

    Same inputs and outputs, same sizes: states pass through Identity and the sources are
    the input broadcast (Unsqueeze + Expand), so a call costs onnxruntime's overhead alone.
    """
    import onnx

    folder = tmp_path_factory.mktemp("identity") / bench_model.name
    folder.mkdir()
    for name in (contract.META_FILE, contract.SEQUENCE_FILE):
        shutil.copy(bench_model.path / name, folder / name)
    onnx.save(_identity_step(bench_model), folder / contract.STEP_FILE)
    return load_model(folder, PROVIDER)


def _identity_step(model: Model):
    from onnx import TensorProto, helper

    rows, n, hop = model.channels, len(model.sources), model.hop

    def tensor(name: str, shape: tuple[int, ...]):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    inputs = [tensor(contract.AUDIO_INPUT, (rows, hop))]
    outputs = [tensor(contract.SOURCES_OUTPUT, (rows, n, hop))]
    nodes = [
        helper.make_node("Unsqueeze", [contract.AUDIO_INPUT, "axis1"], ["audio_u"]),
        helper.make_node("Expand", ["audio_u", "shape"], [contract.SOURCES_OUTPUT]),
    ]
    inits = [
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [rows, n, hop]),
    ]
    for name, shape in model.states:
        inputs.append(tensor(name, shape))
        outputs.append(tensor(name + contract.STATE_OUT_SUFFIX, shape))
        nodes.append(helper.make_node("Identity", [name], [name + contract.STATE_OUT_SUFFIX]))
    graph = helper.make_graph(nodes, "identity_step", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


WINDOWS = 10
"""Measurement windows a benchmark may take before it fails.

A shared virtual machine has slow spells outside the process's control, seconds to minutes
long: a whole window can run 1.3-1.7x slower on the thread's own CPU time while the fastest
call stays as fast (figures in the README, "Measurement windows"). So a window that breaks a
rule is measured again, and the rule holds when one window holds it. A real regression
breaks every window. Each window's verdict is recorded in ``extra_info["windows"]``, and a
warning names the benchmark when a later window held.
"""

WINDOW_PAUSE_S = 6.0
"""Seconds idle before each window after the first, so that the windows sample the machine
over about a minute rather than inside one slow spell (figures in the README,
"Measurement windows"). The pause is outside every timed call."""


@pytest.fixture
def measure(benchmark, bench_model: Model, short: bool) -> Callable[..., bench.Timings]:
    """``measure(fn, rounds, problems)`` → per-call wall and on-CPU times of ``fn``.

    The first window runs through pytest-benchmark (its table shows it): one call per round
    (``pedantic``, ``iterations=1``) so that ``stats.data`` holds every call's wall time,
    from which the tail is computed; the thread's CPU time is read in ``setup``/``teardown``,
    outside pytest-benchmark's timer. A tenth as many warm-up calls come first. While
    ``problems(timings)`` names a broken rule, another window is timed by
    ``rtsep.bench.time_calls`` after ``WINDOW_PAUSE_S``, up to ``WINDOWS``; the test fails
    with the last one's problems. The timings returned are those of the last window.
    """
    benchmark.extra_info.update(
        model=bench_model.name, provider=bench_model.provider, short_mode=short
    )

    def plain_window(fn: Callable[[], object], rounds: int, warmup: int) -> bench.Timings:
        bench.time_calls(fn, calls=warmup)
        return bench.time_calls(fn, calls=rounds)

    def first_window(fn: Callable[[], object], rounds: int, warmup: int) -> bench.Timings:
        if benchmark.disabled:
            benchmark.pedantic(fn)  # one plain call: marks the fixture used
            return plain_window(fn, rounds, warmup)
        cpu: list[int] = []

        def start() -> None:
            cpu.append(time.thread_time_ns())

        def stop() -> None:
            cpu[-1] = time.thread_time_ns() - cpu[-1]

        before = bench.context_switches()
        benchmark.pedantic(
            fn,
            setup=start,
            teardown=stop,
            rounds=rounds,
            iterations=1,
            warmup_rounds=warmup,
        )
        after = bench.context_switches()
        return bench.Timings(
            (np.asarray(benchmark.stats.stats.data) * 1e9).astype(np.int64),
            np.asarray(cpu[warmup:], np.int64),
            after[0] - before[0],
            after[1] - before[1],
        )

    def run(
        fn: Callable[[], object], rounds: int, problems: Callable[[bench.Timings], list[str]]
    ) -> bench.Timings:
        warmup = max(5, rounds // 10)
        timings = first_window(fn, rounds, warmup)
        verdicts = [problems(timings)]
        while verdicts[-1] and len(verdicts) < WINDOWS:
            time.sleep(WINDOW_PAUSE_S)
            timings = plain_window(fn, rounds, warmup)
            verdicts.append(problems(timings))
        benchmark.extra_info["windows"] = ["; ".join(v) or "held" for v in verdicts]
        assert not verdicts[-1], f"{len(verdicts)} windows, the last: " + "; ".join(verdicts[-1])
        if len(verdicts) > 1:
            warnings.warn(
                f"window {len(verdicts)} held after {'; '.join(verdicts[0])}", stacklevel=2
            )
        return timings

    return run


@pytest.fixture
def within_budget(benchmark, measure: Callable[..., bench.Timings]) -> Callable[..., None]:
    """``within_budget(fn, frames, rounds, rate=44100)``: measure ``fn`` against the
    hot-path rule for a block of ``frames`` at ``rate`` Hz.

    The rule holds on the thread's own CPU time always. On the wall clock it holds too,
    except that a miss caused only by preemption (other work on a shared machine, see
    ``rtsep.bench.busy_machine``) is reported as xfail, unless ``RTSEP_BENCH_STRICT=1``.
    The tail of the window that counts goes into ``extra_info``.
    """
    strict = os.environ.get("RTSEP_BENCH_STRICT") == "1"

    def problems(timings: bench.Timings, frames: int, rate: int) -> list[str]:
        cpu = bench.budget_problems(bench.summarize(timings.cpu_ns, frames, rate))
        found = ["on-CPU " + p for p in cpu]
        wall = bench.budget_problems(bench.summarize(timings.wall_ns, frames, rate))
        if wall and not found and (strict or not bench.busy_machine(timings, frames, rate)):
            found = ["wall clock " + p for p in wall]
        return found

    def check(
        fn: Callable[[], object], frames: int, rounds: int, rate: int = contract.SAMPLE_RATE
    ) -> None:
        timings = measure(fn, rounds, lambda t: problems(t, frames, rate))
        wall = bench.summarize(timings.wall_ns, frames, rate)
        cpu = bench.summarize(timings.cpu_ns, frames, rate)
        benchmark.extra_info.update(
            {k: wall[k] for k in ("budget_us", "p50_us", "p99_us", "p99.9_us", "max_us")}
        )
        benchmark.extra_info.update(
            misses=wall["misses"],
            calls=wall["calls"],
            cpu_mean_us=cpu["mean_us"],
            cpu_p99_us=cpu["p99_us"],
            voluntary_switches=timings.voluntary,
            involuntary_switches=timings.involuntary,
        )
        if bench.budget_problems(wall):  # held only because the machine was busy
            pytest.xfail(bench.busy_machine(timings, frames, rate))

    return check


@pytest.fixture(scope="session")
def rounds(short: bool) -> Callable[[int], int]:
    """``rounds(frames)``: calls to time; as much audio per block size, at least 2000 calls
    (200 in short mode) so that a p99.9 exists at 64 frames and a p99 at 1024."""

    def count(frames: int) -> int:
        audio = 200_000 if short else 2_000_000  # frames of audio through each benchmark
        return max(200 if short else 2000, audio // frames)

    return count
