"""Baselines on a small synthetic MUSDB18-HQ-layout folder: their ordering and the output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtsep.contract import SOURCES
from training import baselines

RATE = 44100


def stems(seed: int, seconds: float = 3.0) -> dict[str, np.ndarray]:
    """Clicks for drums, a low tone, a chord and a vibrato tone: HPSS has something to split."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    drums = np.zeros_like(t)
    for start in range(0, len(t) - 4000, RATE // 4):
        drums[start : start + 4000] += rng.standard_normal(4000) * np.exp(-np.arange(4000) / 400)
    bass = np.sin(2 * np.pi * 55 * rng.uniform(1, 2) * t)
    other = sum(
        np.sin(2 * np.pi * f * t) for f in 261.6 * rng.uniform(1, 1.5) * np.array([1, 1.26, 1.5])
    )
    vocals = np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
    mono = {"drums": drums, "bass": bass, "other": other / 3, "vocals": vocals}
    return {
        name: (0.2 * np.stack([s, 0.8 * s], axis=1)).astype(np.float32) for name, s in mono.items()
    }


@pytest.fixture
def musdb(tmp_path) -> Path:
    for i in range(2):
        folder = tmp_path / "test" / f"song{i}"
        folder.mkdir(parents=True)
        track = stems(i)
        for name, signal in track.items():
            sf.write(folder / f"{name}.wav", signal, RATE, subtype="FLOAT")
        sf.write(folder / "mixture.wav", sum(track.values()), RATE, subtype="FLOAT")
    return tmp_path


def test_baselines_rank_as_expected(musdb, tmp_path, capsys):
    out = tmp_path / "baselines.json"
    assert baselines.main([str(musdb), "--split", "test", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hpss SDR" in printed and "irm SI-SDR" in printed and "mix4 SDR" in printed
    result = json.loads(out.read_text())
    assert result["command"].startswith("python -m training.baselines ")
    median = {name: r["median"] for name, r in result["methods"].items()}

    assert set(median["hpss"]) == {"drums", "other"}  # HPSS estimates only these two
    assert set(median["irm"]) == set(median["mix4"]) == set(SOURCES)
    for source in SOURCES:  # the oracle is an upper bound; mixture / 4 the floor
        assert median["irm"][source]["sdr"] > median["mix4"][source]["sdr"] + 3
        assert median["irm"][source]["si_sdr"] > median["mix4"][source]["si_sdr"] + 3
    assert median["irm"]["drums"]["sdr"] > median["hpss"]["drums"]["sdr"]
    assert median["hpss"]["drums"]["sdr"] > median["mix4"]["drums"]["sdr"] + 1
    assert set(result["methods"]["irm"]["tracks"]) == {"song0", "song1"}


def test_mixture_quarter_scores_as_computed_by_hand(musdb):
    """mix/4 per window: SDR = 10 log10(Σ s² / Σ (m/4 - s)²), median over the 3 windows."""
    scores = baselines.score([musdb / "test" / "song0"], {"mix4": baselines.mixture_quarter}, "t")
    track = stems(0)
    mix = sum(track.values()) / 4
    for source, ref in track.items():
        frames = [
            10 * math.log10(np.sum(r.astype(float) ** 2) / np.sum((m - r.astype(float)) ** 2))
            for r, m in zip(np.split(ref, 3), np.split(mix, 3))
        ]
        got = scores["mix4"]["song0"][source]
        assert got.sdr == pytest.approx(np.median(frames), abs=1e-3)


def test_errors_are_one_line(tmp_path, capsys):
    assert baselines.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("baselines: error:") and err.count("\n") == 1
