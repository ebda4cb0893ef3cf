"""``rtsep train``: train a preset on a MUSDB18-HQ-layout folder (needs ``rtsep[train]``).

Checkpoints, resume, TensorBoard logs, loss curves and a log of every leg go to ``--out``;
see ``training/train.py``. TensorFlow is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from rtsep.errors import RtsepError

PRESETS = ("rt", "rt-stereo", "seed", "tiny")


def require_training() -> None:
    """One clear line when the training extra is missing."""
    for module in ("tensorflow", "tf2onnx", "onnx"):
        if importlib.util.find_spec(module) is None:
            raise RtsepError(f"this command needs {module}: pip install 'rtsep[train]'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", default="rt-stereo", choices=PRESETS, help="network (default rt-stereo)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        required=True,
        help="MUSDB18-HQ-layout folder: DIR/train/<track>/{mixture,drums,...}.wav",
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=10000, help="total steps (default 10000)")
    parser.add_argument("--batch-size", type=int, default=16, help="excerpts per step (default 16)")
    parser.add_argument(
        "--excerpt-seconds", type=float, default=3.0, help="excerpt length in seconds (default 3)"
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument(
        "--loss",
        choices=("l1", "sdr", "sdr-frames"),
        default=None,
        help="loss (default: as in the run --init-from/--resume continues, else sdr for "
        "rt/tiny, l1 for seed); sdr-frames: SDR averaged over 1 s frames, as museval scores",
    )
    parser.add_argument(
        "--source-weight",
        action="append",
        default=None,
        metavar="SOURCE=W",
        help="weigh one source's loss W times the others' (scaled to mean 1), e.g. "
        "--source-weight drums=2; default: as in the run --init-from/--resume continues, "
        "else equal",
    )
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--force", action="store_true", help="start over in an --out that has one")
    parser.add_argument(
        "--init-from",
        metavar="DIR",
        default=None,
        help="start a new run in --out from another run's checkpoint, step and logs; with "
        "--set window_hops=N (larger) or more TCN blocks (repeats=N, dilations=[...] appended) "
        "the network grows, starting as the old one",
    )
    parser.add_argument(
        "--val-every",
        type=int,
        default=200,
        help="validate and checkpoint every N steps (default 200)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop this leg after so many minutes (checkpoint kept)",
    )
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    parser.add_argument("--inter-threads", type=int, default=1, help="TensorFlow inter-op threads")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a network config entry, e.g. --set bottleneck=128",
    )
    parser.add_argument(
        "--dense",
        type=float,
        default=0.5,
        metavar="P",
        help="share of excerpts drawn where every source sounds throughout, the frames museval "
        "scores (default 0.5: it beat 0 on all eight medians in an equal-step leg)",
    )
    parser.add_argument(
        "--drum-pitch",
        type=float,
        default=0.0,
        metavar="SEMITONES",
        help="retune the drums of remixed excerpts (half of them) by a random shift of up to "
        "this many semitones, pitch and tempo together, for kits tuned unlike the training "
        "ones (default 0: none)",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=0.999,
        metavar="DECAY",
        help="keep a moving average of the weights with this decay per step, validate and "
        "export it (default 0.999: about the last 1,000 steps; 0: the last weights)",
    )
    parser.add_argument("--no-xla", action="store_true", help="do not compile steps with XLA")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def parse_overrides(items: list[str]) -> dict:
    """``["a=1", "b=[1,2]"]`` → ``{"a": 1, "b": [1, 2]}`` (values are JSON)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RtsepError(f"--set {item!r}: expected KEY=VALUE, e.g. --set bottleneck=128")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise RtsepError(f"--set {item!r}: the value must be JSON, e.g. 128") from None
    return out


def parse_source_weights(items: list[str] | None) -> dict[str, float] | None:
    """``["drums=2"]`` → ``{"drums": 2.0}``; None stays None (keep the run's own)."""
    if items is None:
        return None
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = 0.0
        if not weight > 0:  # also no "=", and nan
            raise RtsepError(
                f"--source-weight {item!r}: expected SOURCE=W with W above 0, e.g. drums=2"
            )
        out[name] = weight
    return out


def run(args: argparse.Namespace) -> int:
    require_training()
    from training.train import TrainConfig, train

    if not 0.0 <= args.dense <= 1.0:
        raise RtsepError(f"--dense {args.dense}: give a share from 0 to 1, e.g. --dense 0.5")
    if not 0.0 <= args.drum_pitch <= 12.0:
        raise RtsepError(
            f"--drum-pitch {args.drum_pitch}: give semitones from 0 to 12, e.g. --drum-pitch 4"
        )
    if not 0.0 <= args.ema < 1.0:
        raise RtsepError(f"--ema {args.ema}: give a decay from 0 (none) to below 1, e.g. 0.999")
    cfg = TrainConfig(
        preset=args.preset,
        data=args.data,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        excerpt_seconds=args.excerpt_seconds,
        lr=args.lr,
        loss=args.loss,
        source_weights=parse_source_weights(args.source_weight),
        resume=args.resume,
        force=args.force,
        val_every=args.val_every,
        max_minutes=args.max_minutes,
        intra_threads=args.threads,
        inter_threads=args.inter_threads,
        xla=not args.no_xla,
        seed=args.seed,
        dense=args.dense,
        drum_pitch=args.drum_pitch,
        overrides=parse_overrides(args.set),
        init_from=args.init_from,
        ema=args.ema,
    )
    leg = train(cfg)
    print(json.dumps({k: leg[k] for k in ("from_step", "to_step", "wall_s", "cpu_s", "last")}))
    if "stopped_by" in leg:
        print(
            f"stopped by {leg['stopped_by']} after step {leg['to_step']}: checkpoint kept, "
            "--resume continues",
            file=sys.stderr,
        )
        return 130
    return 0
