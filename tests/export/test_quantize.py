"""8-bit weights: the codes stand for the weights within half a step, and onnxruntime's
MatMulNBits on them computes what the fp32 matmul on the decoded weights computes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export import quantize  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 100), n=st.integers(1, 20), seed=st.integers(0, 1000))
def test_codes_stand_for_the_weights_within_half_a_step(k, n, seed):
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    w[: k // 3] *= 1e-3  # blocks of very different ranges: each keeps its own scale
    codes, scales = quantize.quantize_block_rows(w)
    assert codes.shape == (n, -(-k // quantize.BLOCK), quantize.BLOCK) and codes.dtype == np.uint8
    error = np.abs(quantize.dequantize(codes, scales, k) - w)
    step = np.repeat(scales.T, quantize.BLOCK, axis=0)[:k]  # each weight's own block's step
    assert np.all(error <= 0.5 * step * (1 + 1e-5))


def matmul_graph(k: int, n: int, w: np.ndarray, b: np.ndarray, name: str, gemm: bool):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if gemm:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name=name)]
    else:
        nodes = [
            helper.make_node("MatMul", ["x", "w"], ["xw"], name=name),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "m", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("gemm", [True, False], ids=["gemm", "matmul"])
@pytest.mark.parametrize("k", [96, 40, 7])  # whole blocks, a part block, less than one
def test_matmul_in_8_bits_computes_the_decoded_product(gemm, k):
    rng = np.random.default_rng(k)
    n = 24
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((3, k)).astype(np.float32)
    model = quantize.quantize_weights(matmul_graph(k, n, w, b, "proj", gemm))
    assert [node.op_type for node in model.graph.node if node.domain] == ["MatMulNBits"]
    assert not any(i.name == "w" for i in model.graph.initializer)  # fp32 weights gone
    decoded = quantize.dequantize(*quantize.quantize_block_rows(w), k)
    want = x @ decoded + b
    got = run(model, x)
    # the input rows are quantized too (per block, 8 bits): within a few of their steps
    assert quantize.snr_db(want, got) > 35
    assert quantize.snr_db(x @ w + b, got) > 30


def test_kept_layers_stay_fp32():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((64, 8)).astype(np.float32), np.zeros(8, np.float32)
    model = quantize.quantize_weights(matmul_graph(64, 8, w, b, "net/decoder_1/MatMul", True))
    assert [node.op_type for node in model.graph.node] == ["Gemm"]
    x = rng.standard_normal((3, 64)).astype(np.float32)
    np.testing.assert_allclose(run(model, x), x @ w + b, rtol=1e-5, atol=1e-5)
