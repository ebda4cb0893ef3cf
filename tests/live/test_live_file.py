"""``rtsep live --file --record`` on a real JACK server records what ``rtsep.separate`` gives."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import rtsep
from rtsep import contract

pytestmark = pytest.mark.jack

RATE = contract.SAMPLE_RATE


def best_lag(recorded: np.ndarray, reference: np.ndarray, max_lag: int = 4096) -> int:
    """The delay of ``recorded`` against ``reference`` by cross-correlation (FFT)."""
    n = min(len(recorded), len(reference))
    a, b = recorded[:n, 0].astype(np.float64), reference[:n, 0].astype(np.float64)
    size = 1 << (2 * n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    return int(np.argmax(xc[: max_lag + 1]))


def play(rtsep_cli, model_dir, path: Path, *extra, env=None) -> tuple[str, np.ndarray, int]:
    """``rtsep live --file PATH --record`` (it must succeed): its stdout, the recording and
    the recording's rate."""
    out = path.with_name("out.wav")
    result = rtsep_cli(
        "live", "--model", model_dir, "--file", path, "--record", out, *extra, env=env
    )
    assert result.returncode == 0, result.stderr
    y, rate = sf.read(out, dtype="float32")
    return result.stdout, y, rate


def test_recording_matches_offline_separation(rtsep_cli, toy_model_dir, tmp_path, music, xruns):
    x = music(3.0)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    duration = 2.5
    stdout, y, rate = play(
        rtsep_cli, toy_model_dir, tmp_path / "in.wav", "--sources", "drums", "--duration", duration
    )
    count = xruns(stdout)
    assert rate == RATE and len(y) == round(duration * RATE)

    model = rtsep.load_model(toy_model_dir, provider="cpu")
    reference = rtsep.separate(x, RATE, model=model)["drums"]
    lag = best_lag(y, reference)
    aligned, ref = y[lag:], reference[: len(y) - lag]
    corr = min(np.corrcoef(aligned[:, c], ref[:, c])[0, 1] for c in range(2))
    print(f"xruns {count}, lag {lag} samples, correlation {corr:.6f}")
    assert corr > 0.99
    assert lag == 64  # the engine's latency, the only delay between file and recording
    np.testing.assert_allclose(aligned, ref, atol=1e-4)


def test_a_server_at_48k_plays_the_file_back_late_by_the_latency(
    rtsep_cli, jack_env, private_jack, toy_model_dir, tmp_path, xruns
):
    """A JACK server at 48 kHz: the stream runs at the server's rate, resampled to the
    model's and back inside the engine. All sources on, the recording is the file late by
    the reported latency (a whole number of samples, about 3 ms)."""
    rate = 48000
    name, _ = private_jack(rate=rate)
    t = np.arange(rate)[:, None] / rate
    x = sum(0.2 * np.sin(2 * np.pi * f * t + [0.0, 1.0]) for f in (110, 1250, 7000, 14000))
    sf.write(tmp_path / "in.wav", x.astype(np.float32), rate, subtype="FLOAT")
    stdout, y, got_rate = play(rtsep_cli, toy_model_dir, tmp_path / "in.wav", env=jack_env(name))
    xruns(stdout)
    latency = int(re.search(rf"engine (\d+) samples at {rate} Hz", stdout).group(1))
    assert 2.5e-3 < latency / rate < 3.5e-3
    assert got_rate == rate and len(y) == len(x) + latency
    assert best_lag(y, x) == latency
    # away from the file's abrupt start and end, which band-limiting rings around
    err, ref = y[latency + 1000 : -1000] - x[1000:-1000], x[1000:-1000]
    assert 10 * np.log10(np.mean(err**2) / np.mean(ref**2)) < -60


def test_file_end_stops_after_the_latency(rtsep_cli, toy_model_dir, tmp_path, music, xruns):
    x = music(1.0, seed=1)
    sf.write(tmp_path / "in.flac", x, RATE)
    stdout, y, _ = play(rtsep_cli, toy_model_dir, tmp_path / "in.flac")
    xruns(stdout)
    assert len(y) == len(x) + 64  # every file frame is heard, then the stream stops
    np.testing.assert_allclose(y[64:], x, atol=1e-4)  # all sources on: the input comes back
