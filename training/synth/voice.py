"""Formant colouring of a rendered lead: a singer's vocal tract laid over a GM sample.

A voice's spectral envelope comes from its vocal tract: resonances (formants) that stay put
while the pitch moves and change with the vowel. A sampled instrument's envelope moves with
the pitch instead, and each library's lead samples have their own. Leads coloured this way
give the model the voice's cue (fixed resonances, vowels changing at note onsets) rather than
one library's samples, which is what the held-out library's leads do not share.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from rtsep.contract import SAMPLE_RATE

VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "ɪ": (390.0, 1990.0, 2550.0),
    "ɛ": (530.0, 1840.0, 2480.0),
    "æ": (660.0, 1720.0, 2410.0),
    "ɑ": (730.0, 1090.0, 2440.0),
    "ɔ": (570.0, 840.0, 2410.0),
    "ʊ": (440.0, 1020.0, 2240.0),
    "u": (300.0, 870.0, 2240.0),
    "ʌ": (640.0, 1190.0, 2390.0),
    "ɝ": (490.0, 1350.0, 1690.0),
}
"""First three formants in Hz of ten English vowels, adult male averages (Peterson and
Barney, 1952); a singer scales them by the length of their tract."""

BLOCK = 128
"""Samples between updates of the formant filters (2.9 ms): fine enough for vowel glides."""


def draw_singer(rng: np.random.Generator) -> dict:
    """One singer's tract: formant scale (1.0 a male tract, up to 1.25 a short one),
    bandwidths, formant levels, the share of the sample heard uncoloured, and how fast one
    vowel glides into the next."""
    return {
        "scale": round(float(rng.uniform(1.0, 1.25)), 3),
        "bandwidths_hz": [round(float(rng.uniform(lo, hi))) for lo, hi in _BANDWIDTHS],
        "levels_db": [0.0] + [round(float(rng.uniform(lo, hi)), 1) for lo, hi in _LEVELS],
        "dry": round(float(rng.uniform(0.02, 0.15)), 3),
        "glide_ms": round(float(rng.uniform(20.0, 80.0)), 1),
    }


_BANDWIDTHS = ((50.0, 110.0), (70.0, 150.0), (110.0, 220.0))
_LEVELS = ((-9.0, -2.0), (-16.0, -6.0))  # F2 and F3 against F1


def formant_tracks(
    onsets: list[float], n_frames: int, singer: dict, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Formant frequencies (blocks, 3) in Hz, one row per BLOCK samples, and the vowel sung
    from each onset (seconds) on: each note's vowel is reached with the singer's glide."""
    blocks = -(-n_frames // BLOCK)
    names = list(VOWELS)
    vowels = [names[int(i)] for i in rng.integers(len(names), size=len(onsets))]
    target = np.empty((blocks, 3))
    target[:] = VOWELS[vowels[0]] if vowels else VOWELS["ʌ"]
    for t, v in zip(onsets, vowels):
        target[max(0, int(t * SAMPLE_RATE) // BLOCK) :] = VOWELS[v]
    pole = float(np.exp(-BLOCK / (singer["glide_ms"] * 1e-3 * SAMPLE_RATE)))
    tracks = lfilter([1.0 - pole], [1.0, -pole], target, axis=0, zi=(pole * target[:1]))[0]
    return tracks * singer["scale"], vowels


def colour(audio: np.ndarray, formants: np.ndarray, singer: dict) -> np.ndarray:
    """``audio`` (frames, channels) through the singer's tract: parallel resonators at
    ``formants`` (from ``formant_tracks``), their coefficients stepped every BLOCK samples
    with the filter states carried over, plus the dry share of the input."""
    out = singer["dry"] * audio
    wet = 1.0 - singer["dry"]
    for k, (bw, level_db) in enumerate(zip(singer["bandwidths_hz"], singer["levels_db"])):
        gain = wet * 10 ** (level_db / 20)
        state = np.zeros((2, audio.shape[1]))
        for b, f in enumerate(formants[:, k]):
            lo, hi = b * BLOCK, min((b + 1) * BLOCK, len(audio))
            num, den = _resonator(float(f), bw)
            y, state = lfilter(num, den, audio[lo:hi], axis=0, zi=state)
            out[lo:hi] += gain * y
    return out.astype(np.float32)


def _resonator(freq: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """A two-pole band-pass with 0 dB at ``freq`` (the RBJ cookbook's constant-peak form)."""
    w0 = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w0) * bandwidth / (2 * freq)
    a0 = 1 + alpha
    return np.array([alpha, 0.0, -alpha]) / a0, np.array(
        [1.0, -2 * np.cos(w0) / a0, (1 - alpha) / a0]
    )


def voice_lead(
    audio: np.ndarray, onsets: list[float], rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """A rendered lead (frames, channels) coloured by a singer drawn from ``rng``, at the
    same RMS as it came; and the singer's settings and vowels for meta.json."""
    singer = draw_singer(rng)
    formants, vowels = formant_tracks(onsets, len(audio), singer, rng)
    out = colour(audio, formants, singer)
    before, after = _rms(audio), _rms(out)
    if after > 0:
        out *= np.float32(before / after)
    return out, singer | {"vowels": "".join(vowels)}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
