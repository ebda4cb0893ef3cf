"""``rtsep export``: a training checkpoint → a checked model folder (step, sequence, model.json).

The folder is written to a temporary sibling and renamed into place only after every
check passes: Keras against both fp32 ONNX graphs, step hop by hop against sequence in uneven
chunks (all to ``TOLERANCE``); then, with the step graph's weights in 8 bits
(``export.quantize``, the default), that graph against the fp32 ones (at least
``INT8_MIN_SNR_DB``); and the runtime's own contract checks (``rtsep.load_model``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from export import quantize
from rtsep import atomic, contract
from rtsep.delays import DelayLine
from rtsep.errors import RtsepError

TOLERANCE = 1e-4
WEIGHTS = ("int8", "fp32")
INT8_MIN_SNR_DB = 30.0
"""The 8-bit step graph's output against the fp32 graphs' (the default model: 39 dB)."""
VERIFY_HOPS = 40
UNEVEN_CHUNKS = (3, 1, 7, 2, 11, 1, 5, 10)  # hops per sequence call; sums to VERIFY_HOPS


def _ort(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_chunks(
    session, audio: np.ndarray, chunks: list[int], state_specs, delays: dict | None = None
) -> np.ndarray:
    """Feed ``audio [2, T]`` in chunks of ``chunks`` samples, states chained; ``[2, S, T]``.

    ``delays``: the step graph's delay-line states (``rtsep.delays``), fed back through the
    runtime's own ``DelayLine``; every other state comes back the next call."""
    delays = delays or {}
    lines = {n: DelayLine(s, delays[n]) for n, s in state_specs if n in delays}
    states = {n: np.zeros(s, np.float32) for n, s in state_specs}
    outs, pos = [], 0
    names = [contract.SOURCES_OUTPUT] + [n + contract.STATE_OUT_SUFFIX for n, _ in state_specs]
    for n in chunks:
        res = session.run(names, {contract.AUDIO_INPUT: audio[:, pos : pos + n], **states})
        outs.append(res[0])
        for (name, _), value in zip(state_specs, res[1:], strict=True):
            states[name] = lines[name].feed(value) if name in lines else value
        pos += n
    return np.concatenate(outs, axis=-1)


def _verify_audio() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = VERIFY_HOPS * contract.HOP
    audio = (0.3 * rng.standard_normal((contract.CHANNELS, t))).astype(np.float32)
    return audio * np.linspace(0.2, 1.0, t, dtype=np.float32)  # not stationary


def _step_and_uneven(folder: Path, audio: np.ndarray, net) -> tuple[np.ndarray, np.ndarray]:
    """The folder's step graph hop by hop, and its sequence graph in uneven chunks."""
    hops = [contract.HOP] * VERIFY_HOPS
    step = run_chunks(_ort(folder / contract.STEP_FILE), audio, hops, net.step_specs, net.delays)
    seq = _ort(folder / contract.SEQUENCE_FILE)
    chunks = [n * contract.HOP for n in UNEVEN_CHUNKS]
    return step, run_chunks(seq, audio, chunks, net.state_specs)


def _refuse_above(diffs: dict[str, float], tolerance: float) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        worst = ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
        raise RtsepError(
            f"export failed its parity checks ({worst} > {tolerance}): nothing written"
        )


def verify(net, folder: Path) -> dict[str, float]:
    """Max abs differences of the fp32 graphs' parity checks; raises RtsepError above
    TOLERANCE."""
    audio = _verify_audio()
    keras_out = np.asarray(net.training_model()(audio, training=False))
    step_out, seq_uneven = _step_and_uneven(folder, audio, net)
    seq_one = run_chunks(
        _ort(folder / contract.SEQUENCE_FILE), audio, [audio.shape[1]], net.state_specs
    )
    diffs = {
        "keras_vs_step": float(np.abs(keras_out - step_out).max()),
        "keras_vs_sequence": float(np.abs(keras_out - seq_one).max()),
        "step_vs_sequence_uneven": float(np.abs(step_out - seq_uneven).max()),
        "mixture_consistency": float(np.abs(step_out.sum(axis=1) - audio).max()),
    }
    _refuse_above(diffs, TOLERANCE)
    return diffs


def verify_int8(net, fp32: Path, int8_step: Path) -> dict[str, float]:
    """The 8-bit step graph in ``int8_step`` against the fp32 graphs in ``fp32``: its SNR in
    dB against each and its mixture consistency; raises RtsepError where one fails."""
    audio = _verify_audio()
    step, sequence = _step_and_uneven(fp32, audio, net)
    hops = [contract.HOP] * VERIFY_HOPS
    session = _ort(int8_step)
    int8 = run_chunks(session, audio, hops, net.step_specs, net.delays)
    consistency = float(np.abs(int8.sum(axis=1) - audio).max())
    _refuse_above({"int8_mixture_consistency": consistency}, TOLERANCE)
    snr = {
        "snr_db_vs_fp32_step": quantize.snr_db(step, int8),
        "snr_db_vs_sequence": quantize.snr_db(sequence, int8),
    }
    worst = min(snr.values())
    if not worst >= INT8_MIN_SNR_DB:
        raise RtsepError(
            f"the 8-bit weights move the output too far ({worst:.1f} dB SNR against fp32, "
            f"under {INT8_MIN_SNR_DB:.0f}): export with --weights fp32; nothing written"
        )
    return {**snr, "mixture_consistency": consistency}


def _run_folder(source: Path) -> Path:
    """The training output folder of a checkpoint path or folder."""
    return source if source.is_dir() else source.parent


def _last_validation(source: Path) -> dict[str, Any] | None:
    """The training run's last validation row (median SDR per source), if it logged one."""
    from training.train import HISTORY

    history = _run_folder(source) / HISTORY
    lines = history.read_text().splitlines() if history.is_file() else []
    if not lines:
        return None
    row = json.loads(lines[-1])
    scores = {
        "validation_sdr_db": row["val_sdr"],
        "step": row["step"],
        "note": "median SDR over fixed 2-channel excerpts of the held-out split (not museval)",
    }
    if "val_sdr_full" in row:
        scores["validation_sdr_all_playing_db"] = row["val_sdr_full"]
    return scores


def _legs(source: Path) -> list[dict[str, Any]]:
    """When, how long and how each training leg ran, from the run's train_log.jsonl: every
    field a leg records (so a new training option reaches model.json without a change here)
    but the machine's description and the leg's last validation."""
    from training.train import read_legs

    rows = read_legs(_run_folder(source))
    return [{k: v for k, v in row.items() if k not in ("machine", "last")} for row in rows]


def _state_entry(name: str, shape, delays: list[int] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "shape": list(shape)}
    if delays:
        entry["delays"] = list(delays)
    return entry


def metadata(net, step: int, meta: dict[str, Any], name: str, counts: dict) -> dict[str, Any]:
    """model.json for a trained network."""
    recipe = meta.get("recipe", {})
    scores = meta.get("scores") or meta.get("validation")
    return {
        "format_version": contract.FORMAT_VERSION,
        "name": name,
        "preset": net.preset,
        "sources": list(contract.SOURCES),
        "sample_rate": contract.SAMPLE_RATE,
        "hop": contract.HOP,
        "channels": contract.CHANNELS,
        "states": [_state_entry(n, s, net.delays.get(n)) for n, s in net.step_specs],
        "sequence_states": [{"name": n, "shape": list(s)} for n, s in net.state_specs],
        "trained_on": recipe.get("data"),
        "training": {
            "steps": step,
            "loss": recipe.get("loss"),
            "source_weights": recipe.get("source_weights") or {},
            "data": recipe.get("data"),
            "batch_size": recipe.get("batch_size"),
            "excerpt_seconds": recipe.get("excerpt_seconds"),
            "lr": recipe.get("lr"),
            "weights": meta.get("weights", "last"),
            "legs": meta.get("legs", []),
        },
        "config": net.config,
        "scores": scores,
        "parameters": net.parameters(),
        "macs_per_hop": net.macs_per_hop(),
        "nodes": counts,
    }


def export(
    source: str | Path,
    out: str | Path,
    force: bool = False,
    progress: bool = True,
    name: str | None = None,
    averaged: bool = True,
    weights: str = "int8",
) -> dict[str, Any]:
    """Export the checkpoint at ``source`` to the model folder ``out``; returns model.json.

    ``averaged``: the moving average of the weights where the checkpoint has one (``rtsep
    train --ema``), else the last weights. ``weights``: ``"int8"`` (the matmuls in 8 bits,
    ``export.quantize``) or ``"fp32"``."""
    if weights not in WEIGHTS:
        raise RtsepError(f"weights {weights!r}: use one of {', '.join(WEIGHTS)}")
    import onnx
    from rich.progress import Progress

    from export import convert
    from training.train import load_trained

    out = Path(out)
    if out.exists() and not force:
        raise RtsepError(f"{out} already exists: pass --force to replace it")
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("export: loading checkpoint", total=6)
        net, step, meta = load_trained(source, averaged=averaged)
        meta = {**meta, "validation": _last_validation(Path(source)), "legs": _legs(Path(source))}
        bar.update(task, advance=1, description="export: step graph")
        step_graph = convert.to_onnx(net.step_model(), net.step_specs, contract.HOP)
        bar.update(task, advance=1, description="export: sequence graph")
        seq_graph = convert.to_onnx(net.sequence_model(), net.state_specs, None)
        bar.update(task, advance=1, description="export: parity checks")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_dir(out)
        try:
            onnx.save(step_graph, tmp / contract.STEP_FILE)
            onnx.save(seq_graph, tmp / contract.SEQUENCE_FILE)
            diffs = verify(net, tmp)
            bar.update(task, advance=1, description="export: step weights in 8 bits")
            weights_info: dict[str, Any] = {"step": "fp32", "sequence": "fp32"}
            if weights == "int8":
                step_graph = quantize.quantize_weights(step_graph)
                int8_step = tmp / f"int8-{contract.STEP_FILE}"
                onnx.save(step_graph, int8_step)
                weights_info = {**quantize.describe(), **verify_int8(net, tmp, int8_step)}
                int8_step.replace(tmp / contract.STEP_FILE)
            counts = {
                "step": convert.node_counts(step_graph)["total"],
                "sequence": convert.node_counts(seq_graph)["total"],
            }
            info = metadata(net, step, meta, name or out.name, counts)
            info["parity"] = diffs
            info["weights"] = weights_info
            (tmp / contract.META_FILE).write_text(json.dumps(info, indent=1) + "\n")
            bar.update(task, advance=1, description="export: runtime checks")
            from rtsep.model import load_model

            load_model(tmp, provider="cpu")
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        bar.update(task, advance=1)
    return info
