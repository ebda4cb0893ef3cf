"""The streaming engine: equal to offline separation, mixture-consistent, click-free, robust."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtsep
from rtsep.engine import RAMP_MS, Separator
from rtsep.errors import RtsepError
from rtsep.model import providers_here

HOP = rtsep.HOP
MAX_BLOCK = 512
slow_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module", params=providers_here())
def model(toy_model_dir, request):
    return rtsep.load_model(toy_model_dir, provider=request.param)


def noise(frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((frames, channels))).astype(np.float32)


def stream(sep: Separator, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Run x through sep in blocks of the given sizes (cycled)."""
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = min(sizes[i % len(sizes)], len(x) - pos)
        out.append(sep.process(np.ascontiguousarray(x[pos : pos + n])))
        pos += n
        i += 1
    return np.concatenate(out)


def remix(model, x: np.ndarray, gains: list[float], wet: float) -> np.ndarray:
    """What the engine should play for x: the sources offline, weighted, blended with x."""
    ref = rtsep.separate(x, 44100, model)
    return wet * sum(g * ref[s] for s, g in zip(model.sources, gains)) + (1 - wet) * x


def delayed(x: np.ndarray, d: int) -> np.ndarray:
    return np.concatenate([np.zeros((d, *x.shape[1:]), x.dtype), x[: len(x) - d]])


@slow_settings
@given(
    sizes=st.lists(st.integers(1, MAX_BLOCK), min_size=1, max_size=12),
    gains=st.lists(st.floats(0, 2), min_size=4, max_size=4),
    wet=st.floats(0, 1),
    channels=st.sampled_from([1, 2]),
)
def test_streaming_equals_offline(model, sizes, gains, wet, channels):
    x = noise(3000, channels, seed=len(sizes))
    sep = rtsep.Separator(model)
    for name, g in zip(sep.sources, gains):
        sep.set_gain(name, g)
    sep.set_dry_wet(wet)
    sep.prepare(44100, MAX_BLOCK, channels)  # gains set before prepare: no ramp
    y = stream(sep, x, sizes)
    assert sep.latency_samples == HOP
    np.testing.assert_allclose(y, delayed(remix(model, x, gains, wet), HOP), atol=1e-4)


def test_all_sources_on_gives_back_the_input(model):
    x = noise(5000)
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, 2)
    y = stream(sep, x, [100, 7, 512, 64, 1])
    np.testing.assert_allclose(y, delayed(x, HOP), atol=1e-4)


@pytest.mark.parametrize("muted", rtsep.SOURCES)
def test_muting_a_source_removes_exactly_it(model, muted):
    x = noise(4000)
    sep = rtsep.Separator(model)
    sep.mute(muted)
    sep.prepare(44100, MAX_BLOCK, 2)
    y = stream(sep, x, [333])
    want = x - rtsep.separate(x, 44100, model)[muted]
    np.testing.assert_allclose(y, delayed(want, HOP), atol=1e-4)


def tones(frames: int, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Sines from 100 Hz to 15 kHz (0.4 of the rate at most) with random phases: inside the
    passband of the engine's resampling."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / rate
    x = sum(
        0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, channels))
        for f in rng.uniform(100, min(15000, 0.4 * rate), 12)
    )
    return x.astype(np.float32)


def error_db(got: np.ndarray, want: np.ndarray, rate: int = 0, below: float = 0.0) -> float:
    """Error energy against ``want``'s, in dB; only below ``below`` Hz when given."""
    if below:
        keep = np.fft.rfftfreq(len(got), 1 / rate) < below
        got, want = (
            np.fft.irfft(np.fft.rfft(a, axis=0) * keep[:, None], len(a), axis=0)
            for a in (got, want)
        )
    return float(10 * np.log10(np.mean((got - want) ** 2) / np.mean(want**2)))


@pytest.mark.parametrize("rate", [48000, 96000, 32000])
def test_at_another_rate_the_input_comes_back_late_by_the_latency(model, rate):
    """All sources on, at a host rate the model does not run at: resampled there and back,
    the input returns ``latency_samples`` late (about 3 ms), a whole number that is true."""
    x = tones(rate // 4, rate)
    sep = rtsep.Separator(model)
    sep.prepare(rate, MAX_BLOCK, 2)
    d = sep.latency_samples
    assert 2.5e-3 < d / rate < 3.6e-3
    y = stream(sep, x, [100, 7, 512, 64, 1])
    assert error_db(y[d + 1000 :], x[1000 : len(x) - d]) < -55


def test_at_48k_muting_a_source_removes_what_offline_separation_finds(model):
    """The separation itself at 48 kHz: the stream minus one source equals the input minus
    that source as ``rtsep.separate`` finds it (resampling files with soxr), late by the
    latency, below 16 kHz (above, the two resamplers' filters differ)."""
    rate = 48000
    x = tones(rate // 2, rate, seed=3)
    sep = rtsep.Separator(model)
    sep.mute("drums")
    sep.prepare(rate, MAX_BLOCK, 2)
    y = stream(sep, x, [128])
    want = x - rtsep.separate(x, rate, model)["drums"]
    d = sep.latency_samples
    assert error_db(y[d + 2000 :], want[2000 : len(x) - d], rate, below=16000) < -60


@slow_settings
@given(
    sizes=st.lists(st.integers(1, MAX_BLOCK), min_size=1, max_size=12),
    channels=st.sampled_from([1, 2]),
)
def test_at_48k_any_block_partition_gives_the_same_stream(model, sizes, channels):
    x = noise(4000, channels, seed=len(sizes))
    whole = rtsep.Separator(model)
    whole.prepare(48000, MAX_BLOCK, channels)
    parts = rtsep.Separator(model)
    parts.prepare(48000, MAX_BLOCK, channels)
    np.testing.assert_allclose(stream(parts, x, sizes), stream(whole, x, [500]), atol=1e-6)


def test_solo_and_toggle_and_bypass(model):
    sep = rtsep.Separator(model)
    sep.solo("bass")
    assert sep.heard == {"drums": False, "bass": True, "other": False, "vocals": False}
    assert sep.soloed == {"bass"}
    sep.solo("bass", False)
    assert sep.soloed == frozenset()
    assert sep.toggle("drums") is False
    assert sep.heard["drums"] is False and sep.heard["vocals"] is True
    sep.only(["vocals"])
    assert [s for s, on in sep.heard.items() if on] == ["vocals"]
    sep.bypass()
    assert sep.dry_wet == 0.0 and sep.bypassed
    x = noise(2000)
    sep.prepare(44100, MAX_BLOCK, 2)
    np.testing.assert_allclose(stream(sep, x, [256]), delayed(x, HOP), atol=1e-6)


def test_gain_change_never_steps_faster_than_the_ramp(model):
    """A constant input gives constant sources; every output step then comes from the gains."""
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, 2)
    dc = np.full((MAX_BLOCK, 2), 0.5, np.float32)
    for _ in range(4):  # settle the delay-line states on the constant
        sep.process(dc)
    ref = rtsep.separate(np.full((4096, 2), 0.5, np.float32), 44100, model)
    peak = max(float(np.abs(v[-1]).max()) for v in ref.values())
    ramp_step = 1.0 / (RAMP_MS * 1e-3 * 44100)
    outs = []
    for action in (
        lambda: sep.mute("drums"),
        lambda: sep.set_gain("bass", 2.0),
        lambda: sep.solo("other"),
        lambda: sep.bypass(),
        lambda: sep.bypass(False),
    ):
        action()
        outs.append(sep.process(dc[:37]))
        outs.append(sep.process(dc))
    y = np.concatenate(outs)
    steps = np.abs(np.diff(y, axis=0))
    assert steps.max() > 0  # the changes did move the output
    # all four sources and the wet amount may ramp at once
    assert steps.max() <= 5 * ramp_step * peak * 2.0 + 1e-6
    # and a mute does complete: after the ramp time the drums are gone
    assert np.abs(y[-1] - y[-2]).max() < 1e-6


@slow_settings
@given(
    gains=st.lists(st.floats(0, 2), min_size=4, max_size=4),
    wet=st.floats(0, 1),
    at=st.integers(0, 2000),
)
def test_after_a_change_the_ramp_lands_on_the_new_mix(model, gains, wet, at):
    """Gains changed mid-stream ramp over at most the ramp time (+ a hop), then the output is
    the new weighted mix exactly as if the gains had been set from the start."""
    x = noise(4000)
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, 2)
    y = [stream(sep, x[:at], [200])] if at else []
    for name, g in zip(sep.sources, gains):
        sep.set_gain(name, g)
    sep.set_dry_wet(wet)
    y.append(stream(sep, x[at:], [200]))
    want = delayed(remix(model, x, gains, wet), HOP)
    settled = at + int(RAMP_MS * 1e-3 * 44100) + 3 * HOP  # a change of at most 1, hop-aligned
    np.testing.assert_allclose(np.concatenate(y)[settled:], want[settled:], atol=1e-4)


def test_nan_and_inf_never_reach_the_state(model):
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, 2)
    bad = noise(256)
    bad[10, 0] = np.nan
    bad[70, 1] = np.inf
    sep.process(bad)
    assert sep.stats["nonfinite"] == 2
    y = stream(sep, noise(4000, seed=3), [128])
    assert np.isfinite(y).all()
    # the delay states hold only sanitized values: output is finite and bounded
    assert np.abs(y).max() < 10


@slow_settings
@given(
    sizes=st.lists(st.integers(1, MAX_BLOCK), min_size=1, max_size=8),
    failing_hop=st.integers(0, 40),
    channels=st.sampled_from([1, 2]),
)
def test_exception_inside_passes_dry_in_time_and_counts(
    model, sizes, failing_hop, channels, monkeypatch
):
    """A failing hop gives the dry input, still one hop late: no jump in time, no gap.

    With every source on, the (mixture-consistent) model gives its input back, so the whole
    output, fault or not, must be the input delayed by the latency.
    """
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, channels)
    session = sep._stepper.session
    run = session.run_with_iobinding
    calls = [0]

    def run_or_fail(binding, options=None):
        calls[0] += 1
        if calls[0] == failing_hop + 1:
            raise RuntimeError("injected inference failure")
        run(binding, options)

    monkeypatch.setattr(session, "run_with_iobinding", run_or_fail)
    x = noise(3000, channels, seed=failing_hop)
    y = stream(sep, x, sizes)
    assert sep.stats["errors"] == 1
    np.testing.assert_allclose(y, delayed(x, HOP), atol=1e-5)


@slow_settings
@given(
    sizes=st.lists(st.integers(1, MAX_BLOCK), min_size=1, max_size=8),
    rested=st.sets(st.integers(0, 30), max_size=10),
    channels=st.sampled_from([1, 2]),
)
def test_resting_the_model_keeps_the_output_in_time(model, sizes, rested, channels):
    """Blocks given to pass_dry (an overload) and the return to process() neither jump in
    time nor leave a gap: with every source on, the output is the input one hop late."""
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, channels)
    x = noise(4000, channels, seed=len(rested))
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = min(sizes[i % len(sizes)], len(x) - pos)
        block = np.ascontiguousarray(x[pos : pos + n])
        out.append(sep.pass_dry(block) if i in rested else sep.process(block))
        pos += n
        i += 1
    np.testing.assert_allclose(np.concatenate(out), delayed(x, HOP), atol=1e-5)


def test_after_a_rest_the_model_starts_afresh_and_ramps_in_from_dry(model):
    sep = rtsep.Separator(model)
    sep.mute("drums")
    sep.prepare(44100, MAX_BLOCK, 2)
    x = noise(6000)
    stream(sep, x[:2000], [64])
    sep.pass_dry(x[2000:2064])
    y = stream(sep, x[2064:], [64])
    dry = x[2000:]  # the input one hop late
    ref = rtsep.separate(x[2064:], 44100, model)  # a fresh model from the return on
    wet = sum(ref[s] for s in sep.sources if s != "drums")
    n = len(y)
    wetness = np.minimum(1, np.arange(1, n - HOP + 1) / (RAMP_MS * 1e-3 * 44100))[:, None]
    np.testing.assert_allclose(y[:HOP], dry[:HOP], atol=1e-6)  # the remembered hop first
    want = dry[HOP:n] + wetness * (wet[: n - HOP] - dry[HOP:n])
    np.testing.assert_allclose(y[HOP:], want, atol=1e-4)  # then a 5 ms ramp to the mix


@pytest.mark.parametrize(("frames", "rate"), [(64, 44100), (23, 44100), (128, 48000)])
def test_process_keeps_no_memory_in_steady_state(model, frames, rate):
    """No growth over thousands of calls; transient temporaries stay small and fixed.

    Python itself makes small objects (array views, scalars) in any call; what must not
    happen is a buffer per call or memory that grows with the number of calls.
    """
    sep = rtsep.Separator(model)
    sep.prepare(rate, MAX_BLOCK, 2)
    block, out = noise(frames), np.zeros((frames, 2), np.float32)
    tracemalloc.start()
    for _ in range(500):
        sep.process(block, out=out)
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(5000):
        sep.process(block, out=out)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after - before <= 256  # nothing kept per call (5000 calls)
    assert peak - before < 8192  # no per-call buffers (a hop of sources is 2 KB)


def test_reset_forgets_the_past(model):
    sep = rtsep.Separator(model)
    sep.prepare(44100, MAX_BLOCK, 2)
    x = noise(1000)
    first = stream(sep, x, [100])
    sep.reset()
    np.testing.assert_array_equal(stream(sep, x, [100]), first)


def test_bad_arguments_are_clear(model):
    sep = rtsep.Separator(model)
    with pytest.raises(RtsepError, match="prepare"):
        sep.process(noise(64))
    with pytest.raises(RtsepError, match="4000"):
        sep.prepare(4000, 256, 2)
    with pytest.raises(RtsepError, match=r"48000\.5"):
        sep.prepare(48000.5, 256, 2)
    with pytest.raises(RtsepError, match="between 44101 and 44100 Hz"):
        sep.prepare(44101, 256, 2)
    with pytest.raises(RtsepError, match="6 channels"):
        sep.prepare(44100, 256, 6)
    with pytest.raises(RtsepError, match="max_block_size"):
        sep.prepare(44100, 0, 2)
    sep.prepare(44100, 256, 2)
    with pytest.raises(RtsepError, match="frames"):
        sep.process(noise(257))
    with pytest.raises(RtsepError, match="channels"):
        sep.process(noise(64, 1))
    with pytest.raises(RtsepError, match="float32"):
        sep.process(noise(64).astype(np.float64))
    with pytest.raises(RtsepError, match="unknown source 'guitar'"):
        sep.set_gain("guitar", 1.0)
    with pytest.raises(RtsepError, match="gain"):
        sep.set_gain("drums", float("nan"))
    with pytest.raises(RtsepError, match="dry/wet"):
        sep.set_dry_wet(1.5)
