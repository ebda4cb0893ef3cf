"""Export of a trained tiny model: checked ONNX graphs that the runtime loads and agrees with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import onnx

import rtsep
from export import convert, pipeline
from rtsep import cli, contract
from rtsep.errors import RtsepError
from training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny model trained a few steps on a tiny generated MUSDB18-HQ folder."""
    from tests.training.test_train import write_tiny_musdb

    root = tmp_path_factory.mktemp("export")
    data = write_tiny_musdb(root / "data", tracks=2, seconds=1.0)
    cfg = train.TrainConfig(
        preset="tiny",
        data=str(data),
        out=str(root / "run"),
        steps=6,
        batch_size=2,
        excerpt_seconds=0.25,
        val_every=3,
        val_batches=1,
        xla=False,
    )
    train.train(cfg, progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    assert cli.main(["export", str(trained), "--out", str(out)]) == 0
    return out


def test_model_folder_follows_contract(exported):
    meta = json.loads((exported / contract.META_FILE).read_text())
    assert meta["format_version"] == contract.FORMAT_VERSION
    assert meta["sources"] == list(contract.SOURCES)
    training = meta["training"]
    assert (meta["preset"], training["steps"], training["loss"]) == ("tiny", 6, "sdr")
    [leg] = training["legs"]  # one leg, from step 0 to 6, timed
    assert (leg["from_step"], leg["to_step"]) == (0, 6) and leg["wall_s"] > 0 < leg["cpu_s"]
    assert meta["states"][0] == {"name": "enc", "shape": [2, 3, 1, contract.HOP]}  # tiny: mono
    assert meta["parameters"] > 0 and meta["macs_per_hop"] > 0
    assert meta["scores"]["step"] == 6 and set(meta["scores"]["validation_sdr_db"]) == set(
        contract.SOURCES
    )
    assert max(meta["parity"].values()) <= pipeline.TOLERANCE
    step = onnx.load(exported / contract.STEP_FILE)
    assert step.opset_import[0].version == convert.OPSET
    ops = {n.op_type for n in step.graph.node}
    assert not ops & {"Transpose", "BatchNormalization", "Loop"}, ops
    assert meta["nodes"]["step"] == len(step.graph.node)
    model = rtsep.load_model(exported, provider="cpu")
    assert [n for n, _ in model.states] == [s["name"] for s in meta["states"]]


def test_runtime_matches_keras(exported, trained):
    """rtsep.separate and the streaming Separator reproduce the Keras model (1e-4)."""
    net, _, _ = train.load_trained(trained)
    rng = np.random.default_rng(5)
    n = 40 * contract.HOP + 17
    audio = (0.2 * rng.standard_normal((n, 2))).astype(np.float32)
    want = np.asarray(net.training_model()(audio.T[:, : n - 17], training=False))  # [2, S, T]
    got = rtsep.separate(audio, contract.SAMPLE_RATE, model=str(exported), provider="cpu")
    for i, s in enumerate(contract.SOURCES):
        np.testing.assert_allclose(got[s][: n - 17].T, want[:, i], atol=1e-4)
    sep = rtsep.Separator.load(exported, provider="cpu")
    sep.prepare(sample_rate=contract.SAMPLE_RATE, max_block_size=100, channels=2)
    sep.solo("drums")
    sep.reset()
    blocks = [sep.process(audio[a : a + 100]).copy() for a in range(0, n - 17, 100)]
    out = np.concatenate(blocks)[: n - 17]
    lat = sep.latency_samples
    np.testing.assert_allclose(out[lat:].T, want[:, 0, : n - 17 - lat], atol=1e-4)


def test_refuses_to_write_when_checks_fail(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "TOLERANCE", 0.0)
    out = tmp_path / "bad"
    with pytest.raises(RtsepError, match="parity"):
        pipeline.export(trained, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_errors(exported, trained, tmp_path, capsys):
    assert cli.main(["export", str(trained), "--out", str(exported)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "rtsep train" in capsys.readouterr().err
