"""``rtsep separate`` end to end: outputs, per-file errors, --force, --jobs, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtsep import contract
from rtsep.cli import main

ROOT = Path(__file__).resolve().parents[2]


def noise(frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((frames, channels))).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int = 44100, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rtsep: error: ")]


@pytest.fixture
def cli(toy_model_dir, tmp_path, capsys):
    """Run ``rtsep separate ... --model toy -o tmp/out``: (exit status, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        argv = ["separate", *map(str, args), "--model", str(toy_model_dir)]
        if "-o" not in args:
            argv += ["-o", str(tmp_path / "out")]
        status = main(argv)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_writes_each_source_with_the_inputs_rate_channels_and_length(cli, tmp_path):
    a = write(tmp_path / "a.wav", noise(50000), 44100)
    b = write(tmp_path / "b.flac", noise(30011, 1), 48000, "PCM_16")
    status, out, err = cli(a, b)
    assert status == 0, err
    for path, (frames, rate, channels) in ((a, (50000, 44100, 2)), (b, (30011, 48000, 1))):
        mix = sf.read(path, dtype="float32", always_2d=True)[0]
        total = np.zeros_like(mix)
        for name in contract.SOURCES:
            output = tmp_path / "out" / path.stem / f"{name}.wav"
            info = sf.info(output)
            assert (info.frames, info.samplerate, info.channels) == (frames, rate, channels)
            total += sf.read(output, dtype="float32", always_2d=True)[0]
        np.testing.assert_allclose(total, mix, atol=1e-4)
        assert f"{path} -> " in out and "x real time" in out


def test_each_bad_input_gets_one_line_and_the_others_still_run(cli, tmp_path):
    good = write(tmp_path / "good.wav", noise(20000))
    (tmp_path / "empty.wav").touch()
    (tmp_path / "notes.txt").write_text("not audio\n" * 50)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (tmp_path / "folder").mkdir()
    six = write(tmp_path / "six.wav", noise(1000, 6))
    bad = {
        tmp_path / "missing.wav": "no such file",
        tmp_path / "empty.wav": "is empty",
        tmp_path / "notes.txt": "not an audio file",
        tmp_path / "corrupt.wav": "not an audio file",
        tmp_path / "folder": "is a directory",
        six: "6 channels",
    }
    status, _, err = cli(*bad, good)
    assert status == 2
    lines = errors(err)
    assert len(lines) == len(bad), err
    for path, problem in bad.items():
        assert sum(line.startswith(f"rtsep: error: {path}: ") for line in lines) == 1
        assert any(problem in line for line in lines if f" {path}: " in line)
    wrote = [f"good/{s}.wav" for s in sorted(contract.SOURCES)]
    assert listing(tmp_path / "out") == ["good", *wrote]


@pytest.mark.parametrize(
    "flags",
    [("--sources", "drums,voice"), ("--without", "voice"), ("--mix", "voice=0"), ("--jobs", "0")],
)
def test_bad_options_are_refused_before_anything_is_written(cli, tmp_path, flags):
    song = write(tmp_path / "song.wav", noise(1000))
    status, _, err = cli(song, *flags)
    assert status == 2
    assert len(errors(err)) == 1 and ("voice" in err or "--jobs" in err), err
    assert listing(tmp_path / "out") == []


def test_missing_model_is_one_line(tmp_path, capsys):
    song = write(tmp_path / "song.wav", noise(1000))
    assert main(["separate", str(song), "--model", str(tmp_path / "nope")]) == 2
    assert len(errors(capsys.readouterr().err)) == 1


def test_sources_and_without_write_only_what_is_asked(cli, tmp_path):
    song = write(tmp_path / "song.wav", noise(20000))
    status, _, err = cli(song, "--without", "drums", "--format", "flac")
    assert status == 0, err
    assert listing(tmp_path / "out") == ["song", "song/mix-without-drums.flac"]
    status, _, err = cli(song, "--sources", "vocals,bass", "--mix", "drums=0.5", "--force")
    assert status == 0, err
    assert listing(tmp_path / "out" / "song") == [
        "bass.wav",
        "mix-drums0.5.wav",
        "mix-without-drums.flac",
        "vocals.wav",
    ]


def test_existing_outputs_need_force(cli, tmp_path):
    song = write(tmp_path / "song.wav", noise(4000))
    assert cli(song)[0] == 0
    before = (tmp_path / "out" / "song" / "drums.wav").stat().st_mtime_ns
    status, _, err = cli(song)
    assert status == 2
    assert errors(err) == [
        f"rtsep: error: {song}: {tmp_path / 'out' / 'song' / 'drums.wav'} exists "
        "(and 3 more): pass --force to overwrite"
    ]
    assert (tmp_path / "out" / "song" / "drums.wav").stat().st_mtime_ns == before
    assert cli(song, "--force")[0] == 0
    assert len(listing(tmp_path / "out")) == 5


def test_unwritable_outdir_and_clashing_names_are_one_line_each(cli, tmp_path):
    song = write(tmp_path / "song.wav", noise(4000))
    (tmp_path / "taken").write_text("a file")
    status, _, err = cli(song, "-o", tmp_path / "taken")
    assert status == 2
    assert errors(err) == [
        f"rtsep: error: {song}: cannot write to {tmp_path / 'taken' / 'song'}: Not a directory"
    ]
    other = write(tmp_path / "b" / "song.flac", noise(4000), subtype="PCM_16")
    status, _, err = cli(song, other)
    assert status == 2
    assert len(errors(err)) == 1 and f"error: {other}: writes to " in err
    assert len(listing(tmp_path / "out" / "song")) == 4


def test_jobs_write_the_same_files_as_one_job(cli, tmp_path):
    songs = [
        write(tmp_path / f"s{i}.wav", noise(30000 + i, seed=i), 22050 * (1 + i % 2))
        for i in range(3)
    ]
    assert cli(*songs, "--jobs", "1", "-o", tmp_path / "one")[0] == 0
    assert cli(*songs, "--jobs", "3", "-o", tmp_path / "three")[0] == 0
    names = listing(tmp_path / "one")
    assert names == listing(tmp_path / "three") and len(names) == 15
    for name in names:
        if name.endswith(".wav"):
            one = sf.read(tmp_path / "one" / name)[0]
            np.testing.assert_allclose(sf.read(tmp_path / "three" / name)[0], one, atol=1e-6)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_file_leaves_no_partial_output(toy_model_dir, tmp_path, signum):
    """A real process, stopped mid-file: exit 130, no output or temporary file remains.

    It starts with SIGINT ignored, as a shell starts a background job: ``kill -INT`` must
    still stop it cleanly."""
    songs = [
        write(tmp_path / f"long{i}.wav", noise(180 * 48000, seed=i), 48000, "PCM_16")
        for i in range(2)
    ]
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "rtsep.cli",
        "separate",
        *map(str, songs),
        "-o",
        str(out),
        "--model",
        str(toy_model_dir),
        "--jobs",
        "2",
    ]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )

    def written() -> int:  # bytes in temporary outputs so far
        return sum(p.stat().st_size for p in out.rglob("*.part") if p.exists())

    deadline = time.monotonic() + 60
    while written() < 2**20 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    assert written() >= 2**20, "never started writing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "rtsep: interrupted" in err.decode()
    assert listing(out) == []
