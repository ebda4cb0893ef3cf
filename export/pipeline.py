"""``rtsep export``: a training checkpoint → a checked model folder (step, sequence, model.json).

The folder is written to a temporary sibling and renamed into place only after every
check passes: Keras against both ONNX graphs, step hop by hop against sequence in uneven
chunks (all to ``TOLERANCE``), and the runtime's own contract checks (``rtsep.load_model``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rtsep import atomic, contract
from rtsep.errors import RtsepError

TOLERANCE = 1e-4
VERIFY_HOPS = 40
UNEVEN_CHUNKS = (3, 1, 7, 2, 11, 1, 5, 10)  # hops per sequence call; sums to VERIFY_HOPS


def _ort(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_chunks(session, audio: np.ndarray, chunks: list[int], state_specs) -> np.ndarray:
    """Feed ``audio [2, T]`` in chunks of ``chunks`` samples, states chained; ``[2, S, T]``."""
    states = {n: np.zeros(s, np.float32) for n, s in state_specs}
    outs, pos = [], 0
    names = [contract.SOURCES_OUTPUT] + [n + contract.STATE_OUT_SUFFIX for n, _ in state_specs]
    for n in chunks:
        res = session.run(names, {contract.AUDIO_INPUT: audio[:, pos : pos + n], **states})
        outs.append(res[0])
        states = {name: r for (name, _), r in zip(state_specs, res[1:], strict=True)}
        pos += n
    return np.concatenate(outs, axis=-1)


def verify(net, folder: Path) -> dict[str, float]:
    """Max abs differences of the parity checks; raises RtsepError above TOLERANCE."""
    rng = np.random.default_rng(7)
    t = VERIFY_HOPS * contract.HOP
    audio = (0.3 * rng.standard_normal((contract.CHANNELS, t))).astype(np.float32)
    audio *= np.linspace(0.2, 1.0, t, dtype=np.float32)  # not stationary
    keras_out = np.asarray(net.training_model()(audio, training=False))
    step = _ort(folder / contract.STEP_FILE)
    seq = _ort(folder / contract.SEQUENCE_FILE)
    specs = net.state_specs
    step_out = run_chunks(step, audio, [contract.HOP] * VERIFY_HOPS, specs)
    seq_one = run_chunks(seq, audio, [t], specs)
    seq_uneven = run_chunks(seq, audio, [n * contract.HOP for n in UNEVEN_CHUNKS], specs)
    diffs = {
        "keras_vs_step": float(np.abs(keras_out - step_out).max()),
        "keras_vs_sequence": float(np.abs(keras_out - seq_one).max()),
        "step_vs_sequence_uneven": float(np.abs(step_out - seq_uneven).max()),
        "mixture_consistency": float(np.abs(step_out.sum(axis=1) - audio).max()),
    }
    bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE}
    if bad:
        worst = ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
        raise RtsepError(
            f"export failed its parity checks ({worst} > {TOLERANCE}): nothing written"
        )
    return diffs


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
        "states": [{"name": n, "shape": list(s)} for n, s in net.state_specs],
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
) -> dict[str, Any]:
    """Export the checkpoint at ``source`` to the model folder ``out``; returns model.json.

    ``averaged``: the moving average of the weights where the checkpoint has one (``rtsep
    train --ema``), else the last weights."""
    import onnx
    from rich.progress import Progress

    from export import convert
    from training.train import load_trained

    out = Path(out)
    if out.exists() and not force:
        raise RtsepError(f"{out} already exists: pass --force to replace it")
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("export: loading checkpoint", total=5)
        net, step, meta = load_trained(source, averaged=averaged)
        meta = {**meta, "validation": _last_validation(Path(source)), "legs": _legs(Path(source))}
        bar.update(task, advance=1, description="export: step graph")
        step_graph = convert.to_onnx(net.step_model(), net.state_specs, contract.HOP)
        bar.update(task, advance=1, description="export: sequence graph")
        seq_graph = convert.to_onnx(net.sequence_model(), net.state_specs, None)
        bar.update(task, advance=1, description="export: parity checks")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_dir(out)
        try:
            onnx.save(step_graph, tmp / contract.STEP_FILE)
            onnx.save(seq_graph, tmp / contract.SEQUENCE_FILE)
            diffs = verify(net, tmp)
            counts = {
                "step": convert.node_counts(step_graph)["total"],
                "sequence": convert.node_counts(seq_graph)["total"],
            }
            info = metadata(net, step, meta, name or out.name, counts)
            info["parity"] = diffs
            (tmp / contract.META_FILE).write_text(json.dumps(info, indent=2) + "\n")
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
