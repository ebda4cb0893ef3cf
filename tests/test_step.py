"""``Stepper``: hop by hop it equals the step graph run plainly, in every provider mode."""

from __future__ import annotations

import numpy as np
import pytest

import rtsep
from rtsep.model import providers_here
from rtsep.step import Stepper

MODES = [("cpu", False)]
if "cuda" in providers_here():
    MODES += [("cuda", True), ("cuda", False)]


@pytest.fixture(params=MODES, ids=lambda mode: f"{mode[0]}{'-graph' if mode[1] else ''}")
def mode(request) -> tuple[str, bool]:
    return request.param


def noise(frames: int, seed: int = 3) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((frames, 2))).astype(np.float32)


def run_hops(stepper: Stepper, audio: np.ndarray, sources: np.ndarray, x: np.ndarray):
    """Feed x hop by hop through the caller's arrays: (frames, sources, channels)."""
    hop = audio.shape[1]
    outs = []
    for start in range(0, len(x), hop):
        audio[:] = x[start : start + hop].T
        stepper.run()
        outs.append(sources.transpose(2, 1, 0).copy())
    return np.concatenate(outs)


def make(toy_model_dir, mode):
    provider, graph = mode
    model = rtsep.load_model(toy_model_dir, provider=provider)
    audio = np.zeros((model.channels, model.hop), np.float32)
    sources = np.zeros((model.channels, len(model.sources), model.hop), np.float32)
    return Stepper(model, audio, sources, cuda_graph=graph), audio, sources


def test_hops_equal_the_step_graph_run_plainly(toy_model_dir, mode, step_graph_hop_by_hop):
    x = noise(64 * 40)
    want = step_graph_hop_by_hop(rtsep.load_model(toy_model_dir, provider="cpu"), x)
    stepper, audio, sources = make(toy_model_dir, mode)
    np.testing.assert_allclose(run_hops(stepper, audio, sources, x), want, atol=1e-5)


def test_zero_states_starts_afresh_in_place(toy_model_dir, mode):
    x = noise(64 * 12, seed=4)
    stepper, audio, sources = make(toy_model_dir, mode)
    first = run_hops(stepper, audio, sources, x)
    run_hops(stepper, audio, sources, noise(64 * 5, seed=5))  # an odd count: parity 1
    stepper.zero_states()
    np.testing.assert_allclose(run_hops(stepper, audio, sources, x), first, atol=1e-6)


def test_arrays_of_the_wrong_shape_type_or_layout_are_refused(toy_model_dir):
    model = rtsep.load_model(toy_model_dir, provider="cpu")
    audio = np.zeros((model.channels, model.hop), np.float32)
    sources = np.zeros((model.channels, len(model.sources), model.hop), np.float32)
    for bad_audio in (audio[:1], audio.astype(np.float64), np.asfortranarray(audio)):
        with pytest.raises(ValueError, match="audio must be a C-contiguous float32 array"):
            Stepper(model, bad_audio, sources)
    with pytest.raises(ValueError, match="sources must be"):
        Stepper(model, audio, sources[:, :2])


@pytest.mark.skipif("cuda" not in providers_here(), reason="CUDA does not run here")
def test_without_a_cuda_runtime_to_copy_with_a_graph_falls_back_to_plain_cuda(
    toy_model_dir, monkeypatch, step_graph_hop_by_hop
):
    # What happens off Linux, where there is no libcudart.so to load for the copy back.
    def no_runtime(*_):
        raise OSError("libcudart.so: cannot open shared object file")

    monkeypatch.setattr("rtsep.step._device_to_host", no_runtime)
    x = noise(64 * 20, seed=6)
    want = step_graph_hop_by_hop(rtsep.load_model(toy_model_dir, provider="cpu"), x)
    stepper, audio, sources = make(toy_model_dir, ("cuda", True))
    assert not stepper.cuda_graph
    np.testing.assert_allclose(run_hops(stepper, audio, sources, x), want, atol=1e-5)
