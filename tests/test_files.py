"""Streamed file separation: length, rate, alignment, mixture consistency, clean failures."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtsep
from rtsep import contract, files
from rtsep.errors import RtsepError


@pytest.fixture(scope="module")
def model(toy_model_dir):
    return rtsep.load_model(toy_model_dir, provider="cpu")


def noise(frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((frames, channels))).astype(np.float32)


def tones(frames: int, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Sines below 35% of ``rate`` (and 15 kHz), faded in and out over 50 ms: a band-limited
    signal that the soxr round trip leaves intact."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    freqs = rng.uniform(40, min(0.35 * rate, 15000), (12, 1))
    x = 0.05 * np.sin(2 * np.pi * freqs * t + rng.uniform(0, 6, (12, 1))).sum(axis=0)
    fade = np.sin(0.5 * np.pi * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)) ** 2
    x *= fade
    return np.stack([np.roll(x, 31 * c) for c in range(channels)], axis=1).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def separate(path: Path, model, outdir: Path, outputs=None, fmt: str = "wav", **kw):
    outputs = outputs or files.source_outputs(model.sources, model.sources)
    track = files.plan([path], outdir, outputs, fmt)[0]
    return files.separate_file(track, model, outputs, fmt, **kw)


def read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def step_hop_by_hop(run_plainly, model, x: np.ndarray) -> np.ndarray:
    """What the live engine computes on ``x`` (frames, 1 or 2 channels): the step graph, one
    hop per call, mono in both rows (``run_plainly``: the step_graph_hop_by_hop fixture)."""
    rows = np.zeros((-(-len(x) // model.hop) * model.hop, contract.CHANNELS), np.float32)
    rows[: len(x)] = x  # mono: broadcast to both rows
    return run_plainly(model, rows)[: len(x), :, : x.shape[1]]


@pytest.mark.parametrize("channels", [1, 2])
def test_at_model_rate_sources_are_the_live_engines_numbers(
    model, tmp_path, channels, step_graph_hop_by_hop
):
    x = noise(3 * files.BLOCK + 1000, channels)
    result = separate(write(tmp_path / "song.wav", x, 44100), model, tmp_path / "out")
    want = step_hop_by_hop(step_graph_hop_by_hop, model, x)
    for i, name in enumerate(model.sources):
        np.testing.assert_allclose(read(result.track.paths[name]), want[:, i], atol=1e-5)
    assert result.frames == len(x)
    (tmp_path / "probe").touch()
    mode = (tmp_path / "probe").stat().st_mode
    assert all(p.stat().st_mode == mode for p in result.track.paths.values())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.sampled_from([8000, 22050, 32000, 44100, 48000, 88200, 96000]),
    channels=st.sampled_from([1, 2]),
    frames=st.integers(1, 30000),
    block=st.sampled_from([1, 7, 1000, 4096, 65536]),
)
def test_any_rate_length_and_block_keeps_length_rate_channels_and_sum(
    model, tmp_path_factory, monkeypatch, rate, channels, frames, block
):
    """Exact length, the input's rate and channels, and sources summing to the input."""
    monkeypatch.setattr(files, "BLOCK", block if frames < 3000 or block > 100 else 4096)
    tmp = tmp_path_factory.mktemp("any")
    x = noise(frames, channels, seed=frames)
    result = separate(write(tmp / "in.wav", x, rate), model, tmp / "out")
    total = np.zeros_like(x)
    for path in result.track.paths.values():
        info = sf.info(path)
        assert (info.frames, info.samplerate, info.channels) == (frames, rate, channels)
        total += read(path)
    np.testing.assert_allclose(total, x, atol=1e-4)
    assert listing(tmp / "out") == ["in", *sorted(f"in/{s}.wav" for s in model.sources)]


@pytest.mark.parametrize(
    ("name", "rate", "kind"),
    [
        ("in.mp3", 44100, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
        ("in.ogg", 44100, {"subtype": "VORBIS"}),
        ("in.opus", 48000, {"format": "OGG", "subtype": "OPUS"}),
        ("in.aiff", 32000, {"subtype": "PCM_24"}),
        ("in.flac", 22050, {"subtype": "PCM_16"}),
        ("in.caf", 11025, {"subtype": "ALAC_16"}),
    ],
)
def test_reads_any_format_libsndfile_reads(model, tmp_path, name, rate, kind):
    sf.write(tmp_path / name, tones(rate + 99, rate), rate, **kind)
    x = read(tmp_path / name)
    result = separate(tmp_path / name, model, tmp_path / "out")
    total = sum(read(p) for p in result.track.paths.values())
    assert total.shape == x.shape and sf.info(result.track.paths["bass"]).samplerate == rate
    np.testing.assert_allclose(total, x, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 96000])
def test_resampled_outputs_are_aligned_with_the_input(model, tmp_path, rate):
    """Streamed soxr round trip == whole-signal rtsep.separate: no delay, no drift.

    The first and last millisecond differ slightly (one-shot soxr treats the edges its own
    way); a one-sample shift anywhere would differ by about 1e-2."""
    x = tones(2 * rate + 77, rate)
    result = separate(write(tmp_path / "song.wav", x, rate), model, tmp_path / "out")
    want = rtsep.separate(x, rate, model)
    edge = rate // 1000
    for name in model.sources:
        got = read(result.track.paths[name])
        np.testing.assert_allclose(got[edge:-edge], want[name][edge:-edge], atol=1e-4)
        np.testing.assert_allclose(got, want[name], atol=1e-3)


def test_without_and_mix_are_weighted_sums_of_the_sources(model, tmp_path):
    x = noise(20000)
    path = write(tmp_path / "song.wav", x, 44100)
    sources = model.sources
    outputs = [
        *files.source_outputs(sources, sources),
        files.parse_without("drums", sources),
        files.parse_mix("vocals=0.5, bass=0", sources),
    ]
    result = separate(path, model, tmp_path / "out", outputs)
    s = {name: read(result.track.paths[name]) for name in sources}
    assert set(result.track.paths) == {*sources, "mix-without-drums", "mix-bass0-vocals0.5"}
    np.testing.assert_allclose(
        read(result.track.paths["mix-without-drums"]), x - s["drums"], atol=1e-5
    )
    np.testing.assert_allclose(
        read(result.track.paths["mix-bass0-vocals0.5"]),
        s["drums"] + s["other"] + 0.5 * s["vocals"],
        atol=1e-5,
    )


def test_mix_names_and_bad_specs():
    sources = contract.SOURCES
    assert files.parse_mix("drums=0", sources).name == "mix-without-drums"
    assert files.parse_without("bass,drums,bass", sources).name == "mix-without-drums-bass"
    assert files.parse_mix("drums=1", sources).name == "mix"
    assert files.parse_sources("vocals, drums", sources) == ["vocals", "drums"]
    for bad in ("drums", "drums=x", "drums=-1", "drums=inf", "drum=0", ""):
        with pytest.raises(RtsepError, match="--mix"):
            files.parse_mix(bad, sources)
    for parse, flag in ((files.parse_sources, "--sources"), (files.parse_without, "--without")):
        with pytest.raises(RtsepError, match=f"unknown source 'voice' in {flag}"):
            parse("drums,voice", sources)
        with pytest.raises(RtsepError, match=f"{flag} is empty"):
            parse(" , ", sources)


def test_flac_is_24_bit_within_half_a_step_per_source_and_warns_on_clipping(model, tmp_path):
    x = 0.25 * noise(30000)
    result = separate(write(tmp_path / "song.wav", x, 44100), model, tmp_path / "out", fmt="flac")
    total = sum(read(p) for p in result.track.paths.values())
    assert sf.info(result.track.paths["drums"]).subtype == "PCM_24"
    np.testing.assert_allclose(total, x, atol=len(model.sources) * 2.0**-24 + 1e-6)
    assert result.warnings == []
    loud = write(tmp_path / "loud.wav", 16 * x, 44100)
    result = separate(loud, model, tmp_path / "out", fmt="flac")
    assert any("clipped" in w and "--format wav" in w for w in result.warnings)


def test_ogg_keeps_length_and_rate(model, tmp_path):
    x = tones(30001, 48000)
    result = separate(write(tmp_path / "song.wav", x, 48000), model, tmp_path / "out", fmt="ogg")
    info = sf.info(result.track.paths["vocals"])
    assert (info.format, info.frames, info.samplerate) == ("OGG", len(x), 48000)


def test_wav_past_4_gb_is_written_as_rf64_with_the_same_samples(model, tmp_path, monkeypatch):
    hours = 4 * 3600 * 44100
    assert files.container("wav", hours, 2) == ("RF64", "FLOAT")  # 4 h stereo: 5.6 GB
    assert files.container("wav", 3600 * 44100, 2) == ("WAV", "FLOAT")
    assert files.container("flac", hours, 2) == ("FLAC", "PCM_24")
    x = noise(20000)
    song = write(tmp_path / "song.wav", x, 44100)
    plain = separate(song, model, tmp_path / "wav")
    monkeypatch.setattr(files, "WAV_DATA_LIMIT", 4 * len(x))  # this file counts as "big"
    big = separate(song, model, tmp_path / "rf64")
    for name, path in big.track.paths.items():
        assert sf.info(path).format == "RF64"
        np.testing.assert_array_equal(read(path), read(plain.track.paths[name]))


def test_nonfinite_input_is_zeroed_and_reported(model, tmp_path):
    x = noise(5000)
    x[100, 0], x[200, 1] = np.nan, np.inf
    result = separate(write(tmp_path / "nan.wav", x, 44100), model, tmp_path / "out")
    message = f"{tmp_path / 'nan.wav'}: 2 NaN/inf samples in the input were set to 0"
    assert result.warnings == [message]
    total = sum(read(p) for p in result.track.paths.values())
    x[100, 0] = x[200, 1] = 0
    np.testing.assert_allclose(total, x, atol=1e-4)


def corrupt(tmp: Path) -> Path:
    data = (tmp / "good.wav").read_bytes()
    (tmp / "corrupt.wav").write_bytes(b"RIFF\xff\xff\x00\x00WAVEjunk" + data[40:200])
    return tmp / "corrupt.wav"


BAD_INPUTS = {
    "missing": (lambda tmp: tmp / "missing.wav", "no such file"),
    "empty": (lambda tmp: (tmp / "empty.wav").touch() or tmp / "empty.wav", r"is empty"),
    "corrupt": (corrupt, "not an audio file libsndfile can read"),
    "text": (
        lambda tmp: (tmp / "notes.txt").write_text("hello\n" * 100) and tmp / "notes.txt",
        "not an audio file libsndfile can read",
    ),
    "directory": (lambda tmp: (tmp / "dir.wav").mkdir() or tmp / "dir.wav", "is a directory"),
    "no frames": (
        lambda tmp: write(tmp / "silent.wav", np.zeros((0, 2), np.float32), 44100),
        r"has no audio \(0 frames\)",
    ),
    "6 channels": (
        lambda tmp: write(tmp / "surround.wav", noise(1000, 6), 44100),
        "6 channels: rtsep separates mono or stereo",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_file_and_leaves_nothing(model, tmp_path, case):
    write(tmp_path / "good.wav", noise(1000), 44100)
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(RtsepError, match=message) as info:
        separate(path, model, tmp_path / "out")
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert listing(tmp_path / "out") == []


def test_unwritable_outdir_is_reported_and_leaves_nothing(model, tmp_path):
    path = write(tmp_path / "song.wav", noise(1000), 44100)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(RtsepError, match=f"{path}: cannot write to {tmp_path / 'a-file'}"):
        separate(path, model, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_existing_outputs_need_force(model, tmp_path):
    path = write(tmp_path / "song.wav", noise(1000), 44100)
    (tmp_path / "out" / "song").mkdir(parents=True)
    (tmp_path / "out" / "song" / "bass.wav").write_text("keep me")
    with pytest.raises(RtsepError, match=r"bass.wav exists: pass --force to overwrite"):
        separate(path, model, tmp_path / "out")
    assert listing(tmp_path / "out") == ["song", "song/bass.wav"]
    separate(path, model, tmp_path / "out", force=True)
    assert sf.info(tmp_path / "out" / "song" / "bass.wav").frames == 1000


def test_progress_reports_every_frame_once(model, tmp_path):
    x = noise(2 * files.BLOCK + 5)
    totals, steps = [], []
    separate(
        write(tmp_path / "song.wav", x, 48000),
        model,
        tmp_path / "out",
        on_start=totals.append,
        on_progress=steps.append,
    )
    assert totals == [len(x)] and sum(steps) == len(x) and len(steps) == 3


def test_an_output_never_overwrites_its_input(model, tmp_path):
    path = write(tmp_path / "drums" / "drums.wav", noise(1000), 44100)
    with pytest.raises(RtsepError, match="an output would overwrite it"):
        separate(path, model, tmp_path, force=True)
    assert sf.info(path).frames == 1000 and listing(tmp_path) == ["drums", "drums/drums.wav"]


@pytest.mark.parametrize("how", ["cancel", "error"])
def test_interruption_mid_file_removes_every_output(model, tmp_path, how):
    path = write(tmp_path / "song.wav", noise(5 * files.BLOCK), 44100)
    cancel = threading.Event()
    seen = []

    def progress(frames: int) -> None:
        seen.append(listing(tmp_path / "out"))
        if len(seen) == 2:
            if how == "error":
                raise OSError(28, "No space left on device")
            cancel.set()

    expected = files.Cancelled if how == "cancel" else RtsepError
    with pytest.raises(expected, match="interrupted" if how == "cancel" else "No space left"):
        separate(path, model, tmp_path / "out", on_progress=progress, cancel=cancel)
    assert any(name.endswith(".part") for name in seen[-1])  # it was writing
    assert listing(tmp_path / "out") == []


def test_memory_stays_flat_as_files_grow(model, tmp_path):
    """Peak Python/numpy memory (tracemalloc) does not grow with the file's length."""
    peaks = []
    for seconds in (5, 60):
        path = write(tmp_path / f"{seconds}.wav", noise(seconds * 48000), 48000, "PCM_16")
        tracemalloc.start()
        separate(path, model, tmp_path / "out")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0] + 1e6, peaks
    assert peaks[1] < 64e6, peaks
