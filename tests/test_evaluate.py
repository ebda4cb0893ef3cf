"""Scoring: SDR against museval itself, SI-SDR on known cases, the track reader, ``rtsep eval``."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

import rtsep
from rtsep import cli, evaluate
from rtsep.contract import SOURCES
from rtsep.errors import RtsepError

RATE = 44100


def write_track(folder: Path, stems: dict[str, np.ndarray], rate: int = RATE) -> Path:
    """A MUSDB18-HQ track folder: one wav per stem and their sum as mixture.wav."""
    folder.mkdir(parents=True)
    for name, signal in stems.items():
        sf.write(folder / f"{name}.wav", signal, rate, subtype="FLOAT")
    sf.write(folder / "mixture.wav", sum(stems.values()), rate, subtype="FLOAT")
    return folder


def random_stems(seed: int, seconds: float = 2.5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    return {s: (0.1 * rng.standard_normal((n, 2))).astype(np.float32) for s in SOURCES}


@pytest.fixture
def musdb(tmp_path) -> Path:
    for i in range(2):
        write_track(tmp_path / "test" / f"track{i}", random_stems(i))
    return tmp_path


def test_sdr_matches_museval():
    """Framewise and per-track SDR equal museval.evaluate's (MUSDB18 defaults) within 0.01 dB."""
    museval = pytest.importorskip("museval")
    rng = np.random.default_rng(1)
    n, cut = int(5.3 * RATE), int(0.4 * RATE)
    refs = rng.standard_normal((3, n, 2)) * np.array([1.0, 0.3, 0.6])[:, None, None]
    refs[1, RATE : 2 * RATE] = 0.0  # a silent reference: window 1 is NaN for every source
    ests = np.stack(
        [
            refs[0] + 0.3 * rng.standard_normal((n, 2)),
            lfilter([0.6, 0.3, -0.1], [1.0, -0.2], refs[1], axis=0),
            refs[2] + 0.5 * refs[0] + 0.05 * rng.standard_normal((n, 2)),
        ]
    ).astype(np.float32)
    ests[2, 3 * RATE : 4 * RATE] = 0.0  # a silent estimate: window 3 is NaN too
    ests[:, n - cut :] = 0.0  # museval zero-pads short estimates: window 4 sees the zeros
    expected = museval.evaluate(refs, ests)[0]  # (sources, windows)
    assert expected.shape == (3, 5) and np.isnan(expected[:, [1, 3]]).all()

    names = ["a", "b", "c"]
    scores = evaluate.score_track(
        dict(zip(names, refs)), dict(zip(names, ests[:, : n - cut])), RATE
    )
    for i, name in enumerate(names):
        got = np.array(scores[name].sdr_frames)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected[i]))
        np.testing.assert_allclose(
            got[~np.isnan(got)], expected[i][~np.isnan(expected[i])], atol=0.01
        )
        assert scores[name].sdr == pytest.approx(np.nanmedian(expected[i]), abs=0.01)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    frames=st.integers(1, 3 * RATE),
    window=st.sampled_from([1000, RATE]),
)
def test_sdr_windows_follow_museval_framing(seed, frames, window):
    """One window per full hop (the partial tail dropped), or one window over a short signal."""
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((2, frames, 1))
    sdr = evaluate.bsseval_sdr(refs, refs + 0.1, window)
    assert sdr.shape == (2, max(1, frames // window))


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3),
    noise=st.floats(1e-3, 10.0),
)
def test_si_sdr_is_scale_invariant(seed, scale, noise):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((500, 2))
    est = ref + noise * rng.standard_normal((500, 2))
    base = evaluate.si_sdr(ref, est)
    assert evaluate.si_sdr(ref, scale * est) == pytest.approx(base, abs=1e-6)
    assert evaluate.si_sdr(scale * ref, est) == pytest.approx(base, abs=1e-6)


def test_si_sdr_known_values():
    ref = np.array([[1.0, 0.0], [0.0, 0.0]])
    # estimate = 0.5 * reference + orthogonal noise of energy 0.01: 10 log10(0.25 / 0.01)
    est = np.array([[0.5, 0.0], [0.1, 0.0]])
    assert evaluate.si_sdr(ref, est) == pytest.approx(10 * math.log10(25.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate.si_sdr(ref, ref) == math.inf
        assert evaluate.si_sdr(ref, 2 * ref) == math.inf
        assert math.isnan(evaluate.si_sdr(np.zeros(4), np.ones(4)))  # silent reference
        assert evaluate.si_sdr(np.ones(4), np.zeros(4)) == -math.inf  # silent estimate


def test_perfect_estimate_and_silent_reference_in_summary():
    stems = random_stems(3, seconds=2.2)
    silent = {**stems, "vocals": np.zeros_like(stems["vocals"])}
    scores = {
        "perfect": evaluate.score_track(stems, stems, RATE),
        "silent": evaluate.score_track(silent, stems, RATE),  # every window NaN
    }
    assert scores["perfect"]["drums"].sdr == math.inf
    assert math.isnan(scores["silent"]["drums"].sdr)
    assert math.isnan(scores["silent"]["vocals"].si_sdr)
    summary = evaluate.summarize(scores)
    assert summary["drums"] == {
        "sdr": math.inf,
        "si_sdr": math.inf,
        "sdr_mean": math.inf,
        "tracks": 1,
    }
    assert summary["vocals"]["si_sdr"] == math.inf  # the NaN track is skipped


def test_summary_median_and_mean_over_tracks_skip_nan():
    sdrs = {"a": 1.0, "b": 2.0, "c": 9.0, "d": math.nan}
    scores = {t: {"bass": evaluate.SourceScore(v, 0.0, [v])} for t, v in sdrs.items()}
    summary = evaluate.summarize(scores)
    assert summary["bass"] == {"sdr": 2.0, "si_sdr": 0.0, "sdr_mean": 4.0, "tracks": 3}


def test_read_track(musdb):
    track = evaluate.read_track(musdb / "test" / "track0")
    stems = random_stems(0)
    assert track.name == "track0" and track.sample_rate == RATE
    assert set(track.stems) == set(SOURCES)
    np.testing.assert_array_equal(track.stems["bass"], stems["bass"])
    np.testing.assert_allclose(track.mixture, sum(stems.values()), atol=1e-6)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "bass.wav").unlink(), "bass.wav: missing"),
        (lambda f: sf.write(f / "drums.wav", np.zeros((100, 2)), RATE), "truncated"),
        (lambda f: sf.write(f / "other.wav", np.zeros((int(2.5 * RATE), 1)), RATE), "channels"),
        (lambda f: sf.write(f / "vocals.wav", np.zeros((int(2.5 * RATE), 2)), 22050), "Hz"),
        (lambda f: (f / "mixture.wav").write_bytes(b"RIFF\x00junk"), "unreadable"),
        (lambda f: sf.write(f / "drums.wav", np.zeros((0, 2)), RATE), "empty"),
    ],
)
def test_read_track_errors(musdb, damage, message):
    folder = musdb / "test" / "track1"
    damage(folder)
    with pytest.raises(RtsepError, match=message):
        evaluate.read_track(folder)


def test_find_tracks(musdb, tmp_path):
    (musdb / "test" / ".track2.tmp").mkdir()  # a track being written elsewhere
    assert [p.name for p in evaluate.find_tracks(musdb)] == ["track0", "track1"]
    assert [p.name for p in evaluate.find_tracks(musdb, "test", 1)] == ["track0"]
    with pytest.raises(RtsepError, match="no such folder"):
        evaluate.find_tracks(tmp_path / "nowhere")
    with pytest.raises(RtsepError, match="--split 'train'"):
        evaluate.find_tracks(musdb, "train")
    (musdb / "empty").mkdir()
    with pytest.raises(RtsepError, match="no track folders"):
        evaluate.find_tracks(musdb, "empty")


def test_write_json_is_strict_and_atomic(tmp_path):
    path = tmp_path / "out.json"
    evaluate.write_json(path, {"a": [math.nan, math.inf, -math.inf, np.float32(1.5)]})
    assert json.loads(path.read_text()) == {"a": [None, "inf", "-inf", 1.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(RtsepError, match="--force"):
        evaluate.check_output(path, force=False)
    evaluate.check_output(path, force=True)


def test_eval_command(musdb, toy_model_dir, tmp_path, capsys):
    out = tmp_path / "scores.json"
    argv = ["eval", str(musdb), "--model", str(toy_model_dir), "--provider", "cpu"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toy SDR" in printed and "vocals" in printed
    result = json.loads(out.read_text())
    assert result["name"] == "toy" and result["split"] == "test"
    assert result["command"].startswith("rtsep eval ")
    assert set(result["tracks"]) == {"track0", "track1"}

    track = evaluate.read_track(musdb / "test" / "track1")
    model = rtsep.load_model(toy_model_dir, "cpu")
    expected = evaluate.score_track(track.stems, rtsep.separate(track.mixture, RATE, model), RATE)
    for source in SOURCES:
        assert result["tracks"]["track1"][source]["sdr"] == pytest.approx(expected[source].sdr)
        assert result["tracks"]["track1"][source]["si_sdr"] == pytest.approx(
            expected[source].si_sdr
        )
    assert set(result["median"]) == set(SOURCES)

    # the file exists now: refused without --force, before any work; nothing else written
    assert cli.main([*argv, "--json", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("use --force to overwrite it")
    assert cli.main([*argv, "--json", str(out), "--tracks", "1", "--force"]) == 0
    assert set(json.loads(out.read_text())["tracks"]) == {"track0"}


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--split", "dev"], "no such folder"), (["--tracks", "0"], "at least 1")],
)
def test_eval_command_errors(musdb, toy_model_dir, capsys, args, message):
    assert cli.main(["eval", str(musdb), "--model", str(toy_model_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtsep: error:") and message in err and err.count("\n") == 1


def test_eval_saves_scores_into_the_model(musdb, toy_model_dir, tmp_path):
    model_dir = Path(shutil.copytree(toy_model_dir, tmp_path / "model"))
    out = tmp_path / "scores.json"
    argv = ["eval", str(musdb), "--model", str(model_dir), "--json", str(out), "--save-scores"]
    assert cli.main(argv) == 0
    saved = json.loads((model_dir / "model.json").read_text())["evaluations"]
    label = f"{musdb.resolve().name}/test"
    assert saved[label]["median"] == json.loads(out.read_text())["median"]
    assert (
        rtsep.load_model(model_dir, "cpu")
        .meta["evaluations"][label]["command"]
        .startswith("rtsep eval ")
    )


def test_eval_of_the_step_graph_scores_what_the_engine_plays(musdb, toy_model_dir, tmp_path):
    model_dir = Path(shutil.copytree(toy_model_dir, tmp_path / "model"))
    out = tmp_path / "scores.json"
    argv = ["eval", str(musdb), "--model", str(model_dir), "--provider", "cpu", "--tracks", "1"]
    assert cli.main([*argv, "--graph", "step", "--json", str(out), "--save-scores"]) == 0
    result = json.loads(out.read_text())
    assert "--graph step" in result["command"]
    track = evaluate.read_track(musdb / "test" / "track0")
    model = rtsep.load_model(model_dir, "cpu")
    estimates = rtsep.separate(track.mixture, RATE, model, graph="step")
    expected = evaluate.score_track(track.stems, estimates, RATE)
    for source in SOURCES:
        assert result["tracks"]["track0"][source]["sdr"] == pytest.approx(expected[source].sdr)
    assert set(model.meta["evaluations"]) == {f"{musdb.resolve().name}/test/step"}


def test_two_evals_of_one_model_keep_both_scores(musdb, toy_model_dir, tmp_path, monkeypatch):
    """An eval that saves while another runs must not drop the other's scores."""
    model_dir = Path(shutil.copytree(toy_model_dir, tmp_path / "model"))
    report = evaluate.report

    def other_eval_saves_meanwhile(*args, **kwargs):
        meta = json.loads((model_dir / "model.json").read_text())
        meta["evaluations"] = {"heldout/test": {"median": {}, "command": "rtsep eval heldout"}}
        (model_dir / "model.json").write_text(json.dumps(meta))
        return report(*args, **kwargs)

    monkeypatch.setattr(evaluate, "report", other_eval_saves_meanwhile)
    assert cli.main(["eval", str(musdb), "--model", str(model_dir), "--save-scores"]) == 0
    saved = json.loads((model_dir / "model.json").read_text())["evaluations"]
    assert set(saved) == {"heldout/test", f"{musdb.resolve().name}/test"}
