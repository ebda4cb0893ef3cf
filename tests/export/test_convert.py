"""The export's graph clean-up passes: fewer nodes, and the same outputs bit for bit.

Small hand-built ONNX graphs in the step graph's shapes, run by onnxruntime before and after
(no TensorFlow needed).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from export import convert, quantize


def graph(nodes, inputs, output, constants, opsets=()) -> onnx.ModelProto:
    """A model from nodes; ``inputs``/``output``: (name, shape); ``constants``: name → array;
    ``opsets``: more (domain, version) than the standard one."""
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )
    opsets = [helper.make_opsetid(d, v) for d, v in [("", convert.OPSET), *opsets]]
    # the oldest IR version that holds the opset, not the newest this onnx writes: an
    # onnxruntime older than onnx refuses a newer one
    return helper.make_model(
        g, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets[:1])
    )


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def cleaned(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    convert.drop_reshape_views(out)
    convert._drop_whole_slices(out)
    onnx.checker.check_model(out, full_check=True)
    return out


def residual_block(c: int, hidden: int) -> onnx.ModelProto:
    """What tf2onnx leaves of a step-graph block: Gemm → 3-D view → ReLU → layer norm →
    2-D view → Gemm → 1-D view → residual Add."""
    rng = np.random.default_rng(c * 100 + hidden)
    f32 = np.float32
    constants = {
        "w1": rng.standard_normal((c, hidden)).astype(f32),
        "b1": rng.standard_normal(hidden).astype(f32),
        "w2": rng.standard_normal((hidden, c)).astype(f32),
        "b2": rng.standard_normal(c).astype(f32),
        "scale": rng.standard_normal(hidden).astype(f32),
        "bias": rng.standard_normal(hidden).astype(f32),
        "as3d": np.array([1, 1, hidden], np.int64),
        "as2d": np.array([1, hidden], np.int64),
        "as1d": np.array([c], np.int64),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Reshape", ["h", "as3d"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["r3"]),
        helper.make_node("LayerNormalization", ["r3", "scale", "bias"], ["n3"], axis=-1),
        helper.make_node("Reshape", ["n3", "as2d"], ["n2"]),
        helper.make_node("Gemm", ["n2", "w2", "b2"], ["o2"]),
        helper.make_node("Reshape", ["o2", "as1d"], ["o1"]),
        helper.make_node("Add", ["res", "o1"], ["y"]),
    ]
    return graph(nodes, [("x", [1, c]), ("res", [1, 1, c])], ("y", [1, 1, c]), constants)


def eight_bit_block(c: int, hidden: int) -> onnx.ModelProto:
    """``residual_block`` as the 8-bit export leaves it: each Gemm now a ``MatMulNBits``,
    still between the 2-D views a Gemm needed, its input flattened from [1, 1, c]."""
    rng = np.random.default_rng(c * 100 + hidden)
    f32 = np.float32
    constants = {
        "b1": rng.standard_normal(hidden).astype(f32),
        "b2": rng.standard_normal(c).astype(f32),
        "scale": rng.standard_normal(hidden).astype(f32),
        "bias": rng.standard_normal(hidden).astype(f32),
        "flat": np.array([1, c], np.int64),
        "as3d": np.array([1, 1, hidden], np.int64),
        "as2d": np.array([1, hidden], np.int64),
        "as1d": np.array([c], np.int64),
    }
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["x2"])]
    for name, (k, n), a, y in (("w1", (c, hidden), "x2", "h"), ("w2", (hidden, c), "n2", "o2")):
        codes, scales = quantize.quantize_block_rows(rng.standard_normal((k, n)).astype(f32))
        constants[f"{name}_codes"], constants[f"{name}_scales"] = codes, scales.reshape(-1)
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [a, f"{name}_codes", f"{name}_scales", "", "", f"b{name[1]}"],
                [y],
                domain=quantize.CONTRIB_DOMAIN,
                K=k,
                N=n,
                bits=quantize.BITS,
                block_size=quantize.BLOCK,
                accuracy_level=quantize.ACCURACY_LEVEL,
            )
        )
        if name == "w1":
            nodes += [
                helper.make_node("Reshape", ["h", "as3d"], ["h3"]),
                helper.make_node("Relu", ["h3"], ["r3"]),
                helper.make_node("LayerNormalization", ["r3", "scale", "bias"], ["n3"], axis=-1),
                helper.make_node("Reshape", ["n3", "as2d"], ["n2"]),
            ]
    nodes += [
        helper.make_node("Reshape", ["o2", "as1d"], ["o1"]),
        helper.make_node("Add", ["res", "o1"], ["y"]),
    ]
    inputs = [("x", [1, 1, c]), ("res", [1, 1, c])]
    return graph(nodes, inputs, ("y", [1, 1, c]), constants, [(quantize.CONTRIB_DOMAIN, 1)])


@pytest.mark.parametrize(
    ("block", "matmul", "x_shape"),
    [(residual_block, "Gemm", [1]), (eight_bit_block, "MatMulNBits", [1, 1])],
    ids=["fp32", "8-bit"],
)
@settings(max_examples=10, deadline=None)
@given(c=st.integers(1, 40), hidden=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_a_residual_block_loses_its_reshapes_and_keeps_its_values(
    block, matmul, x_shape, c, hidden, seed
):
    """The views tf2onnx and the Gemms left go, in fp32 and in 8 bits: MatMulNBits multiplies
    the last axis whatever the leading ones, so a view of its input moves past it (and on, to
    the residual Add that broadcasts it away)."""
    model = block(c, hidden)
    rng = np.random.default_rng(seed)
    feeds = {
        "x": rng.standard_normal((*x_shape, c)).astype(np.float32),
        "res": rng.standard_normal((1, 1, c)).astype(np.float32),
    }
    after = cleaned(model)
    ops = [matmul, "Relu", "LayerNormalization", matmul, "Add"]
    assert [n.op_type for n in after.graph.node] == ops
    np.testing.assert_array_equal(run(after, feeds), run(model, feeds))


def test_a_reshape_that_changes_the_rows_of_an_8_bit_matmul_stays():
    """[2, 6] → [1, 12]: a matmul over 12 inputs is not one over each 6."""
    codes, scales = quantize.quantize_block_rows(np.ones((12, 4), np.float32))
    constants = {"flat": np.array([1, 12], np.int64), "codes": codes, "scales": scales.ravel()}
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["f"]),
        helper.make_node(
            "MatMulNBits",
            ["f", "codes", "scales"],
            ["y"],
            domain=quantize.CONTRIB_DOMAIN,
            K=12,
            N=4,
            bits=quantize.BITS,
            block_size=quantize.BLOCK,
        ),
    ]
    model = graph(nodes, [("x", [2, 6])], ("y", [1, 4]), constants, [(quantize.CONTRIB_DOMAIN, 1)])
    after = cleaned(model)
    assert [n.op_type for n in after.graph.node] == ["Reshape", "MatMulNBits"]


def test_a_reshape_that_changes_what_layer_norm_normalizes_stays():
    """[2, 6] → [1, 12]: layer norm over 12 values is not layer norm over each 6."""
    constants = {
        "flat": np.array([1, 12], np.int64),
        "scale": np.ones(12, np.float32),
        "bias": np.zeros(12, np.float32),
    }
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["f"]),
        helper.make_node("LayerNormalization", ["f", "scale", "bias"], ["n"], axis=-1),
        helper.make_node("Relu", ["n"], ["y"]),
    ]
    model = graph(nodes, [("x", [2, 6])], ("y", [1, 12]), constants)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)}
    after = cleaned(model)
    assert [n.op_type for n in after.graph.node] == ["Reshape", "LayerNormalization", "Relu"]
    np.testing.assert_array_equal(run(after, feeds), run(model, feeds))


@pytest.mark.parametrize(
    ("other", "out"),
    [
        ([1, 1, 3], [1, 3, 3]),  # a 3 × 3 sum; without the Reshape 1 × 3
        ([3, 3], [3, 3]),  # the same shape either way, but x's values go down, not across
    ],
)
def test_a_reshape_that_changes_how_an_add_broadcasts_stays(other, out):
    """[1, 3] → [3, 1]: a row becomes a column, which an Add broadcasts the other way."""
    nodes = [
        helper.make_node("Reshape", ["x", "column"], ["c"]),
        helper.make_node("Add", ["res", "c"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    constants = {"column": np.array([3, 1], np.int64)}
    model = graph(nodes, [("x", [1, 3]), ("res", other)], ("y", out), constants)
    rng = np.random.default_rng(1)
    feeds = {
        "x": rng.standard_normal((1, 3)).astype(np.float32),
        "res": rng.standard_normal(other).astype(np.float32),
    }
    after = cleaned(model)
    assert [n.op_type for n in after.graph.node] == ["Reshape", "Add", "Relu"]
    np.testing.assert_array_equal(run(after, feeds), run(model, feeds))


def test_whole_slices_go_and_others_stay():
    """A causal window whose taps are all its frames (without and with steps of 1) goes; one
    that reverses the frames (the same shape) and one that takes every other frame stay."""
    i64 = np.int64
    constants = {
        "zero": np.array([0], i64),
        "end": np.array([3], i64),
        "axis": np.array([1], i64),
        "one": np.array([1], i64),
        "last": np.array([-1], i64),
        "before_first": np.array([-4], i64),
        "back": np.array([-1], i64),
        "two": np.array([2], i64),
    }
    nodes = [
        helper.make_node("Slice", ["x", "zero", "end", "axis"], ["whole"]),
        helper.make_node("Slice", ["whole", "zero", "end", "axis", "one"], ["whole2"]),
        helper.make_node("Slice", ["whole2", "last", "before_first", "axis", "back"], ["rev"]),
        helper.make_node("Slice", ["rev", "zero", "end", "axis", "two"], ["y"]),
    ]
    model = graph(nodes, [("x", [1, 3, 4])], ("y", [1, 2, 4]), constants)
    feeds = {"x": np.arange(12, dtype=np.float32).reshape(1, 3, 4)}
    after = cleaned(model)
    assert [n.input[4] for n in after.graph.node] == ["back", "two"]
    assert "one" not in {i.name for i in after.graph.initializer}
    np.testing.assert_array_equal(run(after, feeds), run(model, feeds))
