"""Composition: a song plan (style, tempo, key, sections, chords) and the MIDI parts of each stem.

Everything here is pure Python driven by one numpy Generator, so that a seed gives the same song.
Times are in beats; pitches are MIDI note numbers; drums use General MIDI drum notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (1, 4, 0, 0),
    (0, 3, 4, 3),
    (5, 3, 0, 4),
    (0, 0, 3, 4),
    (0, 6, 5, 4),
    (0, 3, 0, 4),
    (0, 2, 3, 4),
    (0, 3, 1, 4),
)

STYLES = {
    # tempo range, swing, note density (0..1), drum feel, bass feel, chord feels
    "rock": dict(
        tempo=(95, 160),
        swing=0.0,
        density=0.6,
        drums="rock",
        bass="eighths",
        chords=("stabs", "sustain", "strum"),
    ),
    "funk": dict(
        tempo=(90, 120), swing=0.1, density=0.8, drums="funk", bass="funk", chords=("stabs", "arp")
    ),
    "pop": dict(
        tempo=(90, 130),
        swing=0.0,
        density=0.5,
        drums="pop",
        bass="root",
        chords=("sustain", "arp", "strum"),
    ),
    "electronic": dict(
        tempo=(118, 170),
        swing=0.0,
        density=0.7,
        drums="four",
        bass="offbeat",
        chords=("arp", "pad", "stabs"),
    ),
    "jazz": dict(
        tempo=(80, 160),
        swing=0.5,
        density=0.6,
        drums="swing",
        bass="walking",
        chords=("comp", "sustain"),
    ),
    "ballad": dict(
        tempo=(70, 95),
        swing=0.0,
        density=0.3,
        drums="ballad",
        bass="long",
        chords=("sustain", "pad", "arp"),
    ),
}

BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)
OTHER_PROGRAMS = {
    "sustain": (0, 1, 4, 5, 16, 17, 19, 48, 49, 50, 61),
    "pad": (88, 89, 90, 91, 92, 94, 95, 48, 49, 19),
    "arp": (0, 2, 6, 8, 11, 12, 13, 24, 25, 46, 81, 87),
    "stabs": (0, 4, 16, 17, 27, 28, 29, 30, 61, 62),
    "strum": (24, 25, 26, 27, 29, 30),
    "comp": (0, 1, 4, 5, 26, 11),
}
LEAD_PROGRAMS = (52, 53, 54, 85, 73, 65, 66, 64, 56, 68, 71, 40, 80, 81, 82, 84, 74, 22)
GM_DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # bank 128 programs (standard, room, power...)


@dataclass
class Note:
    start: float
    dur: float
    pitch: int
    vel: int


@dataclass
class Part:
    """One instrument line: GM program (ignored for drums), its notes, pan (-1..1)."""

    program: int
    notes: list[Note] = field(default_factory=list)
    drums: bool = False
    pan: float = 0.0
    reverb: int = 40
    # A sung lead's curves (``sing``): (beat, cents) and (beat, CC 11 value). Kept out of the
    # repr, which identifies a composition (the README test sets' digests are of it).
    bend: list[tuple[float, float]] = field(default_factory=list, repr=False)
    expression: list[tuple[float, int]] = field(default_factory=list, repr=False)


@dataclass
class Song:
    style: str
    tempo: float
    key: int
    scale: str
    beats_per_bar: int
    bars: int
    sections: list[tuple[str, int, int]]  # (name, first bar, bar count)
    chords: list[int]  # scale degree of the chord root for each bar
    active: dict[str, list[bool]]  # per stem, per section: plays or rests
    parts: dict[str, list[Part]] = field(default_factory=dict)
    percussion: str = ""  # hand percussion in the drums: "", "layer" or "ensemble"

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo


def _degree_pitch(song: Song, degree: int, octave_base: int) -> int:
    """MIDI pitch of a scale degree (any integer) above octave_base (a C)."""
    scale = SCALES[song.scale]
    octave, step = divmod(degree, len(scale))
    return octave_base + song.key + 12 * octave + scale[step]


def _chord(song: Song, bar: int, base: int, size: int = 3) -> list[int]:
    root = song.chords[bar]
    return [_degree_pitch(song, root + 2 * i, base) for i in range(size)]


EARLY_SHARE = 0.6
"""Every stem is planned to play in at least one section that starts within this share of the
song (``plan_song``); the test of ``compose`` checks the same promise."""


def plan_song(rng: np.random.Generator, seconds: float) -> Song:
    """Choose style, tempo, key, sections, chords and which stems play in each section."""
    style = str(rng.choice(list(STYLES)))
    spec = STYLES[style]
    tempo = float(rng.uniform(*spec["tempo"]))
    beats_per_bar = 3 if (style in ("jazz", "ballad") and rng.random() < 0.2) else 4
    bars = int(np.ceil(seconds / (60.0 / tempo) / beats_per_bar)) + 1
    scale = str(rng.choice(list(SCALES)))
    key = int(rng.integers(12))
    sections = []
    names = ("intro", "verse", "chorus", "bridge", "verse", "chorus", "outro")
    bar = 0
    i = int(rng.integers(0, 2))
    while bar < bars:
        n = int(min(rng.choice((2, 4, 4, 8)), bars - bar))
        sections.append((names[i % len(names)], bar, n))
        bar += n
        i += 1
    chords = []
    progs = {name: PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))] for name in names}
    for name, _first, n in sections:
        prog = progs[name]
        per = 2 if rng.random() < 0.25 else 1
        chords += [prog[(k // per) % len(prog)] for k in range(n)]
    active = {}
    spbar = beats_per_bar * 60.0 / tempo
    early = [i for i, s in enumerate(sections) if s[1] * spbar < EARLY_SHARE * seconds]
    for stem, p in (("drums", 0.85), ("bass", 0.85), ("other", 0.85), ("vocals", 0.7)):
        on = [bool(rng.random() < p) for _ in sections]
        if not any(on[i] for i in early):
            on[early[int(rng.integers(len(early)))]] = True
        active[stem] = on
    return Song(style, tempo, key, scale, beats_per_bar, bars, sections, chords, active)


def _sections_bars(song: Song, stem: str) -> list[tuple[int, int, bool, bool]]:
    """(bar, index in section, last bar of section, section start) for the bars where stem plays."""
    out = []
    for (_, first, n), on in zip(song.sections, song.active[stem], strict=True):
        if on:
            out += [(first + k, k, k == n - 1, k == 0) for k in range(n)]
    return out


def _vel(rng: np.random.Generator, base: float, spread: float = 12) -> int:
    return int(np.clip(rng.normal(base, spread), 1, 127))


def _swing(song: Song, t: float) -> float:
    """Delay off-beat eighths by the style's swing amount."""
    frac = t % 1.0
    if abs(frac - 0.5) < 1e-6:
        return t + STYLES[song.style]["swing"] * (1 / 6)
    return t


DRUM_GROOVES = {
    # per 16th step of a 4/4 bar: kick, snare, hat probabilities
    "rock": ("1000000010100000", "0000100000001000", "1010101010101010"),
    "pop": ("1000001010000000", "0000100000001000", "1010101010101010"),
    "funk": ("1000001000100100", "0000100101001000", "1111111111111111"),
    "four": ("1000100010001000", "0000100000001000", "0010001000100010"),
    "swing": ("1000000000000000", "0000000000001000", "1000101110001011"),
    "ballad": ("1000000000100000", "0000000000001000", "1000100010001000"),
}


def drum_part(song: Song, rng: np.random.Generator) -> Part:
    feel = STYLES[song.style]["drums"]
    kick, snare, hat = DRUM_GROOVES[feel]
    steps = 4 * song.beats_per_bar
    kick_p = [float(c) * 0.95 + 0.08 * rng.random() for c in kick]
    hat_note = int(rng.choice((42, 42, 44, 51)))
    part = Part(0, drums=True, reverb=int(rng.integers(10, 60)))
    for bar, _k, last, first in _sections_bars(song, "drums"):
        t0 = bar * song.beats_per_bar
        if first and rng.random() < 0.7:
            part.notes.append(Note(t0, 1.0, int(rng.choice((49, 57))), _vel(rng, 105)))
        fill = last and rng.random() < 0.6
        for s in range(steps):
            t = _swing(song, t0 + s / 4)
            j = s % 16
            if fill and s >= steps - 4 * int(rng.integers(1, 3)):
                note = int(rng.choice((38, 45, 47, 48, 50, 41, 43)))
                if rng.random() < 0.8:
                    part.notes.append(Note(t, 0.25, note, _vel(rng, 95)))
                continue
            if rng.random() < kick_p[j]:
                part.notes.append(Note(t, 0.25, 36, _vel(rng, 100 if j % 4 == 0 else 85)))
            if snare[j] == "1":
                part.notes.append(Note(t, 0.25, int(rng.choice((38, 38, 40, 39))), _vel(rng, 105)))
            elif rng.random() < 0.07:  # ghost note
                part.notes.append(Note(t, 0.25, 38, _vel(rng, 35, 8)))
            if hat[j] == "1" and rng.random() < 0.95:
                n = 46 if (j == 14 and rng.random() < 0.3) else hat_note
                part.notes.append(Note(t, 0.25, n, _vel(rng, 90 if j % 4 == 0 else 65)))
    return part


HAND_PERCUSSION = {
    "hand drums": (60, 61, 62, 63, 64, 65, 66),  # bongos, congas, timbales
    "shakers": (54, 69, 70, 82),  # tambourine, cabasa, maracas, shaker
    "bells and woods": (56, 67, 68, 75, 76, 77),  # cowbell, agogo, claves, wood blocks
}
"""General MIDI hand-percussion notes by family: drums-stem sounds that a drum kit lacks."""
ENSEMBLE_SHARE = 0.3
"""Share of hand-percussion songs whose drums are hand percussion alone, without a kit."""


def add_hand_percussion(song: Song, rng: np.random.Generator, part: Part) -> None:
    """Give a drum part a repeating hand-percussion layer: one or two hand drums, maybe a
    shaker, maybe a bell or wood block, each with its own one-bar pattern. In an "ensemble"
    the kit is dropped and a hand drum takes the kick's steps, as in a djembe group."""
    ensemble = rng.random() < ENSEMBLE_SHARE
    song.percussion = "ensemble" if ensemble else "layer"
    drums = HAND_PERCUSSION["hand drums"]
    chosen = [int(n) for n in rng.choice(drums, int(rng.integers(1, 3)) + ensemble, False)]
    for family, p in (("shakers", 0.6), ("bells and woods", 0.4)):
        if rng.random() < p:
            chosen.append(int(rng.choice(HAND_PERCUSSION[family])))
    steps = 4 * song.beats_per_bar
    patterns = {note: rng.random(steps) < rng.uniform(0.15, 0.5) for note in chosen}
    for pattern in patterns.values():  # an instrument chosen plays: at least one step a bar
        if not pattern.any():
            pattern[int(rng.integers(steps))] = True
    if ensemble:
        kick = DRUM_GROOVES[STYLES[song.style]["drums"]][0]
        patterns[chosen[0]] |= np.array([kick[j % 16] == "1" for j in range(steps)])
        part.notes.clear()
    lead = (chosen[0], int(np.argmax(patterns[chosen[0]])))  # never dropped: a hand drum plays
    for bar, _k, _last, _first in _sections_bars(song, "drums"):
        for note, pattern in patterns.items():
            for s in map(int, np.flatnonzero(pattern)):
                if (note, s) == lead or rng.random() < 0.9:
                    t = _swing(song, bar * song.beats_per_bar + s / 4)
                    accent = 100 if s % 4 == 0 else 75
                    part.notes.append(Note(t, 0.25, note, _vel(rng, accent)))


def bass_part(song: Song, rng: np.random.Generator) -> Part:
    feel = STYLES[song.style]["bass"]
    base = 24 if song.key >= 4 else 36
    part = Part(
        int(rng.choice(BASS_PROGRAMS)),
        pan=float(rng.uniform(-0.15, 0.15)),
        reverb=int(rng.integers(0, 25)),
    )
    bpb = song.beats_per_bar
    for bar, _k, _last, _first in _sections_bars(song, "bass"):
        t0 = bar * bpb
        root = _degree_pitch(song, song.chords[bar], base)
        fifth = _degree_pitch(song, song.chords[bar] + 4, base)
        nxt = _degree_pitch(song, song.chords[min(bar + 1, song.bars - 1)], base)
        if feel == "long":
            part.notes.append(Note(t0, bpb * 0.95, root, _vel(rng, 90)))
        elif feel == "root":
            for b in range(bpb):
                part.notes.append(Note(t0 + b, 0.9, root if b % 2 == 0 else fifth, _vel(rng, 90)))
        elif feel == "eighths":
            for e in range(2 * bpb):
                p = root + (12 if rng.random() < 0.1 else 0)
                part.notes.append(Note(t0 + e / 2, 0.45, p, _vel(rng, 95)))
        elif feel == "offbeat":
            for b in range(bpb):
                part.notes.append(Note(t0 + b + 0.5, 0.4, root, _vel(rng, 100)))
        elif feel == "walking":
            for b in range(bpb):
                deg = song.chords[bar] + int(rng.choice((0, 1, 2, 4, -1)))
                p = (
                    root
                    if b == 0
                    else (nxt - 1 if b == bpb - 1 else _degree_pitch(song, deg, base))
                )
                part.notes.append(Note(_swing(song, t0 + b), 0.9, p, _vel(rng, 90)))
        else:  # funk: syncopated 16ths with octaves
            for s in range(4 * bpb):
                if s == 0 or rng.random() < 0.35:
                    p = root + int(rng.choice((0, 0, 12, 7, 10)))
                    part.notes.append(
                        Note(t0 + s / 4, 0.2, p, _vel(rng, 100 if s % 4 == 0 else 80))
                    )
    return part


def other_parts(song: Song, rng: np.random.Generator) -> list[Part]:
    feels = STYLES[song.style]["chords"]
    parts = []
    bpb = song.beats_per_bar
    for n_part in range(1 if rng.random() < 0.6 else 2):
        feel = str(rng.choice(feels)) if n_part == 0 else str(rng.choice(("pad", "arp", "sustain")))
        part = Part(
            int(rng.choice(OTHER_PROGRAMS[feel])),
            pan=float(rng.uniform(-0.6, 0.6)),
            reverb=int(rng.integers(20, 90)),
        )
        size = 4 if (song.style == "jazz" or rng.random() < 0.3) else 3
        for bar, _k, _last, _first in _sections_bars(song, "other"):
            t0 = bar * bpb
            chord = _chord(song, bar, 48 + 12 * int(rng.random() < 0.3), size)
            if feel in ("sustain", "pad"):
                for p in chord:
                    part.notes.append(
                        Note(t0, bpb * 0.98, p, _vel(rng, 75 if feel == "pad" else 85))
                    )
            elif feel == "arp":
                step = float(rng.choice((0.25, 0.5)))
                order = chord + [p + 12 for p in chord]
                for i in range(int(bpb / step)):
                    part.notes.append(
                        Note(t0 + i * step, step * 0.9, order[i % len(order)], _vel(rng, 80))
                    )
            elif feel == "strum":
                for b in range(bpb):
                    for i, p in enumerate(chord):
                        part.notes.append(Note(t0 + b + 0.02 * i, 0.9, p, _vel(rng, 80)))
            else:  # stabs / comp: short chords on a random rhythm
                for s in range(2 * bpb):
                    if s == 0 or rng.random() < 0.35:
                        t = _swing(song, t0 + s / 2)
                        for p in chord:
                            part.notes.append(Note(t, 0.3, p, _vel(rng, 85)))
        parts.append(part)
    return parts


def lead_part(song: Song, rng: np.random.Generator) -> Part:
    part = Part(
        int(rng.choice(LEAD_PROGRAMS)),
        pan=float(rng.uniform(-0.2, 0.2)),
        reverb=int(rng.integers(30, 100)),
    )
    bpb = song.beats_per_bar
    density = STYLES[song.style]["density"]
    base = 60 if rng.random() < 0.7 else 48
    motif = None
    degree = int(rng.integers(0, 7))
    for bar, k, _last, _first in _sections_bars(song, "vocals"):
        t0 = bar * bpb
        if k % 2 == 0 and (motif is None or rng.random() < 0.5):
            motif = []
            t = 0.0
            while t < 2 * bpb:
                dur = float(
                    rng.choice(
                        (0.5, 0.5, 1.0, 1.0, 1.5, 2.0) if density < 0.6 else (0.25, 0.5, 0.5, 1.0)
                    )
                )
                rest = rng.random() < 0.2
                degree = int(np.clip(degree + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)), -3, 11))
                if not rest:
                    motif.append((t, dur, degree))
                t += dur
        for t, dur, deg in motif:
            if k % 2 * bpb <= t < (k % 2 + 1) * bpb:
                start = t0 + t - (k % 2) * bpb
                end = min(dur, t0 + bpb - start + 1.0) * 0.95
                pitch = _degree_pitch(song, deg, base)
                part.notes.append(Note(_swing(song, start), end, pitch, _vel(rng, 90)))
    return part


BEND_RANGE = 2
"""Pitch-bend range in semitones that rendered parts are set to (the GM default, stated)."""
CURVE_STEP = 0.01
"""Seconds between the points of a sung lead's pitch and loudness curves."""


def sing(song: Song, part: Part, rng: np.random.Generator) -> dict:
    """Give a lead line a singer's pitch and loudness: vibrato, scoops, glides and swells.

    GM leads hold each note at one pitch, so a model can learn the lead by its samples rather
    than by its role; real voices (and the held-out library's bowed and blown leads) bend.
    One singer per song: vibrato rate and depth, how often notes are scooped into from below,
    and steps of up to ``BEND_RANGE`` semitones glided from the note before. Returns the
    singer's settings for meta.json."""
    spb = song.seconds_per_beat
    rate = float(rng.uniform(4.5, 6.5))  # Hz
    depth = float(rng.uniform(15, 60))  # cents, peak
    onset = float(rng.uniform(0.1, 0.35))  # seconds before the vibrato starts
    scoop_share = float(rng.uniform(0.2, 0.8))
    swell = float(rng.uniform(0.0, 0.4))  # share of the expression range a note's swell spans
    prev = None
    for n in sorted(part.notes, key=lambda n: n.start):
        dur = n.dur * spb
        t = np.arange(0.0, dur, CURVE_STEP)
        legato = prev is not None and n.start - (prev.start + prev.dur) < 0.1
        step = (prev.pitch - n.pitch) * 100.0 if legato else 0.0
        if legato and abs(step) <= 100 * BEND_RANGE:
            offset, tau = step, float(rng.uniform(0.03, 0.08))
        elif rng.random() < scoop_share:
            offset, tau = -float(rng.uniform(30, 150)), float(rng.uniform(0.03, 0.1))
        else:
            offset, tau = 0.0, 1.0
        ramp = np.clip((t - onset) / 0.25, 0.0, 1.0)
        phase = float(rng.uniform(0, 2 * np.pi))
        wobble = depth * float(rng.uniform(0.7, 1.2)) * ramp * np.sin(2 * np.pi * rate * t + phase)
        cents = offset * np.exp(-t / tau) + wobble
        part.bend += [(n.start + ti / spb, float(c)) for ti, c in zip(t, cents)]
        level = 127 * (1 - swell) + 127 * swell * np.sin(np.pi * np.clip(t / max(dur, 1e-3), 0, 1))
        part.expression += [(n.start + ti / spb, int(v)) for ti, v in zip(t[::5], level[::5])]
        prev = n
    return {
        "vibrato_hz": round(rate, 2),
        "vibrato_cents": round(depth, 1),
        "scoop_share": round(scoop_share, 2),
    }


def compose(rng: np.random.Generator, seconds: float, hand_percussion: float = 0.0) -> Song:
    """A full song: plan plus parts for drums, bass, other and vocals.

    ``hand_percussion`` is the chance that the drums get hand percussion
    (``add_hand_percussion``); at 0 no random draw is spent on it, so songs stay as before."""
    song = plan_song(rng, seconds)
    drums = drum_part(song, rng)
    if hand_percussion and rng.random() < hand_percussion:
        add_hand_percussion(song, rng, drums)
    song.parts = {
        "drums": [drums],
        "bass": [bass_part(song, rng)],
        "other": other_parts(song, rng),
        "vocals": [lead_part(song, rng)],
    }
    return song


__all__ = ["BEND_RANGE", "GM_DRUM_KITS", "KEYS", "Note", "Part", "Song", "compose", "sing"]
