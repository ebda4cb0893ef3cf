"""Clear failures of ``rtsep live`` and the device and port listings, on real JACK servers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.jack

RATE = 44100


@pytest.fixture
def song(tmp_path, music):
    path = tmp_path / "in.wav"
    sf.write(path, music(2.0), RATE, subtype="FLOAT")
    return path


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtsep: error: "), result.stderr
    return lines[0]


def test_devices_lists_the_jack_device(rtsep_cli):
    result = rtsep_cli("devices")
    assert result.returncode == 0, result.stderr
    assert "system" in result.stdout and "JACK Audio Connection Kit" in result.stdout


def test_midi_ports_lists_another_programs_port(rtsep_cli, jack_env):
    name = f"rtsep-ports-{os.getpid()}"
    code = (
        "import rtmidi, sys; o = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, sys.argv[1]); "
        "o.open_virtual_port('knobs'); print('ready', flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, name],
        env=jack_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "ready"
        result = rtsep_cli("midi-ports")
    finally:
        other.stdin.close()
        other.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "Jack" in result.stdout and f"{name}:knobs" in result.stdout


def test_unknown_device_lists_the_devices(rtsep_cli, toy_model_dir, song):
    line = one_line_error(
        rtsep_cli(
            "live",
            "--model",
            toy_model_dir,
            "--file",
            song,
            "--device",
            "no-such-card",
            "--duration",
            "1",
        )
    )
    assert "no-such-card" in line and "0: system (JACK Audio Connection Kit)" in line


def test_unknown_midi_port_lists_the_ports(rtsep_cli, toy_model_dir, song):
    line = one_line_error(
        rtsep_cli(
            "live",
            "--model",
            toy_model_dir,
            "--file",
            song,
            "--midi-port",
            "no-such-keyboard",
            "--duration",
            "1",
        )
    )
    assert "no-such-keyboard" in line and "inputs are:" in line


def test_existing_recording_is_not_overwritten(rtsep_cli, toy_model_dir, song, tmp_path):
    out = tmp_path / "take.wav"
    out.write_bytes(b"keep me")
    line = one_line_error(
        rtsep_cli(
            "live", "--model", toy_model_dir, "--file", song, "--record", out, "--duration", "1"
        )
    )
    assert "--force" in line and out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "take.wav"]


def test_device_at_a_rare_rate_is_refused(rtsep_cli, jack_env, private_jack, toy_model_dir, song):
    """48 kHz and the other common rates are resampled (test_live_file); a rate with no
    short common period with 44.1 kHz is one clear line."""
    name, _ = private_jack(rate=47999)
    result = rtsep_cli(
        "live", "--model", toy_model_dir, "--file", song, "--duration", "1", env=jack_env(name)
    )
    line = one_line_error(result)
    assert "47999" in line and "48000" in line


def test_server_that_dies_mid_stream_keeps_the_recording(
    jack_env, private_jack, live_process, toy_model_dir, song, tmp_path
):
    name, stop_server = private_jack()
    out = tmp_path / "take.wav"
    try:
        args = ("--model", toy_model_dir, "--file", song, "--record", out, "--duration", "30")
        live = live_process(*args, env=jack_env(name))
        time.sleep(0.5)
    finally:
        stop_server()
    stdout, stderr = live.communicate(timeout=30)
    assert live.returncode == 1
    assert "audio device stopped" in stderr and f"recording kept in {out}" in stderr
    assert "xruns" in stdout
    recorded = sf.info(out).frames
    assert recorded > RATE // 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "take.wav"]


def slow_model(toy: Path, folder: Path) -> Path:
    """The toy model with a step graph about 10x slower than real time (same outputs)."""
    import onnx
    from onnx import helper, numpy_helper

    shutil.copytree(toy, folder)
    model = onnx.load(folder / "step.onnx")
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([300, 10], np.int64), "slow_repeats"),
            numpy_helper.from_array(np.full((640, 640), 1e-3, np.float32), "slow_w"),
            numpy_helper.from_array(np.zeros(1, np.float32), "slow_zero"),
        ]
    )
    busy = [
        helper.make_node("Tile", ["audio", "slow_repeats"], ["slow_big"]),
        helper.make_node("MatMul", ["slow_big", "slow_w"], ["slow_1"]),
        helper.make_node("MatMul", ["slow_1", "slow_w"], ["slow_2"]),
        helper.make_node("ReduceSum", ["slow_2"], ["slow_sum"], keepdims=0),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["drums", "slow_nothing"], ["drums_slow"]),
    ]
    nodes = list(graph.node)
    at = next(i for i, n in enumerate(nodes) if "drums" in n.input)  # drums' first user
    nodes[at:at] = busy
    for node in nodes[at + len(busy) :]:
        node.input[:] = ["drums_slow" if name == "drums" else name for name in node.input]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, folder / "step.onnx")
    return folder


def test_model_slower_than_real_time_lets_the_input_through(
    rtsep_cli, toy_model_dir, song, tmp_path, music
):
    model = slow_model(toy_model_dir, tmp_path / "slow")
    out = tmp_path / "take.wav"
    result = rtsep_cli(
        "live", "--model", model, "--file", song, "--record", out, "--duration", "1.5"
    )
    assert result.returncode == 0, result.stderr
    misses = int(re.search(r"deadline misses (\d+)", result.stdout).group(1))
    dry = int(re.search(r"overload dry callbacks (\d+)", result.stdout).group(1))
    callbacks = int(re.search(r"(\d+) callbacks", result.stdout).group(1))
    assert misses >= 4 and dry > callbacks // 2
    assert misses < callbacks // 10  # tried again about once a second, not on every callback
    y, _ = sf.read(out, dtype="float32")
    x, _ = sf.read(song, dtype="float32")
    # every source is on, so dry and separated are both the input one hop late: switching
    # between them (into and out of the overload) must neither jump in time nor leave a gap
    hop = 64
    np.testing.assert_allclose(y[hop:], x[: len(y) - hop], atol=1e-5)


def test_ctrl_c_stops_cleanly_and_keeps_the_recording(live_process, toy_model_dir, song, tmp_path):
    out = tmp_path / "take.wav"
    args = ("--model", toy_model_dir, "--file", song, "--record", out, "--duration", "30")
    live = live_process(*args)
    time.sleep(0.5)
    live.send_signal(signal.SIGINT)
    stdout, stderr = live.communicate(timeout=30)
    assert live.returncode == 0, stderr
    frames = int(re.search(r"recorded .* \((\d+) frames", stdout).group(1))
    assert sf.info(out).frames == frames > RATE // 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "take.wav"]
