"""A MIDI note from another process, through JACK MIDI, toggles a source in a live run.

The sender is a python-rtmidi virtual output in a child process, ``jack_connect``-ed to the
virtual input of ``rtsep live`` (another child). rtsep places each applied message on the
stream's timeline (the frame being produced when its MIDI callback ran); the recording
shows where the change starts and how it ramps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_ON, SYSTEM_EXCLUSIVE

import rtsep
from rtsep import contract
from rtsep.engine import RAMP_MS

pytestmark = pytest.mark.jack

RATE = contract.SAMPLE_RATE
LATENCY = 64
BLOCK = 128  # rtsep live's default --blocksize

SENDER = """
import sys, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, sys.argv[1])
out.open_virtual_port("out")
print("ready", flush=True)
for line in sys.stdin:
    out.send_message([int(b) for b in line.split()])
    print("sent", flush=True)
"""


def jack_port(fragment: str, env: dict[str, str], timeout: float = 10.0) -> str:
    """The JACK port whose name contains ``fragment``, once it exists."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ports = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True)
        found = [p for p in ports.stdout.splitlines() if fragment in p]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no JACK port named like {fragment!r}")


@pytest.fixture
def midi_sender(jack_env):
    """``midi_sender(name)``: a child process with a JACK MIDI output port ``name:out`` that
    sends what ``send`` writes to it; closed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", SENDER, name],
            env=jack_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait(timeout=10)


def send(sender: subprocess.Popen, *message: int) -> None:
    sender.stdin.write(" ".join(map(str, message)) + "\n")
    sender.stdin.flush()
    assert sender.stdout.readline().strip() == "sent"


def test_note_from_another_process_toggles_a_source(
    jack_env, live_process, midi_sender, music, toy_model_dir, tmp_path
):
    tag = f"rtsep-test-{os.getpid()}"
    x = music(5.0, seed=2)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    out = tmp_path / "out.wav"
    sender = midi_sender(f"{tag}-sender")
    live = live_process(
        *("--model", toy_model_dir, "--file", tmp_path / "in.wav", "--record", out),
        *("--sources", "drums", "--duration", "3", "--midi-virtual", tag),
    )
    source, sink = (
        jack_port(f"{tag}-sender:", jack_env()),
        jack_port(f"rtsep:{tag}", jack_env()),
    )
    subprocess.run(["jack_connect", source, sink], env=jack_env(), check=True)
    time.sleep(0.3)
    send(sender, SYSTEM_EXCLUSIVE, 1, 2, 3, 0xF7)  # ignored
    send(sender, NOTE_ON, 37, 100)  # note 37: toggle bass (on)
    stdout, stderr = live.communicate(timeout=30)
    assert live.returncode == 0, stderr
    arrival = float(re.search(r"midi toggle bass at frame ([\d.]+)", stdout).group(1))
    assert re.search(r"midi messages 2: applied 1, .* ignored 1", stdout), stdout

    y, _ = sf.read(out, dtype="float32")
    refs = rtsep.separate(x, RATE, model=rtsep.load_model(toy_model_dir, provider="cpu"))
    drums, bass = (np.zeros_like(y) for _ in range(2))
    drums[LATENCY:] = refs["drums"][: len(y) - LATENCY]
    bass[LATENCY:] = refs["bass"][: len(y) - LATENCY]
    added = y - drums  # what the note added: nothing, then bass ramped in
    onset = int(np.flatnonzero(np.abs(added).max(axis=1) > 1e-4)[0])
    delay_ms = (onset - arrival) / RATE * 1e3
    device_ms = float(re.search(r"device ([\d.]+) ms", stdout).group(1))
    print(
        f"MIDI arrival at frame {arrival:.1f}, change starts at {onset}: {delay_ms:.2f} ms "
        f"in the stream, {delay_ms + device_ms:.2f} ms with the device's output latency"
    )
    assert -BLOCK / RATE * 1e3 < delay_ms  # the callback may start just before the arrival
    assert delay_ms + device_ms < 10.0

    ramp = RAMP_MS * 1e-3 * RATE
    strong = np.abs(bass[:, 0]) > 0.02
    gain = np.where(strong, added[:, 0] / np.where(strong, bass[:, 0], 1.0), np.nan)
    steps = np.abs(np.diff(gain[onset - 1 : onset + int(2 * ramp)]))
    assert np.nanmax(steps) <= 1.0 / ramp * 1.01  # no step larger than the ramp allows
    after = slice(onset + int(ramp) + 1, len(y))
    np.testing.assert_allclose(added[after], bass[after], atol=1e-4)  # bass fully on: audible
    np.testing.assert_allclose(added[:onset], 0.0, atol=1e-4)


def test_controller_on_an_existing_port_sets_a_gain(
    live_process, midi_sender, music, toy_model_dir, tmp_path
):
    tag = f"rtsep-knobs-{os.getpid()}"
    x = music(4.0, seed=3)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    out = tmp_path / "out.wav"
    sender = midi_sender(tag)
    live = live_process(
        *("--model", toy_model_dir, "--file", tmp_path / "in.wav", "--record", out),
        *("--sources", "drums", "--duration", "2", "--midi-port", tag, "--midi-channel", "3"),
    )
    time.sleep(0.3)
    send(sender, CONTROL_CHANGE, 20, 0)  # channel 1: filtered out
    send(sender, CONTROL_CHANGE | 2, 20, 0)  # channel 3, CC 20: drums gain 0
    stdout, stderr = live.communicate(timeout=30)
    assert live.returncode == 0, stderr
    assert "other channel 1" in stdout
    arrival = float(re.search(r"midi gain drums 0.000 at frame ([\d.]+)", stdout).group(1))
    y, _ = sf.read(out, dtype="float32")
    drums = rtsep.separate(x, RATE, model=rtsep.load_model(toy_model_dir, provider="cpu"))["drums"]
    silent_from = int(arrival) + BLOCK + LATENCY + int(RAMP_MS * 1e-3 * RATE) + 1
    np.testing.assert_allclose(
        y[LATENCY : int(arrival)], drums[: int(arrival) - LATENCY], atol=1e-4
    )
    assert np.abs(y[silent_from:]).max() < 1e-6
