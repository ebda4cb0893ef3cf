"""Weights in 8 bits: each matmul with a constant weight → onnxruntime's ``MatMulNBits``.

Why: a hop multiplies every weight once, so the step graph's time on the CPU is mostly
reading its 3.5 MB of fp32 weights; more than a core's L2 on some machines (an Intel Xeon
with 2 MB a core took twice the AMD EPYC's time a hop). In 8 bits they are 0.9 MB, and with
``accuracy_level`` 4 onnxruntime multiplies in int8 (VNNI where the CPU has it), the input
rows quantized per block of ``BLOCK`` on the fly.

Each output column keeps one scale per block of ``BLOCK`` weights (symmetric, zero point
128), so a weight's error is at most half a step of its own block's range. Against the fp32
graph the output moves by about -40 dB (``snr_db``), which the export records and checks.
Only the step graph takes this: over many frames (the sequence graph, offline) onnxruntime's
fp32 matmuls ran 1.4x faster than its 8-bit ones, so offline keeps the weights as trained.

``keep`` names layers left in fp32: the synthesis (``decoder``), whose error reaches the
output unfiltered, costs little (2 % of the weights) and gave most of the error in 8 bits.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.convert import drop_reshape_views, drop_unused_initializers

BITS = 8
BLOCK = 32
KEEP = ("decoder",)
ACCURACY_LEVEL = 4  # int8 compute: the input quantized per block; 0/1 dequantize, 5x slower
CONTRIB_DOMAIN = "com.microsoft"


def describe() -> dict[str, object]:
    """How ``quantize_weights`` codes a model, for its model.json."""
    return {
        "step": f"int{BITS}",
        "sequence": "fp32",
        "block": BLOCK,
        "fp32_layers": list(KEEP),
        "op": f"{CONTRIB_DOMAIN}.MatMulNBits, accuracy_level {ACCURACY_LEVEL} (int8 compute)",
    }


def quantize_block_rows(w: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """``w [K, N]`` → (codes uint8 ``[N, ceil(K/block), block]``, scales ``[N, blocks]``).

    K is zero-padded to whole blocks, as ``MatMulNBits`` lays them out."""
    k, n = w.shape
    blocks = -(-k // block)
    padded = np.zeros((blocks * block, n), np.float32)
    padded[:k] = w
    rows = padded.T.reshape(n, blocks, block)
    top = 2 ** (BITS - 1) - 1
    scales = np.abs(rows).max(axis=-1) / top
    scales[scales == 0] = 1.0  # an all-zero block: any scale codes it exactly
    codes = np.clip(np.round(rows / scales[..., None]), -top - 1, top) + 2 ** (BITS - 1)
    return codes.astype(np.uint8), scales.astype(np.float32)


def dequantize(codes: np.ndarray, scales: np.ndarray, k: int) -> np.ndarray:
    """The fp32 ``[K, N]`` weights that ``codes`` and ``scales`` stand for."""
    rows = (codes.astype(np.float32) - 2 ** (BITS - 1)) * scales[..., None]
    return rows.reshape(len(codes), -1)[:, :k].T


def quantize_weights(model: onnx.ModelProto, keep: tuple[str, ...] = KEEP) -> onnx.ModelProto:
    """A copy of ``model`` with each MatMul/Gemm on a constant 2-D weight in 8 bits, except in
    the layers whose node names contain one of ``keep``, and without the views that only
    flattened a Gemm's input; returns it checked."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, coded = [], set()
    for node in g.node:
        weight = _constant_weight(node, inits)
        if weight is None or any(name in node.name for name in keep):
            nodes.append(node)
            continue
        k, n = weight.shape
        base = node.input[1]
        if base not in coded:  # a weight two nodes share is coded once
            codes, scales = quantize_block_rows(weight)
            g.initializer.extend(
                [
                    numpy_helper.from_array(codes, f"{base}_int8"),
                    numpy_helper.from_array(scales.reshape(-1), f"{base}_scales"),
                ]
            )
            coded.add(base)
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        inputs = [node.input[0], f"{base}_int8", f"{base}_scales"]
        if bias:
            inputs += ["", "", bias]  # no zero points (128), no group index, then the bias
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                inputs,
                list(node.output),
                name=f"{node.name}_int8",
                domain=CONTRIB_DOMAIN,
                K=k,
                N=n,
                bits=BITS,
                block_size=BLOCK,
                accuracy_level=ACCURACY_LEVEL,
            )
        )
    del g.node[:]
    g.node.extend(nodes)
    drop_unused_initializers(g)  # the fp32 weights now coded
    if not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    drop_reshape_views(model)  # a Gemm's 2-D views: MatMulNBits takes any leading axes
    onnx.checker.check_model(model)
    return model


def _constant_weight(node: onnx.NodeProto, inits: dict) -> np.ndarray | None:
    """The ``[K, N]`` weight of a plain ``x @ w (+ b)`` node on a constant ``w``, else None."""
    if node.op_type not in ("MatMul", "Gemm") or node.input[1] not in inits:
        return None
    w = numpy_helper.to_array(inits[node.input[1]])
    if w.ndim != 2 or w.dtype != np.float32:
        return None
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            return None
        if attrs.get("transB", 0):
            w = w.T
    return w


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """``other``'s signal-to-error ratio against ``reference``, in dB."""
    error = float(np.sum((other - reference) ** 2))
    return float("inf") if error == 0 else 10 * float(np.log10(np.sum(reference**2) / error))
