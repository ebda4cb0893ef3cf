"""The training loop on a tiny MUSDB18-HQ-layout folder: loss falls, checkpoints, resume, logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tensorflow")

from rtsep import cli, contract
from rtsep.errors import RtsepError
from training import data, losses, models, train

RATE = contract.SAMPLE_RATE


def write_tiny_musdb(root: Path, tracks: int = 3, seconds: float = 2.0) -> Path:
    """A MUSDB18-HQ-layout folder (train/ and test/) of simple, separable stereo stems."""
    t = np.arange(int(seconds * RATE)) / RATE
    for split, count, offset in (("train", tracks, 0), ("test", 1, 100)):
        for k in range(count):
            rng = np.random.default_rng(offset + k)
            beat = np.exp(-((t * rng.uniform(2, 4)) % 1) * 30)
            stems = {
                "drums": 0.3 * rng.standard_normal(t.size) * beat,
                "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(50, 90) * t),
                "other": 0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(300, 500) * t)),
                "vocals": 0.2
                * np.sin(2 * np.pi * rng.uniform(900, 1500) * t + 4 * np.sin(2 * np.pi * 5 * t)),
            }
            folder = root / split / f"track{k}"
            folder.mkdir(parents=True)
            stereo = {s: np.stack([x, 0.8 * x], 1).astype(np.float32) for s, x in stems.items()}
            for s, x in stereo.items():
                sf.write(folder / f"{s}.wav", x, RATE, subtype="FLOAT")
            sf.write(folder / "mixture.wav", sum(stereo.values()), RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_musdb(tmp_path_factory.mktemp("musdb"))


def _cfg(data: Path, out: Path, **kw) -> train.TrainConfig:
    base = dict(
        preset="tiny",
        data=str(data),
        out=str(out),
        steps=60,
        batch_size=4,
        excerpt_seconds=0.5,
        lr=3e-3,
        val_every=20,
        val_batches=2,
        xla=False,
    )
    return train.TrainConfig(**{**base, **kw})


def test_tiny_trains_and_loss_falls(tiny_data, tmp_path):
    out = tmp_path / "run"
    leg = train.train(_cfg(tiny_data, out, xla=True), progress=False)
    assert (leg["from_step"], leg["to_step"], leg["steps"]) == (0, 60, 60)
    rows = [json.loads(x) for x in (out / train.HISTORY).read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert set(rows[-1]["val_sdr_full"]) == set(contract.SOURCES)
    for name in (train.CHECKPOINT, train.CONFIG, train.CURVES, train.LEGS):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    log = [json.loads(x) for x in (out / train.LEGS).read_text().splitlines()]
    assert log[0]["steps"] == 60 and log[0]["wall_s"] > 0 and log[0]["machine"]["cpus"]
    assert 0 < log[0]["cpu_s"]


def test_resume_continues_and_logs_each_leg(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train.train(_cfg(tiny_data, out, steps=10, val_every=10), progress=False)
    net, step, _ = train.load_trained(out)
    assert step == 10
    with pytest.raises(RtsepError, match="--resume"):
        train.train(_cfg(tiny_data, out, steps=20), progress=False)
    cfg = _cfg(tiny_data, out, steps=20, val_every=10, resume=True)
    cfg.lr = 1e-4  # a leg at a lower rate: it must win over the rate stored in the checkpoint
    firsts = []  # the first excerpt index of each training stream built
    make_dataset = data.make_dataset
    monkeypatch.setattr(
        data, "make_dataset", lambda *a, **k: firsts.append(k["first"]) or make_dataset(*a, **k)
    )
    leg = train.train(cfg, progress=False)
    assert (leg["from_step"], leg["to_step"], leg["lr"]) == (10, 20, 1e-4)
    assert leg["data"] == str(tiny_data)
    assert firsts == [10 * cfg.batch_size]  # continues the excerpt stream, no replay
    with np.load(out / train.CHECKPOINT) as ckpt:  # the optimizer's scalars: iterations, rate
        scalars = [float(ckpt[k]) for k in ckpt.files if k.startswith("o") and ckpt[k].ndim == 0]
    assert np.isclose(scalars, 1e-4).any() and not np.isclose(scalars, 3e-3).any()
    assert len((out / train.LEGS).read_text().splitlines()) == 2
    net2, step2, _ = train.load_trained(out)
    assert step2 == 20
    changed = [
        not np.allclose(a, b)
        for a, b in zip(
            net.training_model().get_weights(), net2.training_model().get_weights(), strict=True
        )
    ]
    assert any(changed)


@pytest.mark.parametrize(
    "key, value", [("window_hops", 8), ("repeats", 2), ("dilations", [1, 2, 4, 1, 4])]
)
def test_init_from_grows_the_network_without_changing_the_output(tiny_data, tmp_path, key, value):
    """A run started from another with a longer analysis window or more TCN blocks begins as
    exactly the network it came from (new, older encoder taps at zero; new blocks adding
    nothing), keeps its step, legs and optimizer moments, and learns on."""
    src = tmp_path / "short"
    train.train(_cfg(tiny_data, src, steps=10, val_every=10), progress=False)
    audio = np.random.default_rng(0).standard_normal((2, 40 * contract.HOP)).astype(np.float32)
    for averaged in (False, True):  # the last weights and their moving average both grow
        short, _, meta = train.load_trained(src, averaged=averaged)
        grown = models.build("tiny", **{**meta["config"], key: value})
        grown.start_as(short)
        ckpt = src / train.CHECKPOINT
        step = train.load_weights(ckpt, grown.training_model(), averaged=averaged, grown_from=short)
        assert step == 10
        np.testing.assert_allclose(
            grown.training_model()(audio).numpy(), short.training_model()(audio).numpy(), atol=1e-5
        )
    out = tmp_path / "long"
    for bad in ({"hidden": 16}, {"window_hops": 2}, {"dilations": [1, 4, 2, 1]}):
        with pytest.raises(RtsepError, match="only a larger window_hops, or blocks after"):
            train.train(_cfg(tiny_data, out, init_from=str(src), overrides=bad), progress=False)
    cfg = _cfg(tiny_data, out, steps=20, init_from=str(src), overrides={key: value})
    leg = train.train(cfg, progress=False)
    with pytest.raises(RtsepError, match="--force to replace it"):
        train.train(cfg, progress=False)
    assert (leg["from_step"], leg["to_step"]) == (10, 20)
    assert leg["init_from"]["config"][key] == short.config[key] != value
    assert len((out / train.LEGS).read_text().splitlines()) == 2  # the source's leg, this one
    net, _, meta = train.load_trained(out)
    assert meta["config"][key] == value
    trained = net.training_model().get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(trained, grown.training_model().get_weights()))
    if key != "window_hops":  # every new block has come in
        fresh = models.build("tiny", **meta["config"])
        fresh.start_as(short)
        pairs = zip(net.blocks[len(short.blocks) :], fresh.blocks[len(short.blocks) :])
        for (_, _, block_out), (_, _, fresh_out) in pairs:
            assert np.abs(block_out.w.numpy()).max() > 0 == np.abs(fresh_out.w.numpy()).max()
        with np.load(src / train.CHECKPOINT) as before, np.load(out / train.CHECKPOINT) as after:
            assert after["o0"] == 20 and before["o0"] == 10  # Adam's step count carried on


def test_the_moving_average_is_kept_validated_and_loaded(tiny_data, tmp_path):
    """A leg with --ema keeps the average beside the last weights; a leg resumed from a
    checkpoint without one starts it at the weights; validation scores the average, and
    load_trained gives it (or, asked, the last weights)."""
    out = tmp_path / "run"
    train.train(_cfg(tiny_data, out, steps=10, val_every=10, ema=0.0), progress=False)
    with np.load(out / train.CHECKPOINT) as ckpt:
        assert not any(k.startswith("e") for k in ckpt.files)
    cfg = _cfg(tiny_data, out, steps=30, val_every=10, resume=True, ema=0.99)
    leg = train.train(cfg, progress=False)
    assert leg["ema"] == 0.99
    with np.load(out / train.CHECKPOINT) as ckpt:
        last = [ckpt[k] for k in sorted((k for k in ckpt.files if k[0] == "w"), key=_index)]
        average = [ckpt[k] for k in sorted((k for k in ckpt.files if k[0] == "e"), key=_index)]
        assert int(ckpt["average_updates"]) == 20
    assert len(average) == len(last)
    assert any(not np.allclose(a, w) for a, w in zip(average, last, strict=True))
    net_avg, _, meta_avg = train.load_trained(out)
    net_last, _, meta_last = train.load_trained(out, averaged=False)
    assert meta_avg["weights"] == {"moving_average": 0.99, "updates": 20}
    assert meta_last["weights"] == "last"
    for got, want in ((net_avg, average), (net_last, last)):
        for a, b in zip(got.training_model().get_weights(), want, strict=True):
            np.testing.assert_array_equal(a, b)
    _, val = train._datasets(cfg, net_avg.channels, 0)
    loss_fn = losses.LOSSES[meta_avg["recipe"]["loss"]]

    def val_loss(net) -> float:
        return float(np.mean([loss_fn(y, net.training_model()(x)) for x, y in val]))

    logged = json.loads((out / train.HISTORY).read_text().splitlines()[-1])["val_loss"]
    assert logged == pytest.approx(val_loss(net_avg), rel=1e-4)
    assert logged != pytest.approx(val_loss(net_last), rel=1e-4)


def _index(key: str) -> int:
    return int(key[1:])


def test_source_weights_are_recorded_and_kept_by_the_legs_that_follow(tiny_data, tmp_path):
    """A weighted leg records its weights; a leg grown from it keeps them unless told; the
    validation loss stays the plain one, so that legs compare."""
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    weighted = {"drums": 2.0}
    leg = train.train(
        _cfg(tiny_data, first, steps=4, val_every=4, source_weights=weighted), progress=False
    )
    assert leg["source_weights"] == weighted
    recipe = json.loads((first / train.CONFIG).read_text())["recipe"]
    assert recipe["source_weights"] == weighted
    leg = train.train(_cfg(tiny_data, second, steps=8, val_every=4, init_from=str(first)), False)
    assert leg["source_weights"] == weighted
    cleared = _cfg(tiny_data, third, steps=12, val_every=4, init_from=str(second))
    cleared.source_weights = {"drums": 1.0}
    leg = train.train(cleared, progress=False)
    assert "source_weights" not in leg
    assert json.loads((third / train.CONFIG).read_text())["recipe"]["source_weights"] == {}

    net, _, _ = train.load_trained(second)  # its validation loss is the unweighted SDR loss
    model = net.training_model()
    _, val = train._datasets(_cfg(tiny_data, second), net.channels, 0)
    plain = [float(losses.neg_sdr(stems, model(mix, training=False))) for mix, stems in val]
    last = json.loads((second / train.HISTORY).read_text().splitlines()[-1])
    assert last["val_loss"] == pytest.approx(np.mean(plain), abs=1e-4)


def test_a_signal_ends_the_leg_with_its_checkpoint_and_log(tiny_data, tmp_path):
    """Ctrl-C (or SIGTERM) during a leg: the step in progress ends, the checkpoint and the
    leg's log row are written, the exit status says so, and --resume goes on from there."""
    out = tmp_path / "run"
    args = ["--preset", "tiny", "--data", str(tiny_data), "--out", str(out), "--no-xla"]
    args += ["--steps", "100000", "--batch-size", "2", "--excerpt-seconds", "0.5"]
    args += ["--val-every", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtsep.cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = out / train.HISTORY
    deadline = time.monotonic() + 120
    while not (history.is_file() and history.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint kept" in err and "Traceback" not in err
    [leg] = [json.loads(x) for x in (out / train.LEGS).read_text().splitlines()]
    assert leg["stopped_by"] == "SIGINT" and leg["to_step"] >= 5
    assert train.load_trained(out)[1] == leg["to_step"]


def test_cli_errors(tiny_data, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nothing"
    assert (
        cli.main(
            [
                "train",
                "--preset",
                "tiny",
                "--data",
                str(missing),
                "--out",
                str(tmp_path / "o"),
                "--steps",
                "1",
            ]
        )
        == 2
    )
    assert "--data" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "--preset",
                "tiny",
                "--data",
                str(tiny_data),
                "--out",
                str(tmp_path / "o"),
                "--set",
                "bad",
            ]
        )
        == 2
    )
    assert "KEY=VALUE" in capsys.readouterr().err
    for flag, bad, message in (
        ("--source-weight", "drums", "SOURCE=W"),
        ("--source-weight", "drums=0", "SOURCE=W"),
        ("--source-weight", "drum=2", "'drum'"),
        ("--drum-pitch", "-1", "semitones from 0 to 12"),
        ("--drum-pitch", "13", "semitones from 0 to 12"),
    ):
        args = ["train", "--preset", "tiny", "--data", str(tiny_data)]
        args += ["--out", str(tmp_path / "o"), flag, bad]
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    assert cli.main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'rtsep[train]'" in capsys.readouterr().err


def test_validation_sdr_over_frames_skips_silence_like_museval():
    frame = 100
    t = np.arange(2 * frame)
    ref = np.stack([np.sin(0.1 * (k + 1) * t) for k in range(4)])[None].astype(np.float32)
    ref[0, 1, frame:] = 0.0  # bass rests in the second frame
    error = np.where(t < frame, 0.1, 0.01)  # 20 dB in the first frame, 40 dB in the second
    est = ref * (1 - error)
    each = train._median_sdr(ref, est, frame)
    assert each["drums"] == pytest.approx(30, abs=1e-3)  # median of 20 and 40
    assert each["bass"] == pytest.approx(20, abs=1e-3)  # its silent frame left out
    full = train._median_sdr(ref, est, frame, all_playing=True)
    assert all(v == pytest.approx(20, abs=1e-3) for v in full.values())  # only frame one
