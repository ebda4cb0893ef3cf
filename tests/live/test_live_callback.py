"""The audio callback driven directly, without a device: output, no allocation, faults."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

import rtsep
from rtsep.live import Live, LiveOptions, Ring

RATE = 44100
LATENCY = 64


@pytest.fixture(scope="module")
def model(toy_model_dir):
    return rtsep.load_model(toy_model_dir, provider="cpu")


@pytest.fixture
def song(tmp_path, music):
    path = tmp_path / "in.wav"
    sf.write(path, music(1.0, seed=4), RATE, subtype="FLOAT")
    return path


def started(live: Live, channels: int = 2) -> Live:
    """Prepared, with the file player read to the end (its thread then allocates no more)."""
    live.prepare(channels)
    live.player.start()
    end = time.monotonic() + 10
    while not live.player.ring.closed and time.monotonic() < end:
        time.sleep(0.01)
    return live


def drive(live: Live, block: int) -> np.ndarray:
    """Call the callback until the run is done; what it output, in order."""
    out = np.zeros((block, live.channels), np.float32)
    heard = []
    while not live.done:
        live._tick(None, out, block, 0)
        heard.append(out.copy())
    return np.concatenate(heard)


@pytest.mark.parametrize("block", [64, 100, 1024])
def test_callback_output_and_recording(model, song, tmp_path, block):
    x, _ = sf.read(song, dtype="float32")
    options = LiveOptions(
        file=song, record=tmp_path / "take.wav", blocksize=block, sources=["bass", "other"]
    )
    live = started(Live(rtsep.Separator(model), options))
    heard = drive(live, block)
    recorded = live.recorder.finish()
    live.player.stop()
    refs = rtsep.separate(x, RATE, model=model)
    want = refs["bass"] + refs["other"]
    y, _ = sf.read(recorded, dtype="float32")
    assert len(y) == len(x) + LATENCY  # every frame of the file, then the latency
    np.testing.assert_allclose(y, heard[: len(y)], atol=0)
    np.testing.assert_allclose(y[LATENCY:], want, atol=1e-5)
    assert live.counters.underruns == 0 and live.recorder.dropped == 0


@pytest.mark.parametrize("rate", [44100, 48000])
def test_callback_allocates_no_block_buffers(model, song, rate):
    """Also at 48 kHz, where each call resamples to the model's rate and back."""
    block = 1024
    options = LiveOptions(file=song, blocksize=block, samplerate=rate)
    live = started(Live(rtsep.Separator(model), options))
    out = np.zeros((block, 2), np.float32)
    for _ in range(20):  # warm-up: numpy's and onnxruntime's small caches fill in the first calls
        live._tick(None, out, block, 0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(12):
            live._tick(None, out, block, 0)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        live.player.stop()
    assert not live.done and live.counters.errors == 0  # every call separated the file
    assert peak - before < out.nbytes  # small Python objects only, never a block of audio
    assert current - before < 1024


class Failing(rtsep.Separator):
    """A separator whose every third call raises, as a broken model would."""

    calls = 0

    def process(self, block, out=None):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("model failed")
        return super().process(block, out)


def test_failure_in_the_callback_passes_the_input_through(model, song):
    x, _ = sf.read(song, dtype="float32")
    live = started(Live(Failing(model), LiveOptions(file=song, blocksize=128)))
    heard = drive(live, 128)
    live.player.stop()
    assert live.counters.errors == live.separator.calls // 3 > 0
    failed = heard[2 * 128 : 3 * 128]  # the third callback: its input, as it came
    np.testing.assert_array_equal(failed, x[2 * 128 : 3 * 128])


@given(
    capacity=st.integers(1, 64),
    steps=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=40),
)
def test_ring_is_a_fifo(capacity, steps):
    ring = Ring(capacity, 2)
    sent = received = 0
    for write, read in steps:
        data = np.arange(sent, sent + write, dtype=np.float32)[:, None].repeat(2, axis=1)
        n = ring.write(data)
        assert n == min(write, capacity - (sent - received))
        sent += n
        out = np.full((read, 2), -1.0, np.float32)
        got = ring.read_into(out)
        assert got == min(read, sent - received)
        np.testing.assert_array_equal(out[:got, 0], np.arange(received, received + got))
        received += got
        assert ring.available == sent - received and ring.space == capacity - ring.available


def test_file_at_another_rate_and_mono_is_converted(model, tmp_path, music):
    import soxr

    x = music(1.0, seed=5)[::2, 0]  # 22050 Hz, mono
    path = tmp_path / "mono22k.wav"
    sf.write(path, x, RATE // 2, subtype="FLOAT")
    live = started(Live(rtsep.Separator(model), LiveOptions(file=path, blocksize=256)))
    heard = drive(live, 256)
    live.player.stop()
    want = soxr.resample(x, RATE // 2, RATE)
    assert abs(live.counters.frames - (len(want) + LATENCY)) < 256
    n = len(want) - 200
    np.testing.assert_allclose(heard[LATENCY : LATENCY + n, 0], want[:n], atol=2e-3)
    np.testing.assert_array_equal(heard[:, 0], heard[:, 1])
