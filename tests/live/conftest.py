"""A real JACK server (dummy backend, paced like a sound card) for the live tests.

The session uses the server that runs already (CI starts one) or starts its own and stops it
by its PID. The tests run ``rtsep`` in child processes: PortAudio lists its devices when
sounddevice is first imported, and a child imports it after the server is up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

JACK_RATE = 44100
JACK_PERIOD = 128


def jack_env(name: str | None = None) -> dict[str, str]:
    """The environment for a JACK client of server ``name`` (None = the default server)."""
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    if name is not None:
        env["JACK_DEFAULT_SERVER"] = name
    else:
        env.pop("JACK_DEFAULT_SERVER", None)
    return env


def server_running(name: str | None = None) -> bool:
    result = subprocess.run(["jack_lsp"], env=jack_env(name), capture_output=True, timeout=20)
    return result.returncode == 0


def start_jackd(
    name: str | None = None, rate: int = JACK_RATE, realtime: bool = False
) -> subprocess.Popen:
    """Start ``jackd -d dummy`` (server ``name``) and wait until it answers."""
    command = ["jackd"] + ([] if realtime else ["--no-realtime"]) + (["-n", name] if name else [])
    command += ["-d", "dummy", "-r", str(rate), "-p", str(JACK_PERIOD)]
    proc = subprocess.Popen(
        command, env=jack_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ready = subprocess.run(
        ["jack_wait", "-w", "-t", "20"], env=jack_env(name), capture_output=True, timeout=30
    )
    if ready.returncode != 0:
        stop_jackd(proc)
        pytest.fail(f"jackd ({' '.join(command)}) did not start")
    return proc


def runs_realtime(pid: int) -> bool:
    """Whether any thread of process ``pid`` has a real-time scheduling policy."""
    policies = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            policies.append(os.sched_getscheduler(int(task)))
        except OSError:
            continue
    return any(p in (os.SCHED_FIFO, os.SCHED_RR) for p in policies)


def stop_jackd(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    """The default JACK server: the running one, or one started for the session."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (Debian: jackd2): the live tests need a JACK server")
    if server_running():
        yield
        return
    proc = start_jackd()
    yield
    stop_jackd(proc)


@pytest.fixture
def private_jack(jack_server):
    """``private_jack(rate=44100, realtime=False)`` starts a JACK server of this test's own
    (stopped at the end); returns its name and a function that stops it earlier. A real-time
    server that gets no real-time scheduling skips the test."""
    started: list[subprocess.Popen] = []

    def start(rate: int = JACK_RATE, realtime: bool = False) -> tuple[str, Callable[[], None]]:
        name = f"rtsep-test-{os.getpid()}-{len(started)}"
        proc = start_jackd(name, rate, realtime)
        started.append(proc)
        if realtime and not runs_realtime(proc.pid):
            pytest.skip("jackd got no real-time scheduling here (needs root or rtprio)")
        return name, lambda: stop_jackd(proc)

    yield start
    for proc in started:
        if proc.poll() is None:
            stop_jackd(proc)


@pytest.fixture(name="jack_env")
def jack_env_fixture(jack_server):
    """``jack_env(name=None)``: the environment of a client of the (running) JACK server."""
    return jack_env


@pytest.fixture(name="music")
def music_fixture():
    """``music(seconds, seed=0)``: stereo test audio at 44100 Hz."""
    return music


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones with a moving level and noise bursts, peaks under 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * JACK_RATE)) / JACK_RATE
    left = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    right = 0.25 * np.sin(2 * np.pi * 330 * t + 1.0)
    bursts = (np.sin(2 * np.pi * 4 * t) > 0.6) * rng.standard_normal(len(t)) * 0.15
    return np.stack([left + bursts, right + bursts], axis=1).astype(np.float32)


@pytest.fixture(name="xruns")
def xruns_fixture():
    """``xruns(stdout)``: the xrun count in ``rtsep live``'s final report (which must have one)."""
    return xruns


def xruns(stdout: str) -> int:
    match = re.search(r"xruns (\d+)", stdout)
    assert match, f"no xrun count in the output:\n{stdout}"
    return int(match.group(1))


@pytest.fixture
def live_process(jack_server):
    """``live_process(*args, env=None)``: ``rtsep live ARGS...`` started in a child process,
    returned once it streams (its first line); killed at the end of the test if still alive."""
    started: list[subprocess.Popen] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtsep.cli", "live", *map(str, args)],
            env=env or jack_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        line = proc.stdout.readline().strip()
        assert line == "rtsep live: streaming", proc.stderr.read() if not line else line
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def rtsep_cli(jack_server):
    """Run ``rtsep ARGS...`` in a child process; returns the CompletedProcess."""

    def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 60):
        return subprocess.run(
            [sys.executable, "-m", "rtsep.cli", *map(str, args)],
            env=env or jack_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
