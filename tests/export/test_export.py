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
from export import convert, pipeline, quantize
from rtsep import cli, contract
from rtsep.errors import RtsepError
from training import train


def train_tiny(root: Path, steps: int, **overrides) -> Path:
    """A tiny model trained a few steps on a tiny generated MUSDB18-HQ folder; its run."""
    from tests.training.test_train import write_tiny_musdb

    data = write_tiny_musdb(root / "data", tracks=2, seconds=1.0)
    cfg = train.TrainConfig(
        preset="tiny",
        data=str(data),
        out=str(root / "run"),
        steps=steps,
        batch_size=2,
        excerpt_seconds=0.25,
        val_every=3,
        val_batches=1,
        xla=False,
        overrides=overrides,
        source_weights={"vocals": 3.0},  # model.json must record what the loss weighed
        drum_pitch=2.0,  # and how the drums were retuned
    )
    train.train(cfg, progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("export"), steps=6)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    """The CLI's default export: weights in 8 bits."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    assert cli.main(["export", str(trained), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def exported_fp32(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-fp32"
    assert cli.main(["export", str(trained), "--out", str(out), "--weights", "fp32"]) == 0
    return out


def test_model_folder_follows_contract(exported):
    meta = json.loads((exported / contract.META_FILE).read_text())
    assert meta["format_version"] == contract.FORMAT_VERSION
    assert meta["sources"] == list(contract.SOURCES)
    training = meta["training"]
    assert (meta["preset"], training["steps"], training["loss"]) == ("tiny", 6, "sdr")
    [leg] = training["legs"]  # one leg, from step 0 to 6, timed
    assert (leg["from_step"], leg["to_step"]) == (0, 6) and leg["wall_s"] > 0 < leg["cpu_s"]
    assert leg["lr"] == train.TrainConfig.lr
    assert training["source_weights"] == leg["source_weights"] == {"vocals": 3.0}
    assert leg["drum_pitch"] == 2.0 and "machine" not in leg
    assert meta["states"][0] == {"name": "enc", "shape": [2, 3, 1, contract.HOP]}  # tiny: mono
    # the step graph's TCN inputs are one delay line, the sequence graph's one window a block
    dilations = meta["config"]["dilations"]
    assert meta["states"][1] == {"name": "tcn", "shape": [2, 3, 8], "delays": dilations}
    windows = [s["name"] for s in meta["sequence_states"]]
    assert windows == ["enc", *(f"tcn{i}" for i in range(len(dilations))), "dec"]
    assert meta["parameters"] > 0 and meta["macs_per_hop"] > 0
    assert meta["scores"]["step"] == 6 and set(meta["scores"]["validation_sdr_db"]) == set(
        contract.SOURCES
    )
    assert max(meta["parity"].values()) <= pipeline.TOLERANCE
    (exported.parent / "probe").mkdir()  # a plain mkdir: the mode others get to read
    assert exported.stat().st_mode == (exported.parent / "probe").stat().st_mode
    step = onnx.load(exported / contract.STEP_FILE)
    assert step.opset_import[0].version == convert.OPSET
    ops = [n.op_type for n in step.graph.node]
    assert not set(ops) & {"BatchNormalization", "Loop"}, ops
    # One frame a call: a windowed causal conv (encoder, decoder) reads its taps with one
    # strided Slice (a Transpose too where they must pass the channel axis) and keeps its
    # state with another; the TCN's blocks split their delay line's entries (one Split) and
    # concatenate each with the block's input, and their inputs become the next entries
    # (one Concat). Every matmul and its bias are one node once the tensordot Reshapes are
    # gone: in 8 bits (MatMulNBits) but for the decoder's, a Gemm.
    blocks = len(dilations)
    assert ops.count("Slice") <= 4 and ops.count("Split") == 1, ops
    assert ops.count("Concat") == 2 + blocks + 1, ops
    assert ops.count("MatMulNBits") == 2 + 2 * blocks + 1 and ops.count("Gemm") == 1, ops
    assert ops.count("Transpose") <= 2 and "MatMul" not in ops, ops
    weights = meta["weights"]
    assert (weights["step"], weights["sequence"], weights["fp32_layers"]) == (
        "int8",
        "fp32",
        ["decoder"],
    )
    assert min(weights["snr_db_vs_fp32_step"], weights["snr_db_vs_sequence"]) >= (
        pipeline.INT8_MIN_SNR_DB
    )
    assert weights["mixture_consistency"] <= pipeline.TOLERANCE
    sequence = onnx.load(exported / contract.SEQUENCE_FILE).graph
    assert not [n.op_type for n in sequence.node if n.domain]  # offline keeps fp32 weights
    # ReLU runs on the Gemm's own output: no 3-D view between them (convert.drop_reshape_views)
    producer = {o: n.op_type for n in step.graph.node for o in n.output}
    relu_inputs = [producer.get(n.input[0]) for n in step.graph.node if n.op_type == "Relu"]
    assert relu_inputs and "Reshape" not in relu_inputs, relu_inputs
    # each block's matmul reads its Concat: no 2-D view of it (MatMulNBits takes 3-D)
    block_inputs = [producer.get(n.input[0]) for n in step.graph.node if n.op_type == "MatMulNBits"]
    assert block_inputs.count("Concat") == blocks, block_inputs
    assert meta["nodes"]["step"] == len(step.graph.node)
    model = rtsep.load_model(exported, provider="cpu")
    assert [n for n, _ in model.states] == [s["name"] for s in meta["states"]]


def test_fp32_export_keeps_every_matmul_in_fp32(exported_fp32):
    meta = json.loads((exported_fp32 / contract.META_FILE).read_text())
    assert meta["weights"] == {"step": "fp32", "sequence": "fp32"}
    for file in (contract.STEP_FILE, contract.SEQUENCE_FILE):
        graph = onnx.load(exported_fp32 / file).graph
        assert not [n.op_type for n in graph.node if n.domain], file


def test_8_bit_step_separates_as_the_fp32_one_does(exported, exported_fp32, step_graph_hop_by_hop):
    rng = np.random.default_rng(6)
    audio = (0.2 * rng.standard_normal((30 * contract.HOP, 2))).astype(np.float32)
    int8, fp32 = (
        step_graph_hop_by_hop(rtsep.load_model(m, provider="cpu"), audio)
        for m in (exported, exported_fp32)
    )
    for i, s in enumerate(contract.SOURCES):
        assert quantize.snr_db(fp32[:, i], int8[:, i]) > pipeline.INT8_MIN_SNR_DB, s
    assert np.abs(int8 - fp32).max() > 1e-5  # and they are not the same graph


def test_runtime_matches_keras(exported_fp32, trained):
    """rtsep.separate and the streaming Separator reproduce the Keras model (1e-4)."""
    net, _, _ = train.load_trained(trained)
    rng = np.random.default_rng(5)
    n = 40 * contract.HOP + 17
    audio = (0.2 * rng.standard_normal((n, 2))).astype(np.float32)
    want = np.asarray(net.training_model()(audio.T[:, : n - 17], training=False))  # [2, S, T]
    got = rtsep.separate(audio, contract.SAMPLE_RATE, model=str(exported_fp32), provider="cpu")
    for i, s in enumerate(contract.SOURCES):
        np.testing.assert_allclose(got[s][: n - 17].T, want[:, i], atol=1e-4)
    sep = rtsep.Separator.load(exported_fp32, provider="cpu")
    sep.prepare(sample_rate=contract.SAMPLE_RATE, max_block_size=100, channels=2)
    sep.solo("drums")
    sep.reset()
    blocks = [sep.process(audio[a : a + 100]).copy() for a in range(0, n - 17, 100)]
    out = np.concatenate(blocks)[: n - 17]
    lat = sep.latency_samples
    np.testing.assert_allclose(out[lat:].T, want[:, 0, : n - 17 - lat], atol=1e-4)


def test_stereo_model_exports_and_hears_mono_centred(tmp_path):
    """A ``channels=2`` model trains on stereo pairs, exports with one state row, and a mono
    signal is heard in both rows: the same as that signal in both channels, in the offline
    path and in the engine (a mono signal fed to row 0 only sounds hard left to it)."""
    out = tmp_path / "model"
    info = pipeline.export(train_tiny(tmp_path, steps=3, channels=2), out, progress=False)
    assert info["states"][0]["shape"] == [1, 3, 2, contract.HOP]
    rng = np.random.default_rng(9)
    mono = (0.2 * rng.standard_normal(30 * contract.HOP)).astype(np.float32)
    both = np.stack([mono, mono], axis=1)
    got = rtsep.separate(mono, contract.SAMPLE_RATE, model=str(out), provider="cpu")
    want = rtsep.separate(both, contract.SAMPLE_RATE, model=str(out), provider="cpu")
    for s in contract.SOURCES:
        np.testing.assert_allclose(got[s], want[s][:, 0], atol=1e-6)
    streams = []
    for signal in (mono[:, None], both):
        sep = rtsep.Separator.load(out, provider="cpu")
        sep.prepare(contract.SAMPLE_RATE, max_block_size=64, channels=signal.shape[1])
        sep.solo("bass")
        sep.reset()
        streams.append(np.concatenate([sep.process(b).copy() for b in np.split(signal, 30)]))
    np.testing.assert_allclose(streams[0][:, 0], streams[1][:, 0], atol=1e-6)


def test_two_passes_over_the_dilations_export_with_an_entry_a_block(tmp_path):
    """``repeats=2`` (what ``rtsep train --init-from ... --set repeats=2`` grows): the step
    graph's delay line has an entry for each of the twice as many blocks, and the export's
    parity checks (step hop by hop against sequence against Keras) pass."""
    info = pipeline.export(train_tiny(tmp_path, steps=3, repeats=2), tmp_path / "m", progress=False)
    dilations = info["config"]["dilations"]
    assert info["states"][1]["delays"] == dilations * 2
    assert len(info["sequence_states"]) == 2 + 2 * len(dilations)
    assert max(info["parity"].values()) <= pipeline.TOLERANCE


def test_refuses_to_write_when_checks_fail(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "TOLERANCE", 0.0)
    out = tmp_path / "bad"
    with pytest.raises(RtsepError, match="parity"):
        pipeline.export(trained, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_8_bit_weights_that_move_the_output_too_far(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "INT8_MIN_SNR_DB", float("inf"))
    with pytest.raises(RtsepError, match="--weights fp32; nothing written"):
        pipeline.export(trained, tmp_path / "bad", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_errors(exported, trained, tmp_path, capsys):
    assert cli.main(["export", str(trained), "--out", str(exported)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "rtsep train" in capsys.readouterr().err
