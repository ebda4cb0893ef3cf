"""The synthetic generator writes MUSDB18-HQ folders whose stems are clean, audible and sum up."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtsep.contract import SAMPLE_RATE, SOURCES
from training.synth import drumsynth, kits, render, voice
from training.synth.__main__ import generate, main
from training.synth.music import (
    BEND_RANGE,
    EARLY_SHARE,
    HAND_PERCUSSION,
    Note,
    Part,
    Song,
    compose,
    sing,
)
from training.synth.render import HELDOUT_KITS, LIBRARIES, TRAIN_SOUNDFONTS


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    return generate(out, tracks=2, seconds=2.5, seed=3, split="train", jobs=1, progress=False)


def test_layout_and_exact_sum(generated):
    for track in generated:
        names = sorted(p.name for p in track.iterdir())
        assert names == sorted([*(f"{s}.wav" for s in ("mixture", *SOURCES)), "meta.json"])
        x = {s: sf.read(track / f"{s}.wav", dtype="int16")[0] for s in ("mixture", *SOURCES)}
        info = sf.info(str(track / "mixture.wav"))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 2)
        assert len(x["mixture"]) == round(2.5 * SAMPLE_RATE)
        total = sum(x[s].astype(np.int32) for s in SOURCES)
        np.testing.assert_array_equal(total, x["mixture"])
        for s in SOURCES:
            assert np.abs(x[s]).max() > 300, f"{track.name}/{s} is silent"


def test_meta(generated):
    meta = json.loads((generated[0] / "meta.json").read_text())
    assert {"seed", "tempo", "key", "scale", "style", "sections", "stems"} <= set(meta)
    assert 70 <= meta["tempo"] <= 170
    assert set(meta["stems"]) == set(SOURCES)


def test_rerun_skips_done_tracks_and_leaves_no_temp(generated):
    out = generated[0].parent.parent
    before = generated[0].stat().st_mtime_ns
    assert (
        main(["--out", str(out), "--tracks", "2", "--seconds", "2.5", "--seed", "3", "--jobs", "1"])
        == 0
    )
    assert generated[0].stat().st_mtime_ns == before
    assert not [p for p in generated[0].parent.iterdir() if p.name.startswith(".")]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), seconds=st.floats(2.0, 30.0))
@example(seed=1_765_300_216, seconds=2.0)  # a 2 s ballad whose melody rests through bar 1
def test_compose_is_deterministic_and_valid(seed, seconds):
    a = compose(np.random.default_rng(seed), seconds)
    b = compose(np.random.default_rng(seed), seconds)
    assert a == b
    assert 70 <= a.tempo <= 170
    seconds_per_bar = a.beats_per_bar * a.seconds_per_beat
    for stem in SOURCES:
        notes = [n for p in a.parts[stem] for n in p.notes]
        assert notes, stem
        # Every stem is planned to play in a section that starts early in the song (a melody
        # may still rest through the first bars of a short song).
        assert any(
            on and first * seconds_per_bar < EARLY_SHARE * seconds
            for (_name, first, _bars), on in zip(a.sections, a.active[stem], strict=True)
        ), stem
        assert all(0 <= n.pitch <= 127 and 1 <= n.vel <= 127 and n.dur > 0 for n in notes)


@pytest.mark.parametrize("name", kits.TRAIN_KITS)
def test_train_kits_parse_and_map_core_drums(name):
    kit = kits.load_kit(name)
    mapping = kits.note_map(kit, np.random.default_rng(0))
    assert {36, 38, 42} <= set(mapping)
    audio = kits.render_kit(
        name, [(0.0, 36, 110), (0.1, 38, 90), (0.2, 42, 60)], 22050, np.random.default_rng(0)
    )
    assert audio.shape == (22050, 2) and np.abs(audio).max() > 0.01


def test_heldout_libraries_are_disjoint_from_training():
    assert not set(HELDOUT_KITS) & set(kits.TRAIN_KITS)
    heldout_sf = {Path(p).resolve() for p in LIBRARIES["heldout"][0]}
    assert not heldout_sf & {Path(p).resolve() for p in TRAIN_SOUNDFONTS}


GM_VOICES = (35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 56, 57)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_procedural_kit_renders_every_voice_audibly(seed):
    hits = [(0.25 * i, note, 100) for i, note in enumerate(GM_VOICES)]
    n = round(0.25 * len(GM_VOICES) * SAMPLE_RATE) + SAMPLE_RATE
    audio, facts = drumsynth.render_synth_kit(hits, n, np.random.default_rng(seed))
    assert audio.shape == (n, 2) and audio.dtype == np.float32
    assert np.isfinite(audio).all()
    hop = round(0.25 * SAMPLE_RATE)
    for i, note in enumerate(GM_VOICES):  # each hit is heard in its own quarter second
        assert np.abs(audio[i * hop : i * hop + hop // 4]).max() > 0.01, note
    assert {"kick_hz", "drive", "room"} <= set(facts)


def test_procedural_kits_differ_between_songs():
    hits = [(0.0, 36, 110), (0.5, 38, 110), (1.0, 42, 90)]
    a, _ = drumsynth.render_synth_kit(hits, SAMPLE_RATE * 2, np.random.default_rng(1))
    b, _ = drumsynth.render_synth_kit(hits, SAMPLE_RATE * 2, np.random.default_rng(2))
    again, _ = drumsynth.render_synth_kit(hits, SAMPLE_RATE * 2, np.random.default_rng(1))
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, b, atol=1e-3)


def test_tuning_a_kit_sample_an_octave_up_halves_it():
    path = kits.load_kit("Audiophob")[0].layers[0].path
    plain, up = kits.Variation().apply(path), kits.Variation(semitones=12).apply(path)
    assert abs(len(up) - len(plain) / 2) <= 2


def test_only_the_train_split_gets_varied_drums_and_only_when_asked(tmp_path):
    def drum_facts(split: str, varied: bool = True) -> list[dict]:
        tracks = generate(
            tmp_path / f"{split}{varied}",
            9,
            2.0,
            5,
            split,
            jobs=1,
            progress=False,
            varied_drums=varied,
        )
        return [json.loads((t / "meta.json").read_text())["stems"]["drums"] for t in tracks]

    varied = drum_facts("train")
    assert any(f["library"] == "procedural" for f in varied)
    assert all(f.get("varied") for f in varied if f["library"].startswith("hydrogen:"))
    for facts in (drum_facts("test"), drum_facts("train", varied=False)):
        assert all(f["library"] != "procedural" and "varied" not in f for f in facts)


HAND_NOTES = {n for family in HAND_PERCUSSION.values() for n in family}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), seconds=st.floats(2.0, 30.0))
def test_hand_percussion_is_layered_or_alone_and_absent_when_off(seed, seconds):
    plain = compose(np.random.default_rng(seed), seconds, hand_percussion=0.0)
    assert plain.percussion == ""
    assert not {n.pitch for n in plain.parts["drums"][0].notes} & HAND_NOTES
    song = compose(np.random.default_rng(seed), seconds, hand_percussion=1.0)
    pitches = {n.pitch for n in song.parts["drums"][0].notes}
    assert song.percussion in ("layer", "ensemble")
    assert pitches & set(HAND_PERCUSSION["hand drums"])  # at least one hand drum plays
    kit = pitches - HAND_NOTES
    assert (not kit) if song.percussion == "ensemble" else kit


@pytest.mark.parametrize(
    ("key", "digest"), [((1000, 5, 0), "6e20112397a86cf3"), ((2000, 3, 1), "6c744ea8a144604a")]
)
def test_songs_of_the_readme_test_sets_stay_as_they_were_rendered(key, digest):
    """A synthetic and a held-out test song, keyed as ``make_track`` keys them: an option that
    spent a random draw when off would change every test set the README's scores come from."""
    song = compose(np.random.default_rng(list(key)), 20.0)
    assert hashlib.sha256(repr(song).encode()).hexdigest()[:16] == digest


@pytest.mark.parametrize("name", kits.TRAIN_KITS + HELDOUT_KITS)
def test_every_kit_plays_hand_percussion_on_a_matching_or_fallback_instrument(name):
    kit = kits.load_kit(name)
    mapping = kits.note_map(kit, np.random.default_rng(0))
    hands = {note: mapping[note] for note in kits.HAND_NAMES if note in mapping}
    assert set(hands) == set(kits.HAND_NAMES)
    for note, index in hands.items():
        matches = [i for i, inst in enumerate(kit) if re.search(kits.HAND_NAMES[note], inst.name)]
        assert index == (matches[0] if matches else mapping[38])
    conga = kits.render_kit(name, [(0.1, 63, 110)], SAMPLE_RATE, np.random.default_rng(0))
    assert np.abs(conga[: SAMPLE_RATE // 10]).max() == 0 and np.abs(conga).max() > 1e-3


def test_only_the_train_split_gets_hand_percussion_and_meta_says_which(tmp_path):
    def drum_facts(split: str, share: float) -> list[dict]:
        folder = tmp_path / f"{split}{share}"
        tracks = generate(folder, 4, 2.0, 8, split, jobs=1, progress=False, hand_percussion=share)
        return [json.loads((t / "meta.json").read_text())["stems"]["drums"] for t in tracks]

    assert all(f["percussion"] in ("layer", "ensemble") for f in drum_facts("train", 1.0))
    for facts in (drum_facts("test", 1.0), drum_facts("train", 0.0)):
        assert all("percussion" not in f for f in facts)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path), "--hand-percussion", "1.5"])
    assert exit_.value.code == 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), seconds=st.floats(2.0, 30.0))
def test_a_sung_lead_bends_within_range_and_only_while_its_notes_sound(seed, seconds):
    song = compose(np.random.default_rng(seed), seconds)
    lead = song.parts["vocals"][0]
    before = repr(song)
    facts = sing(song, lead, np.random.default_rng(seed))
    assert 4.5 <= facts["vibrato_hz"] <= 6.5
    assert lead.bend and lead.expression
    assert all(abs(cents) <= 100 * BEND_RANGE for _beat, cents in lead.bend)
    assert all(0 <= level <= 127 for _beat, level in lead.expression)
    spans = [(n.start, n.start + n.dur) for n in lead.notes]
    assert all(any(a <= beat < b for a, b in spans) for beat, _c in lead.bend + lead.expression)
    lead.bend, lead.expression = [], []
    assert repr(song) == before  # the notes themselves, and every other part, are untouched


def _lead_pitch_hz(cents: float | None) -> float:
    """The strongest partial of a held GM flute A4 rendered through FluidSynth, bent by cents."""
    song = Song("pop", 120.0, 0, "major", 4, 2, [("verse", 0, 2)], [0, 0], {})
    bend = [] if cents is None else [(0.0, cents)]
    lead = Part(73, notes=[Note(0.0, 3.0, 69, 100)], bend=bend)
    with tempfile.TemporaryDirectory() as work:
        x = render._fluidsynth(
            render._midi(song, [lead], 1.0), TRAIN_SOUNDFONTS[0], Path(work), 2 * SAMPLE_RATE, 0.5
        )[SAMPLE_RATE // 2 : 3 * SAMPLE_RATE // 2, 0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 20))
    freqs = np.fft.rfftfreq(1 << 20, 1 / SAMPLE_RATE)
    band = (freqs > 300) & (freqs < 600)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_a_bend_renders_at_the_bent_pitch_in_fluidsynth():
    """The part's cents reach the synth: the range is set by RPN 0, not left to the soundfont."""
    plain = _lead_pitch_hz(None)
    for cents in (100.0, -200.0):
        assert 1200 * np.log2(_lead_pitch_hz(cents) / plain) == pytest.approx(cents, abs=5)


def test_only_the_train_split_gets_sung_leads_and_meta_says_which(tmp_path):
    def lead_facts(split: str, share: float) -> list[dict]:
        folder = tmp_path / f"{split}{share}"
        tracks = generate(folder, 2, 2.0, 8, split, jobs=1, progress=False, sung_leads=share)
        return [json.loads((t / "meta.json").read_text())["stems"]["vocals"] for t in tracks]

    assert all(f["sung"]["vibrato_cents"] > 0 for f in lead_facts("train", 1.0))
    for facts in (lead_facts("test", 1.0), lead_facts("train", 0.0)):
        assert all("sung" not in f for f in facts)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path), "--sung-leads", "-0.1"])
    assert exit_.value.code == 2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_a_voiced_lead_peaks_at_its_singers_first_formant_and_keeps_its_level(seed):
    """White noise through one held vowel: the spectrum's peak below 1.5 kHz sits at the
    vowel's first formant scaled by the singer's tract, and the RMS comes out as it went in."""
    rng = np.random.default_rng(seed)
    noise = (0.1 * rng.standard_normal((2 * SAMPLE_RATE, 2))).astype(np.float32)
    out, facts = voice.voice_lead(noise, [0.0], np.random.default_rng(seed))
    assert out.shape == noise.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(noise**2)), rel=1e-3)
    power = np.abs(np.fft.rfft(out[SAMPLE_RATE // 2 :, 0])) ** 2
    freqs = np.fft.rfftfreq(len(out) - SAMPLE_RATE // 2, 1 / SAMPLE_RATE)
    smooth = np.convolve(power, np.ones(101) / 101, mode="same")  # 2.7 Hz bins: 270 Hz wide
    low = (freqs > 150) & (freqs < 1500)
    peak = float(freqs[low][np.argmax(smooth[low])])
    first = voice.VOWELS[facts["vowels"]][0] * facts["scale"]
    assert peak == pytest.approx(first, rel=0.15)


def test_formant_tracks_glide_to_each_notes_vowel_and_hold_it():
    singer = voice.draw_singer(np.random.default_rng(4))
    onsets = [0.0, 0.5, 1.0]
    tracks, vowels = voice.formant_tracks(onsets, 2 * SAMPLE_RATE, singer, np.random.default_rng(5))
    assert len(vowels) == len(onsets) and len(tracks) == -(-2 * SAMPLE_RATE // voice.BLOCK)
    settle = int(6 * singer["glide_ms"] * 1e-3 * SAMPLE_RATE) // voice.BLOCK
    for t, v in zip(onsets, vowels):
        held = tracks[int(t * SAMPLE_RATE) // voice.BLOCK + settle]
        np.testing.assert_allclose(held, np.array(voice.VOWELS[v]) * singer["scale"], rtol=0.01)


def test_only_the_train_split_gets_voiced_leads_and_the_song_stays_the_same(tmp_path):
    def render_(split: str, share: float) -> list[Path]:
        return generate(
            tmp_path / f"{split}{share}",
            2,
            2.0,
            8,
            split,
            jobs=1,
            progress=False,
            voiced_leads=share,
        )

    def lead_facts(tracks: list[Path]) -> list[dict]:
        return [json.loads((t / "meta.json").read_text())["stems"]["vocals"] for t in tracks]

    voiced, plain = render_("train", 1.0), render_("train", 0.0)
    assert all(len(f["voiced"]["vowels"]) > 0 for f in lead_facts(voiced))
    for facts in (lead_facts(render_("test", 1.0)), lead_facts(plain)):
        assert all("voiced" not in f for f in facts)
    for a, b in zip(voiced, plain):
        assert not np.array_equal(sf.read(a / "vocals.wav")[0], sf.read(b / "vocals.wav")[0])
        for stem in ("drums", "bass", "other"):  # the same song, rescaled to the new mix's peak
            x, y = sf.read(a / f"{stem}.wav")[0], sf.read(b / f"{stem}.wav")[0]
            assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.999
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path), "--voiced-leads", "2"])
    assert exit_.value.code == 2
