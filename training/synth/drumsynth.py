"""Procedural drum kits: every voice synthesised from oscillators and noise with random settings.

The allowed sample libraries hold only a handful of drum kits, so a model trained on them may learn
those kits rather than drums (held-out kits scored far below HPSS). A kit drawn here is a new
point in a continuous space (kick pitch sweep and decay, snare tone/noise balance, metallic hat
partials, room length), so no two songs share a kit. Each voice is rendered in a few variants
(round robin) with velocity shaping the attack brightness, so repeated hits are not identical.
Measured once, as a third leg of the default model: it did not raise held-out drums
(``training/comparisons/leg3-varied``), so the generator uses it only with --varied-drums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from rtsep.contract import SAMPLE_RATE

VARIANTS = 3
"""Round-robin variants rendered per voice."""

HAT_RATIOS = np.array([1.0, 1.4828, 1.8006, 2.5463, 2.6306, 3.8969])
"""Partials of a metallic voice relative to its lowest (the classic six-square-wave cymbal)."""


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE


def _filter(x: np.ndarray, kind: str, freq, order: int = 2) -> np.ndarray:
    """Butterworth filter (kind 'low', 'high' or 'band'); frequencies in Hz, clipped to Nyquist."""
    nyq = SAMPLE_RATE / 2
    wn = np.clip(np.asarray(freq, dtype=np.float64) / nyq, 1e-4, 0.99)
    sos = signal.butter(order, wn, btype=kind, output="sos")
    return signal.sosfilt(sos, x)


def _env(t: np.ndarray, decay: float, attack: float = 0.0005) -> np.ndarray:
    """A fast linear attack into an exponential decay (time constant ``decay`` seconds)."""
    return np.minimum(1.0, t / attack) * np.exp(-t / decay)


def _sweep(t: np.ndarray, f_start: float, f_end: float, tau: float) -> np.ndarray:
    """A sine whose frequency glides exponentially from f_start to f_end (drums' pitch drop)."""
    freq = f_end + (f_start - f_end) * np.exp(-t / tau)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)


def _metal(t: np.ndarray, base: float, rng: np.random.Generator) -> np.ndarray:
    """Six detuned square waves: the inharmonic spectrum of hats, cymbals and bells."""
    ratios = HAT_RATIOS * rng.uniform(0.97, 1.03, len(HAT_RATIOS))
    phases = rng.uniform(0, 1, len(ratios))
    return sum(signal.square(2 * np.pi * (base * r * t + p)) for r, p in zip(ratios, phases))


VOICE_LEVELS = {42: 0.5, 44: 0.4, 46: 0.5, 49: 0.5, 51: 0.35, 57: 0.45, 37: 0.6, 56: 0.5}
"""Peak level of a voice relative to kick and snare, as a drummer balances a kit."""


@dataclass
class DrumKitSpec:
    """The random settings of one procedural kit (one per song)."""

    kick: tuple[float, float, float, float]  # f_start, f_end, sweep tau, decay
    snare: tuple[float, float, float, float, float]  # tone Hz, tone decay, noise decay, mix, band
    hat: tuple[float, float, float]  # metal base Hz, closed decay, high-pass Hz
    tom_decay: float
    cymbal_decay: float
    drive: float  # 0: clean; > 0: tanh saturation amount
    room: float  # reverb tail length in seconds (0: dry)


def random_kit(rng: np.random.Generator) -> DrumKitSpec:
    """Draw a kit: from a deep 808-like boom to a tight acoustic-like thud, clean or driven."""
    f_end = rng.uniform(38, 75)
    return DrumKitSpec(
        kick=(
            f_end * rng.uniform(2.0, 6.0),
            f_end,
            rng.uniform(0.008, 0.05),
            rng.uniform(0.08, 0.6),
        ),
        snare=(
            rng.uniform(140, 280),
            rng.uniform(0.03, 0.15),
            rng.uniform(0.06, 0.3),
            rng.uniform(0.2, 0.9),
            rng.uniform(1200, 5000),
        ),
        hat=(rng.uniform(250, 560), rng.uniform(0.02, 0.09), rng.uniform(5000, 9000)),
        tom_decay=rng.uniform(0.12, 0.5),
        cymbal_decay=rng.uniform(0.6, 2.0),
        drive=float(rng.uniform(0.5, 4.0)) if rng.random() < 0.4 else 0.0,
        room=float(rng.uniform(0.15, 0.8)) if rng.random() < 0.5 else 0.0,
    )


def _voice(note: int, kit: DrumKitSpec, rng: np.random.Generator) -> np.ndarray:
    """One hit of a GM drum note on this kit, mono float64, peak at its ``VOICE_LEVELS``."""
    jitter = rng.uniform(0.97, 1.03)
    noise = rng.standard_normal
    if note in (35, 36):  # kick: pitch-dropping sine plus a click
        f0, f1, tau, decay = kit.kick
        t = _t(decay * 5)
        click = _filter(noise(len(t)), "high", 2000) * _env(t, 0.002) * rng.uniform(0.1, 0.6)
        x = _sweep(t, f0 * jitter, f1, tau) * _env(t, decay) + click
    elif note in (38, 40):  # snare: two tones and a band of noise
        tone, tone_decay, noise_decay, mix, band = kit.snare
        t = _t(max(tone_decay, noise_decay) * 5)
        body = _sweep(t, tone * 1.4, tone * jitter, 0.01) + 0.5 * np.sin(2 * np.pi * tone * 1.6 * t)
        snares = _filter(noise(len(t)), "band", (band * 0.3, min(band * 3, 18000)))
        x = (1 - mix) * body * _env(t, tone_decay) + mix * 3 * snares * _env(t, noise_decay)
    elif note == 37:  # side stick: a short woody click
        t = _t(0.08)
        x = _filter(noise(len(t)), "band", (800, 3500)) * _env(t, 0.008) * 3
        x += np.sin(2 * np.pi * rng.uniform(400, 900) * t) * _env(t, 0.015)
    elif note == 39:  # clap: a few noise bursts, then a short tail
        t = _t(0.4)
        gap = rng.uniform(0.008, 0.013)
        bursts = sum(_env(np.maximum(t - k * gap, 0), 0.006) for k in range(4))
        x = _filter(noise(len(t)), "band", (900, 3000)) * (bursts + _env(t, 0.08))
    elif note in (42, 44, 46):  # hats: high-passed metal and noise
        base, closed, hp = kit.hat
        decay = closed * (0.6 if note == 44 else 1.0) if note != 46 else closed * rng.uniform(4, 9)
        t = _t(decay * 5)
        x = _filter(_metal(t, base * jitter, rng) + 2 * noise(len(t)), "high", hp) * _env(t, decay)
    elif note in (49, 51, 57):  # crash, ride, splash: long metal wash, a ride has a bell
        base = kit.hat[0] * rng.uniform(0.7, 1.1)
        decay = kit.cymbal_decay * {49: 1.0, 51: 0.5, 57: 0.4}[note]
        t = _t(decay * 4)
        x = _filter(_metal(t, base, rng) + 3 * noise(len(t)), "high", 3000) * _env(t, decay, 0.002)
        if note == 51:
            x = 0.5 * x + _filter(_metal(t, base * 1.5, rng), "band", (2000, 6000)) * _env(t, 0.3)
    elif note == 56:  # cowbell: two square tones through a band-pass
        t = _t(0.4)
        f = rng.uniform(500, 620)
        tones = signal.square(2 * np.pi * f * t) + signal.square(2 * np.pi * f * 1.48 * t)
        x = _filter(tones, "band", (f * 0.8, f * 4)) * _env(t, rng.uniform(0.06, 0.2))
    else:  # toms (41-50) and anything else: a pitch-dropping sine, pitch rising with the note
        f1 = 70 * 2 ** ((note - 41) / 8) * rng.uniform(0.85, 1.15)
        t = _t(kit.tom_decay * 5)
        x = _sweep(t, f1 * 1.6, f1, 0.03) * _env(t, kit.tom_decay)
        x += 0.2 * _filter(noise(len(t)), "band", (f1 * 2, f1 * 12)) * _env(t, 0.03)
    if kit.drive:
        x = np.tanh(kit.drive * x / max(np.abs(x).max(), 1e-9))
    return x * (VOICE_LEVELS.get(note, 1.0) / max(float(np.abs(x).max()), 1e-9))


def render_synth_kit(
    notes: list[tuple[float, int, int]], n_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Mix (time s, GM note, velocity) hits of a fresh random kit; stereo float32, and its facts.

    Velocity scales the level and, through a low-pass that opens with it, the brightness."""
    kit = random_kit(rng)
    voices: dict[int, list[np.ndarray]] = {}
    pans: dict[int, float] = {}
    out = np.zeros((n_frames, 2), np.float64)
    for t, note, vel in notes:
        if note not in voices:
            voices[note] = [_voice(note, kit, rng) for _ in range(VARIANTS)]
            pans[note] = float(rng.uniform(-0.5, 0.5)) if note not in (35, 36, 38, 40) else 0.0
        start = round(t * SAMPLE_RATE)
        if start >= n_frames:
            continue
        x = voices[note][int(rng.integers(VARIANTS))][: n_frames - start]
        v = vel / 127.0
        if v < 0.8:  # softer hits are darker
            x = _filter(x, "low", 2000 + 16000 * v, order=1)
        pan = pans[note]
        gains = v**1.3 * np.array([1 - max(pan, 0), 1 + min(pan, 0)])
        out[start : start + len(x)] += x[:, None] * gains
    if kit.room:
        m = int(kit.room * SAMPLE_RATE)
        decay = np.exp(-6.9 / m * np.arange(m))
        ir = rng.standard_normal((m, 2)) * decay[:, None]
        ir *= rng.uniform(0.1, 0.3) / np.sqrt(np.sum(ir**2, axis=0))
        out = out + signal.fftconvolve(out, ir, axes=0)[:n_frames]
    facts = {
        "kick_hz": round(kit.kick[1], 1),
        "drive": round(kit.drive, 2),
        "room": round(kit.room, 2),
    }
    return out.astype(np.float32), facts
