"""Fixtures shared by tests/ and benchmarks/: a small model folder that follows the contract.

The toy model is built with onnx.helper, not trained: a stateful, partly nonlinear filter
whose sources sum exactly to the input. It has two window states (the last samples) of lengths
that are not multiples of the hop, so a mistake in state chaining or alignment shows up as a
mismatch, and in its step graph one delay-line state (``rtsep.delays``), ``echo``: the hop's
input and its tanh, handed back 3 and 5 hops later (the sequence graph keeps them as the
windows ``echo_a`` and ``echo_b``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rtsep import contract

TOY_DELAYS = {"delay_a": 100, "delay_b": 37}
TOY_ECHO_HOPS = (3, 5)
"""The delays of the step graph's ``echo`` entries: the input, and its tanh."""


def _toy_graph(time: int | None):
    """The toy network for a fixed time length (step) or a dynamic one (sequence)."""
    import onnx
    from onnx import TensorProto, helper

    c = contract.CHANNELS
    t = time if time is not None else "time"
    nodes, inits = [], []

    def const(name: str, values: list, dtype=TensorProto.FLOAT) -> str:
        inits.append(helper.make_tensor(name, dtype, [len(values)], values))
        return name

    inputs = [helper.make_tensor_value_info(contract.AUDIO_INPUT, TensorProto.FLOAT, [c, t])]
    outputs = [
        helper.make_tensor_value_info(
            contract.SOURCES_OUTPUT, TensorProto.FLOAT, [c, len(contract.SOURCES), t]
        )
    ]
    const("axis1", [1], TensorProto.INT64)
    const("zero", [0], TensorProto.INT64)
    nodes.append(helper.make_node("Shape", [contract.AUDIO_INPUT], ["shape"]))
    nodes.append(helper.make_node("Slice", ["shape", "axis1", "axis1_end"], ["t"]))
    const("axis1_end", [2], TensorProto.INT64)
    delayed = {}
    for name, d in TOY_DELAYS.items():
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [c, d]))
        outputs.append(
            helper.make_tensor_value_info(
                name + contract.STATE_OUT_SUFFIX, TensorProto.FLOAT, [c, d]
            )
        )
        nodes.append(
            helper.make_node("Concat", [name, contract.AUDIO_INPUT], [f"{name}_cat"], axis=1)
        )
        nodes.append(
            helper.make_node("Slice", [f"{name}_cat", "zero", "t", "axis1"], [f"{name}_x"])
        )
        const(f"{name}_neg", [-d], TensorProto.INT64)
        const(f"{name}_big", [2**31 - 1], TensorProto.INT64)
        nodes.append(
            helper.make_node(
                "Slice",
                [f"{name}_cat", f"{name}_neg", f"{name}_big", "axis1"],
                [name + contract.STATE_OUT_SUFFIX],
            )
        )
        delayed[name] = f"{name}_x"

    x = contract.AUDIO_INPUT
    nodes.append(helper.make_node("Tanh", [x], ["x_tanh"]))
    if time is not None:  # the step graph: echo is a delay line [c, 2, hop]
        shape = [c, len(TOY_ECHO_HOPS), time]
        inputs.append(helper.make_tensor_value_info("echo", TensorProto.FLOAT, shape))
        outputs.append(
            helper.make_tensor_value_info(
                "echo" + contract.STATE_OUT_SUFFIX, TensorProto.FLOAT, shape
            )
        )
        const("i0", [0], TensorProto.INT64)
        const("i1", [1], TensorProto.INT64)
        nodes += [
            helper.make_node("Gather", ["echo", "i0"], ["echo_a_g"], axis=1),
            helper.make_node("Gather", ["echo", "i1"], ["echo_b_g"], axis=1),
            helper.make_node("Squeeze", ["echo_a_g", "axis1"], ["echo_a_x"]),
            helper.make_node("Squeeze", ["echo_b_g", "axis1"], ["echo_b_x"]),
            helper.make_node("Unsqueeze", [x, "axis1"], ["x_u"]),
            helper.make_node("Unsqueeze", ["x_tanh", "axis1"], ["x_tanh_u"]),
            helper.make_node(
                "Concat", ["x_u", "x_tanh_u"], ["echo" + contract.STATE_OUT_SUFFIX], axis=1
            ),
        ]
    else:  # the sequence graph: the same as windows of 3 and 5 hops
        for name, signal, hops in (("echo_a", x, 3), ("echo_b", "x_tanh", 5)):
            d = hops * contract.HOP
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [c, d]))
            outputs.append(
                helper.make_tensor_value_info(
                    name + contract.STATE_OUT_SUFFIX, TensorProto.FLOAT, [c, d]
                )
            )
            const(f"{name}_neg", [-d], TensorProto.INT64)
            const(f"{name}_big", [2**31 - 1], TensorProto.INT64)
            nodes += [
                helper.make_node("Concat", [name, signal], [f"{name}_cat"], axis=1),
                helper.make_node("Slice", [f"{name}_cat", "zero", "t", "axis1"], [f"{name}_x"]),
                helper.make_node(
                    "Slice",
                    [f"{name}_cat", f"{name}_neg", f"{name}_big", "axis1"],
                    [name + contract.STATE_OUT_SUFFIX],
                ),
            ]
    const("g_ea", [0.2])
    const("g_eb", [0.1])
    const("g_drums", [1.5])
    const("g_da", [0.5])
    const("g_bass", [0.3])
    const("g_db", [-0.4])
    const("g_other", [0.25])
    nodes += [
        helper.make_node("Mul", [x, "g_drums"], ["drums_lin"]),
        helper.make_node("Tanh", ["drums_lin"], ["drums_tanh"]),
        helper.make_node("Mul", [delayed["delay_a"], "g_da"], ["drums_del"]),
        helper.make_node("Add", ["drums_tanh", "drums_del"], ["drums_dry"]),
        helper.make_node("Mul", ["echo_a_x", "g_ea"], ["drums_echo"]),
        helper.make_node("Add", ["drums_dry", "drums_echo"], ["drums"]),
        helper.make_node("Mul", [x, "g_bass"], ["bass_lin"]),
        helper.make_node("Mul", [delayed["delay_b"], "g_db"], ["bass_del"]),
        helper.make_node("Add", ["bass_lin", "bass_del"], ["bass_dry"]),
        helper.make_node("Mul", ["echo_b_x", "g_eb"], ["bass_echo"]),
        helper.make_node("Add", ["bass_dry", "bass_echo"], ["bass"]),
        helper.make_node("Mul", [delayed["delay_a"], "g_other"], ["other_a"]),
        helper.make_node("Mul", ["other_a", delayed["delay_b"]], ["other"]),
        helper.make_node("Sub", [x, "drums"], ["r1"]),
        helper.make_node("Sub", ["r1", "bass"], ["r2"]),
        helper.make_node("Sub", ["r2", "other"], ["vocals"]),
    ]
    for s in contract.SOURCES:
        nodes.append(helper.make_node("Unsqueeze", [s, "axis1"], [f"{s}_u"]))
    nodes.append(
        helper.make_node(
            "Concat", [f"{s}_u" for s in contract.SOURCES], [contract.SOURCES_OUTPUT], axis=1
        )
    )
    graph = helper.make_graph(nodes, "toy_step" if time else "toy_sequence", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def toy_meta() -> dict:
    """model.json of the toy model."""
    windows = [{"name": n, "shape": [contract.CHANNELS, d]} for n, d in TOY_DELAYS.items()]
    return {
        "format_version": contract.FORMAT_VERSION,
        "name": "toy",
        "preset": "toy",
        "sources": list(contract.SOURCES),
        "sample_rate": contract.SAMPLE_RATE,
        "hop": contract.HOP,
        "channels": contract.CHANNELS,
        "states": [
            *windows,
            {
                "name": "echo",
                "shape": [contract.CHANNELS, len(TOY_ECHO_HOPS), contract.HOP],
                "delays": list(TOY_ECHO_HOPS),
            },
        ],
        "sequence_states": [
            *windows,
            *(
                {"name": f"echo_{k}", "shape": [contract.CHANNELS, hops * contract.HOP]}
                for k, hops in zip("ab", TOY_ECHO_HOPS, strict=True)
            ),
        ],
        "trained_on": "nothing: a fixed filter built with onnx.helper for tests",
    }


def write_toy_model(folder: Path) -> Path:
    """Write the toy model folder (step.onnx, sequence.onnx, model.json) and return it."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(_toy_graph(contract.HOP), folder / contract.STEP_FILE)
    onnx.save(_toy_graph(None), folder / contract.SEQUENCE_FILE)
    (folder / contract.META_FILE).write_text(json.dumps(toy_meta(), indent=2))
    return folder


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory) -> Path:
    """A contract-following model folder (session-wide; do not modify it, copy it)."""
    return write_toy_model(tmp_path_factory.mktemp("models") / "toy")


@pytest.fixture(scope="session")
def step_graph_hop_by_hop():
    """The step graph run plainly, one hop per ``session.run`` with the states passed by hand:
    the reference for every faster way of running it. ``f(model, x)`` gives (frames,
    sources, channels)."""
    return _step_graph_hop_by_hop


def _step_graph_hop_by_hop(model, x: np.ndarray) -> np.ndarray:
    session = model.session("step")
    states = model.zero_states()
    past: dict[str, list[np.ndarray]] = {n: [] for n in model.delays}  # every hop's output
    names = [o.name for o in session.get_outputs()]
    outs = []
    for start in range(0, len(x), model.hop):
        feed = {
            contract.AUDIO_INPUT: np.ascontiguousarray(x[start : start + model.hop].T),
            **states,
        }
        result = dict(zip(names, session.run(None, feed)))
        states = {n: result[n + contract.STATE_OUT_SUFFIX] for n in states}
        for name, delays in model.delays.items():  # entry j from delays[j] hops ago
            past[name].append(states[name])
            states[name] = np.zeros_like(states[name])
            for j, d in enumerate(delays):
                if len(past[name]) >= d:
                    states[name][:, j] = past[name][-d][:, j]
        outs.append(result[contract.SOURCES_OUTPUT].transpose(2, 1, 0))
    return np.concatenate(outs)
