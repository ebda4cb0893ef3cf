"""Design comparison table: ``python -m export.compare RUN_DIR... [--hops N]``.

For each training output folder: preset and config changes, loss, steps, the last
validation SDR per source (from ``history.jsonl``), parameters, multiply-adds per hop, the
step graph's node count and its p50/p99 per call on one onnxruntime thread (C=2). Each run
is exported to a temporary folder with the full parity checks.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rtsep import contract


def row(run: Path, hops: int) -> dict:
    from export import convert, pipeline
    from training import models
    from training.train import HISTORY

    with tempfile.TemporaryDirectory() as tmp:
        info = pipeline.export(run, Path(tmp) / "model", progress=False)
        specs = [(s["name"], tuple(s["shape"])) for s in info["states"]]
        p50, p99 = convert.step_timing(str(Path(tmp) / "model" / contract.STEP_FILE), specs, hops)
    last = json.loads((run / HISTORY).read_text().splitlines()[-1])
    base = models.PRESETS[info["preset"]]
    changes = {k: v for k, v in info["config"].items() if base.get(k) != v}
    return {
        "run": run.name,
        "preset": info["preset"],
        "changes": changes,
        "loss": info["training"]["loss"],
        "steps": info["training"]["steps"],
        "val_sdr": last["val_sdr"],
        "parameters": info["parameters"],
        "macs_per_hop": info["macs_per_hop"],
        "step_nodes": info["nodes"]["step"],
        "p50_us": round(p50, 1),
        "p99_us": round(p99, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--hops", type=int, default=3000, help="timed step calls per model")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = [row(r, args.hops) for r in args.runs]
    names = contract.SOURCES
    print(
        "| run | preset | changes | loss | steps | "
        + " | ".join(names)
        + " | params | MACs/hop | step nodes | p50 µs | p99 µs |"
    )
    print("|" + "---|" * (10 + len(names)))
    for r in rows:
        sdr = " | ".join(f"{r['val_sdr'][s]:.2f}" for s in names)
        print(
            f"| {r['run']} | {r['preset']} | {json.dumps(r['changes'])} | {r['loss']} | "
            f"{r['steps']} | {sdr} | {r['parameters']:,} | {r['macs_per_hop']:,} | "
            f"{r['step_nodes']} | {r['p50_us']} | {r['p99_us']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
