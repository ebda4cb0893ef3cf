"""Model loading: every way a model folder can break the contract gives a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rtsep
from rtsep.errors import ModelError, RtsepError


@pytest.fixture
def model_copy(toy_model_dir, tmp_path) -> Path:
    return Path(shutil.copytree(toy_model_dir, tmp_path / "model"))


DELAY_A = {"name": "delay_a", "shape": [2, 100]}
DELAY_B = {"name": "delay_b", "shape": [2, 37]}
ECHO = {"name": "echo", "shape": [2, 2, 64], "delays": [3, 5]}


def edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


def test_loads_a_good_model(toy_model_dir):
    model = rtsep.load_model(toy_model_dir, provider="cpu")
    assert model.sources == rtsep.SOURCES
    assert model.provider == "cpu"
    windows = {"delay_a": (2, 100), "delay_b": (2, 37)}
    assert dict(model.states) == {**windows, "echo": (2, 2, 64)}
    assert dict(model.sequence_states) == {**windows, "echo_a": (2, 192), "echo_b": (2, 320)}
    assert model.delays == {"echo": (3, 5)}
    assert {k: v.shape for k, v in model.zero_states("sequence").items()} == dict(
        model.sequence_states
    )


def test_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        rtsep.load_model(tmp_path / "nope")


@pytest.mark.parametrize("name", ["step.onnx", "sequence.onnx", "model.json"])
def test_missing_file(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ModelError, match=f"has no {name}"):
        rtsep.load_model(model_copy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 99}, "format_version 99"),
        ({"sample_rate": 48000}, "sample_rate 48000"),
        ({"hop": 128}, "hop 128"),
        ({"channels": 1}, "channels 1"),
        ({"sources": []}, "non-empty list"),
        ({"sources": ["a", "a", "b", "c"]}, "duplicates"),
        ({"states": [{"name": "delay_a"}]}, "'shape'"),
        (
            {"states": [{"name": "delay_a", "shape": [2, 100]}]},
            "step.onnx: inputs .*unexpected \\['delay_b', 'echo'\\]",
        ),
        (
            {"states": [{"name": "delay_a", "shape": [2, 99]}, DELAY_B, ECHO]},
            "delay_a has shape \\[2, 100\\], expected \\[2, 99\\]",
        ),
        ({"states": [DELAY_A, DELAY_B, {**ECHO, "delays": [3]}]}, "echo has 1 delays"),
        ({"states": [DELAY_A, DELAY_B, {**ECHO, "delays": [3, 0]}]}, "at least 1 hop"),
        ({"states": [DELAY_A, DELAY_B, {**ECHO, "delays": ["x", 1]}]}, "list of hops"),
        (
            {"sequence_states": [DELAY_A, DELAY_B]},
            "sequence.onnx: inputs .*unexpected \\['echo_a', 'echo_b'\\]",
        ),
    ],
)
def test_meta_that_breaks_the_contract(model_copy, changes, message):
    edit_meta(model_copy, **changes)
    with pytest.raises(ModelError, match=message):
        rtsep.load_model(model_copy)


def test_missing_key_and_bad_json(model_copy):
    meta = json.loads((model_copy / "model.json").read_text())
    del meta["hop"]
    (model_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="has no 'hop'"):
        rtsep.load_model(model_copy)
    (model_copy / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        rtsep.load_model(model_copy)


def test_graphs_swapped_or_corrupt(model_copy):
    shutil.copy(model_copy / "sequence.onnx", model_copy / "step.onnx")
    with pytest.raises(ModelError, match=r"step\.onnx: inputs do not match .* \['echo'\]"):
        rtsep.load_model(model_copy)
    edit_meta(
        model_copy, states=json.loads((model_copy / "model.json").read_text())["sequence_states"]
    )
    with pytest.raises(ModelError, match=r"step\.onnx: input audio has shape"):
        rtsep.load_model(model_copy)
    (model_copy / "step.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot be loaded by onnxruntime"):
        rtsep.load_model(model_copy)


def test_providers(toy_model_dir):
    from rtsep.model import cuda_works

    with pytest.raises(RtsepError, match="unknown provider 'tpu'"):
        rtsep.load_model(toy_model_dir, provider="tpu")
    assert rtsep.load_model(toy_model_dir, provider="cpu").provider == "cpu"
    if cuda_works():
        assert rtsep.load_model(toy_model_dir, provider="cuda").provider == "cuda"
        assert rtsep.load_model(toy_model_dir, provider="auto").provider == "cuda"
    else:
        with pytest.raises(RtsepError, match=r"provider 'cuda' (is not available|does not start)"):
            rtsep.load_model(toy_model_dir, provider="cuda")
        assert rtsep.load_model(toy_model_dir, provider="auto").provider == "cpu"


def test_shared_session_is_one_per_graph_and_threads_and_model(toy_model_dir):
    import dataclasses

    model = rtsep.load_model(toy_model_dir, provider="cpu")
    seq = model.shared_session("sequence")
    assert model.shared_session("sequence", 1) is seq
    assert model.shared_session("sequence", 2) is not seq
    assert model.shared_session("step") is not seq
    assert dataclasses.replace(model).shared_session("sequence") is not seq


def test_import_rtsep_stays_light():
    import subprocess
    import sys

    heavy = "('onnxruntime', 'tensorflow', 'sounddevice')"
    code = f"import sys, rtsep; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
