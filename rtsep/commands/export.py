"""``rtsep export``: a training output folder → a checked model folder (needs rtsep[train])."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT_OR_OUTDIR",
        help="a 'rtsep train --out' folder or its checkpoint.npz",
    )
    parser.add_argument("--out", metavar="MODEL_DIR", required=True, help="model folder to write")
    parser.add_argument("--name", default=None, help="model name in model.json (default: folder)")
    parser.add_argument("--force", action="store_true", help="replace an existing MODEL_DIR")
    parser.add_argument(
        "--last-weights",
        action="store_true",
        help="export the last weights, not their moving average (rtsep train --ema)",
    )
    parser.add_argument(
        "--weights",
        choices=("int8", "fp32"),
        default="int8",
        help="int8 (default): the matmuls' weights in 8 bits, about twice as fast a hop on "
        "the CPU and a quarter of the size; fp32: as trained",
    )


def run(args: argparse.Namespace) -> int:
    from rtsep.commands.train import require_training

    require_training()
    from export.pipeline import export

    info = export(
        args.checkpoint,
        args.out,
        force=args.force,
        name=args.name,
        averaged=not args.last_weights,
        weights=args.weights,
    )
    summary = {
        k: info[k] for k in ("preset", "parameters", "macs_per_hop", "nodes", "parity", "weights")
    }
    print(f"wrote {args.out}: {json.dumps(summary)}")
    return 0
