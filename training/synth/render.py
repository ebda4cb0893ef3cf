"""Render one generated song into a MUSDB18-HQ track folder: each stem alone, then their sum.

Pitched parts (and GM drums) go through the FluidSynth CLI, one call per stem, so stems are clean.
Hydrogen-kit drums go through the sampler in ``kits``. Stems are quantized to 16 bits before
summing, so the PCM_16 mixture on disk is exactly the sum of the stems on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from rtsep import atomic
from rtsep.contract import SAMPLE_RATE, SOURCES
from rtsep.errors import RtsepError
from training.synth import drumsynth, kits, voice
from training.synth.music import BEND_RANGE, GM_DRUM_KITS, KEYS, Part, Song, compose, sing

TRAIN_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
HELDOUT_SOUNDFONTS = ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",)
HELDOUT_KITS = (
    "ColomboAcousticDrumkit",
    "ElectricEmpireKit",
    "ForzeeStereo",
    "Millo_MultiLayered2",
    "Millo_MultiLayered3",
    "The Black Pearl 1.0",
    "VariBreaks",
    "Gimme A Hand 1.0",
    "circAfrique v4",
)
LIBRARIES = {
    "train": (TRAIN_SOUNDFONTS, kits.TRAIN_KITS),
    "heldout": (HELDOUT_SOUNDFONTS, HELDOUT_KITS),
}
TPB = 480  # MIDI ticks per beat


class SilentStemError(Exception):
    """A stem came out silent over the rendered length; the caller composes again."""


def _midi(song: Song, parts: list[Part], tail_beats: float) -> mido.MidiFile:
    """A type-0 MIDI file with the given parts, one channel each (drums on channel 10)."""
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.tempo), time=0))
    events = []  # (tick, order, message)
    for i, part in enumerate(parts):
        ch = 9 if part.drums else i
        pan = int(np.clip(64 + 63 * part.pan, 0, 127))
        if part.drums:
            events.append((0, 0, mido.Message("control_change", channel=ch, control=0, value=1)))
        events.append((0, 0, mido.Message("program_change", channel=ch, program=part.program)))
        events.append((0, 0, mido.Message("control_change", channel=ch, control=10, value=pan)))
        events.append(
            (0, 0, mido.Message("control_change", channel=ch, control=91, value=part.reverb))
        )
        for n in part.notes:
            on = round(n.start * TPB)
            off = on + max(1, round(n.dur * TPB))
            events.append(
                (on, 2, mido.Message("note_on", channel=ch, note=n.pitch, velocity=n.vel))
            )
            events.append((off, 1, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
        if part.bend:
            events += [(0, 0, msg) for msg in _bend_range(ch)]
        curves = [(b, _pitchwheel(ch, cents)) for b, cents in part.bend]
        curves += [
            (b, mido.Message("control_change", channel=ch, control=11, value=level))
            for b, level in part.expression
        ]
        # order 1: after a note_off, before a note_on at the same tick
        events += [(round(b * TPB), 1, msg) for b, msg in curves]
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for tick, _o, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = round((song.bars * song.beats_per_bar + tail_beats) * TPB)
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return mid


def _bend_range(ch: int) -> list[mido.Message]:
    """RPN 0 (pitch-bend sensitivity) set to ``BEND_RANGE`` semitones, then the RPN closed."""
    return [
        mido.Message("control_change", channel=ch, control=c, value=v)
        for c, v in ((101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127))
    ]


def _pitchwheel(ch: int, cents: float) -> mido.Message:
    """A pitch bend of ``cents``, at the ``BEND_RANGE`` that ``_bend_range`` sets."""
    value = int(np.clip(round(cents / (100 * BEND_RANGE) * 8192), -8192, 8191))
    return mido.Message("pitchwheel", channel=ch, pitch=value)


def _fluidsynth(
    mid: mido.MidiFile, soundfont: str, workdir: Path, n_frames: int, gain: float
) -> np.ndarray:
    """Render a MIDI file with the FluidSynth CLI; stereo float32 of exactly n_frames."""
    mid_path = workdir / "part.mid"
    wav_path = workdir / "part.wav"
    mid.save(str(mid_path))
    cmd = [
        "fluidsynth",
        "-ni",
        "-q",
        "-F",
        str(wav_path),
        "-r",
        str(SAMPLE_RATE),
        "-O",
        "float",
        "-g",
        f"{gain:.3f}",
        "-o",
        "synth.cpu-cores=1",
        soundfont,
        str(mid_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wav_path.is_file():
        raise RtsepError(f"fluidsynth failed on {soundfont}: {proc.stderr.strip()[:200]}")
    data, _ = sf.read(str(wav_path), dtype="float32", always_2d=True)
    out = np.zeros((n_frames, 2), np.float32)
    out[: min(n_frames, len(data))] = data[:n_frames, :2]
    return out


def _drum_hits(song: Song, part: Part) -> list[tuple[float, int, int]]:
    spb = song.seconds_per_beat
    return [(n.start * spb, n.pitch, n.vel) for n in part.notes]


def _drum_kind(rng: np.random.Generator, libraries: str, varied: bool) -> str:
    """Where a song's drums come from: 'kit' (Hydrogen), 'procedural' or 'soundfont'."""
    if libraries == "heldout":
        return "kit"
    if varied:
        return ("procedural", "kit", "soundfont")[int(rng.integers(3))]
    return "kit" if rng.random() < 0.5 else "soundfont"


def render_song(
    song: Song,
    rng: np.random.Generator,
    seconds: float,
    libraries: str,
    workdir: Path,
    varied_drums: bool = False,
) -> tuple[dict[str, np.ndarray], dict]:
    """Stems (float32 stereo, n_frames each) of a song, and the facts for meta.json.

    ``varied_drums`` (training renders): a third of the songs get a procedural kit
    (``drumsynth``), a third a re-voiced Hydrogen kit, a third a GM soundfont kit. Otherwise half
    a Hydrogen kit as it is, half a soundfont kit (held-out libraries: always a kit)."""
    soundfonts, kit_names = LIBRARIES[libraries]
    n_frames = round(seconds * SAMPLE_RATE)
    tail = 2.0 / song.seconds_per_beat
    stems: dict[str, np.ndarray] = {}
    facts: dict[str, dict] = {}
    for stem in SOURCES:
        parts = song.parts[stem]
        kind = _drum_kind(rng, libraries, varied_drums) if stem == "drums" else "soundfont"
        if kind == "procedural":
            audio, facts[stem] = drumsynth.render_synth_kit(
                _drum_hits(song, parts[0]), n_frames, rng
            )
            facts[stem]["library"] = "procedural"
        elif kind == "kit":
            kit = str(rng.choice(kit_names))
            hits = _drum_hits(song, parts[0])
            audio = kits.render_kit(kit, hits, n_frames, rng, vary=varied_drums)
            facts[stem] = {"library": f"hydrogen:{kit}"} | (
                {"varied": True} if varied_drums else {}
            )
        else:
            sf2 = str(rng.choice(soundfonts))
            if parts[0].drums:
                parts[0].program = int(rng.choice(GM_DRUM_KITS))
            audio = _fluidsynth(_midi(song, parts, tail), sf2, workdir, n_frames, 0.5)
            facts[stem] = {"library": Path(sf2).name, "programs": [p.program for p in parts]}
        if float(np.max(np.abs(audio))) < 1e-4:
            raise SilentStemError(stem)
        rms = float(np.sqrt(np.mean(np.square(audio[np.abs(audio).max(1) > 1e-4]))))
        level_db = float(rng.uniform(-10, 0))
        audio *= 10 ** (level_db / 20) * 0.1 / rms
        facts[stem]["level_db"] = round(level_db, 2)
        facts[stem]["pan"] = [round(p.pan, 2) for p in parts]
        stems[stem] = audio
    return stems, facts


def quantize_mix(stems: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scale for headroom, round stems to the 16-bit grid; the mixture is their exact sum."""
    mix = sum(stems.values())
    scale = 0.9 / max(float(np.max(np.abs(mix))), 1e-9)
    q = {k: np.round(v * scale * 32768.0) / 32768.0 for k, v in stems.items()}
    return q, sum(q.values())


def make_track(
    out_dir: Path,
    name: str,
    seconds: float,
    seed: int,
    index: int,
    libraries: str,
    varied_drums: bool = False,
    hand_percussion: float = 0.0,
    sung_leads: float = 0.0,
    voiced_leads: float = 0.0,
) -> Path:
    """Compose, render and write one track folder atomically (temp folder, then rename).

    ``hand_percussion`` is the chance that a song's drums get hand percussion (``compose``);
    ``sung_leads`` the chance that its lead is sung (``sing``) and ``voiced_leads`` the chance
    that it goes through a singer's formants (``voice``), both drawn from a stream of their own
    so that the song is the same either way."""
    final = out_dir / name
    if final.is_dir():
        return final
    rng = np.random.default_rng([seed, index, 0 if libraries == "train" else 1])
    voice_rng = np.random.default_rng([seed, index, 2])
    tmp = atomic.temp_dir(final)
    try:
        for _attempt in range(10):
            song = compose(rng, seconds, hand_percussion)
            sung = sung_leads and voice_rng.random() < sung_leads
            singer = sing(song, song.parts["vocals"][0], voice_rng) if sung else None
            try:
                with tempfile.TemporaryDirectory() as work:
                    stems, facts = render_song(
                        song, rng, seconds, libraries, Path(work), varied_drums
                    )
                break
            except SilentStemError:
                continue
        else:
            raise RtsepError(f"track {name}: a stem stayed silent after 10 tries")
        if song.percussion:
            facts["drums"]["percussion"] = song.percussion
        if singer:
            facts["vocals"]["sung"] = singer
        if voiced_leads and voice_rng.random() < voiced_leads:
            onsets = [n.start * song.seconds_per_beat for n in song.parts["vocals"][0].notes]
            stems["vocals"], facts["vocals"]["voiced"] = voice.voice_lead(
                stems["vocals"], sorted(onsets), voice_rng
            )
        stems, mix = quantize_mix(stems)
        for stem, audio in stems.items():
            sf.write(str(tmp / f"{stem}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")
        sf.write(str(tmp / "mixture.wav"), mix, SAMPLE_RATE, subtype="PCM_16")
        meta = {
            "seed": seed,
            "index": index,
            "seconds": seconds,
            "libraries": libraries,
            "style": song.style,
            "tempo": round(song.tempo, 2),
            "key": KEYS[song.key],
            "scale": song.scale,
            "beats_per_bar": song.beats_per_bar,
            "sections": [
                {
                    "name": s[0],
                    "bar": s[1],
                    "bars": s[2],
                    "active": [st for st in SOURCES if song.active[st][i]],
                }
                for i, s in enumerate(song.sections)
            ],
            "stems": facts,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        tmp.chmod(0o755)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
