"""A small drum sampler over Hydrogen drumkits: parse drumkit.xml, map GM drum notes, render notes.

Hydrogen kits give drums that sound unlike the GM soundfonts, which widens the training data.
Each instrument has velocity layers (min/max in 0..1) pointing at sample files.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from rtsep.contract import SAMPLE_RATE
from rtsep.errors import RtsepError

KITS_DIR = Path("/usr/share/hydrogen/data/drumkits")
TRAIN_KITS = ("Audiophob", "BJA_Pacific", "HardElectro1", "Millo-Drums_v.1", "rumpf_kit_z01_h2")

# GM drum note -> name patterns tried in order (regex on the lowercased instrument name)
GM_NAMES = {
    36: (r"kick|bass ?drum|\bbd|bassdrum|djembe.*bass|drum$",),
    35: (r"kick|bass ?drum|\bbd",),
    37: (r"stick|rim|click",),
    38: (r"snare|\bsd|slap",),
    40: (r"snare|\bsd|slap",),
    39: (r"clap|snap|hand",),
    42: (r"clos|chh|hat|\bhh|shaker",),
    44: (r"pedal|hat|\bhh",),
    46: (r"open|ohh|hat",),
    41: (r"floor|tom ?l|low ?tom|tom 1|tom|conga|bongo|tone",),
    43: (r"floor|tom ?l|low ?tom|tom|conga|bongo|tone",),
    45: (r"tom ?l|low ?tom|tom ?m|tom|conga|bongo|tone",),
    47: (r"tom ?m|mid|tom|conga|bongo",),
    48: (r"tom ?h|hi ?tom|high ?tom|tom|bongo",),
    50: (r"tom ?h|hi ?tom|high ?tom|tom|bongo",),
    49: (r"crash|cymbal|\bcc",),
    57: (r"crash|cymbal|splash|\bcc",),
    51: (r"ride|cymbal|\brc",),
    56: (r"cowbell|bell|agogo|block",),
}
# GM hand-percussion notes (``music.HAND_PERCUSSION``) -> the kit instrument that stands in for
# them. Matched without random draws, so renders of songs without them stay as they were.
HAND_NAMES = {
    **dict.fromkeys((60, 61, 65), r"bongo|timbale|tom ?h|hi ?tom|high ?tom|tom"),
    **dict.fromkeys((62, 63, 64, 66), r"conga|tom ?l|low ?tom|floor|tom"),
    **dict.fromkeys((54, 69, 70, 82), r"shaker|tamb|maraca|cabasa|pedal|hat"),
    **dict.fromkeys((67, 68), r"agogo|cowbell|bell"),
    **dict.fromkeys((75, 76, 77), r"clave|block|stick|rim|click"),
}


@dataclass
class Layer:
    path: Path
    lo: float
    hi: float
    gain: float


@dataclass
class Instrument:
    name: str
    gain: float
    layers: list[Layer]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str, default: str = "") -> str:
    for c in el:
        if _local(c.tag) == name:
            return (c.text or default).strip()
    return default


@lru_cache(maxsize=32)
def load_kit(name: str) -> list[Instrument]:
    """Instruments of a Hydrogen kit that have at least one readable sample layer."""
    folder = KITS_DIR / name
    xml = folder / "drumkit.xml"
    if not xml.is_file():
        raise RtsepError(f"Hydrogen drumkit not found: {xml} (apt-get install hydrogen-drumkits)")
    root = ET.parse(xml).getroot()
    out = []
    for inst in root.iter():
        if _local(inst.tag) != "instrument":
            continue
        layers = []
        for el in inst.iter():
            if _local(el.tag) == "layer":
                f = folder / _child(el, "filename")
                if f.is_file():
                    layers.append(
                        Layer(
                            f,
                            float(_child(el, "min", "0")),
                            float(_child(el, "max", "1")),
                            float(_child(el, "gain", "1")),
                        )
                    )
        if not layers:  # old format: a single filename on the instrument
            f = folder / _child(inst, "filename")
            if _child(inst, "filename") and f.is_file():
                layers.append(Layer(f, 0.0, 1.0, 1.0))
        if layers:
            out.append(
                Instrument(
                    _child(inst, "name").lower(), float(_child(inst, "gain", "1") or 1), layers
                )
            )
    if not out:
        raise RtsepError(f"Hydrogen drumkit {name} has no readable samples")
    return out


def note_map(kit: list[Instrument], rng: np.random.Generator) -> dict[int, int]:
    """GM drum note -> instrument index, by name; unmatched kit notes get a random instrument,
    unmatched hand-percussion notes (``HAND_NAMES``, mapped after every draw and without one,
    so that kits render songs without them as before) the snare's."""
    mapping = {}
    for note, patterns in GM_NAMES.items():
        for pat in patterns:
            hits = [i for i, inst in enumerate(kit) if re.search(pat, inst.name)]
            if hits:
                mapping[note] = hits[int(rng.integers(len(hits)))] if note in (36, 38) else hits[0]
                break
        else:
            mapping[note] = int(rng.integers(len(kit)))
    for note, pattern in HAND_NAMES.items():
        hits = [i for i, inst in enumerate(kit) if re.search(pattern, inst.name)]
        mapping[note] = hits[0] if hits else mapping[38]
    return mapping


@lru_cache(maxsize=1024)
def _sample(path: Path, semitones: int = 0) -> np.ndarray:
    """A sample as float32 stereo at the project rate, tuned by ``semitones`` (speed change)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    data = data[:, :2]
    rate = sr * 2 ** (semitones / 12)
    if rate != SAMPLE_RATE:
        data = soxr.resample(data, rate, SAMPLE_RATE).astype(np.float32)
    return data


@dataclass
class Variation:
    """How one instrument of a kit is re-voiced for a song: tuning, shorter decay, drive."""

    semitones: int = 0
    decay: float = 0.0  # seconds of an extra exponential decay; 0: the sample's own
    drive: float = 0.0  # tanh saturation amount; 0: clean

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Variation:
        return cls(
            int(rng.integers(-5, 6)),
            float(rng.uniform(0.05, 0.5)) if rng.random() < 0.4 else 0.0,
            float(rng.uniform(0.5, 3.0)) if rng.random() < 0.25 else 0.0,
        )

    def apply(self, path: Path) -> np.ndarray:
        data = _sample(path, self.semitones)
        if self.decay:
            t = np.arange(len(data), dtype=np.float32) / SAMPLE_RATE
            data = data * np.exp(-t / self.decay)[:, None]
        if self.drive:
            peak = max(float(np.abs(data).max()), 1e-9)
            data = np.tanh(self.drive * data / peak) * (peak / np.tanh(self.drive))
        return data.astype(np.float32)


def render_kit(
    name: str,
    notes: list[tuple[float, int, int]],
    n_frames: int,
    rng: np.random.Generator,
    vary: bool = False,
) -> np.ndarray:
    """Mix (time s, GM note, velocity) hits of a Hydrogen kit into a stereo float32 buffer.

    ``vary`` re-voices every instrument for this song (``Variation``), so that a kit stands for
    a family of kits; test renders keep the kit as it is."""
    kit = load_kit(name)
    mapping = note_map(kit, rng)
    pans = rng.uniform(-0.5, 0.5, len(kit))
    variations = [Variation.draw(rng) if vary else Variation() for _ in kit]
    voiced: dict[tuple[int, Path], np.ndarray] = {}
    out = np.zeros((n_frames, 2), np.float32)
    for t, note, vel in notes:
        index = mapping.get(note, mapping[38])
        inst = kit[index]
        v = vel / 127.0
        layers = [la for la in inst.layers if la.lo <= v <= la.hi] or inst.layers
        layer = layers[int(rng.integers(len(layers)))]
        key = (index, layer.path)
        if key not in voiced:
            voiced[key] = variations[index].apply(layer.path)
        data = voiced[key]
        start = round(t * SAMPLE_RATE)
        if start >= n_frames:
            continue
        seg = data[: n_frames - start]
        pan = pans[index]
        g = layer.gain * inst.gain * v**1.3 * np.array([1 - max(pan, 0), 1 + min(pan, 0)])
        out[start : start + len(seg)] += seg * g.astype(np.float32)
    return out
