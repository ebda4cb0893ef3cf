"""``rtsep eval``: separate every track of a MUSDB18-HQ-layout folder and score it.

Prints the median SDR (BSSEval v4, as museval) and SI-SDR per source and, with ``--json``,
writes every track's scores, the medians, the model's name and the command.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rtsep import contract
from rtsep.model import PROVIDERS, read_meta
from rtsep.offline import GRAPHS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rtsep import evaluate

    evaluate.add_dataset_arguments(parser)
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the bundled model)")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto", help="onnxruntime device")
    parser.add_argument(
        "--graph",
        choices=GRAPHS,
        default="sequence",
        help="sequence (default): offline, as rtsep separate; step: hop by hop, what rtsep "
        "live plays (about 10x slower)",
    )
    parser.add_argument(
        "--save-scores",
        action="store_true",
        help="record the medians in the model's model.json (evaluations.<ROOT name>/<split>)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    import rtsep
    from rtsep import evaluate

    evaluate.check_output(args.json, args.force)
    folders = evaluate.find_tracks(args.root, args.split, args.tracks)
    model = rtsep.load_model(args.model, args.provider)
    scores = {}
    with evaluate.progress() as bar:
        task = bar.add_task(f"separating {args.split}", total=len(folders))
        for folder in folders:
            track = evaluate.read_track(folder, model.sources)
            estimates = rtsep.separate(
                track.mixture, track.sample_rate, model=model, graph=args.graph
            )
            scores[track.name] = evaluate.score_track(track.stems, estimates, track.sample_rate)
            bar.advance(task)
    result = evaluate.report(
        model.name,
        scores,
        model_path=str(model.path),
        provider=model.provider,
        split=args.split,
        root=str(args.root),
        command=_command(args),
    )
    Console().print(
        evaluate.table(
            {model.name: result["median"]},
            title=f"{args.split}: median (and mean SDR) over {len(scores)} tracks (dB)",
            means=True,
        )
    )
    if args.json:
        evaluate.write_json(args.json, result)
    if args.save_scores:  # read again now: another eval of this model may have saved since
        meta = read_meta(model.path)
        label = f"{Path(args.root).resolve().name}/{args.split}"
        if args.graph != "sequence":
            label += f"/{args.graph}"
        evaluations = dict(meta.get("evaluations") or {})
        evaluations[label] = {"median": result["median"], "command": result["command"]}
        meta["evaluations"] = evaluations
        evaluate.write_json(model.path / contract.META_FILE, meta)
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run."""
    words = ["rtsep", "eval", str(args.root), "--split", args.split, "--provider", args.provider]
    if args.model:
        words += ["--model", str(args.model)]
    if args.tracks is not None:
        words += ["--tracks", str(args.tracks)]
    if args.graph != "sequence":
        words += ["--graph", args.graph]
    if args.json:
        words += ["--json", str(args.json)]
    return shlex.join(words)
