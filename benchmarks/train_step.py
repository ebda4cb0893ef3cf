"""How long one training step of a run's network takes here, under a Keras dtype policy.

``python benchmarks/train_step.py RUN [--policy mixed_bfloat16] [--no-xla]`` builds the
network of ``RUN/config.json`` (a training output, e.g. ``training/checkpoints/rt-stereo``)
and times ``--steps`` of training's own step (``training.train.training_step``: Adam, SDR
loss) on one fixed batch of the training shape (16 stereo excerpts of 3 s), after three
steps of warm-up (tracing, XLA compilation). Fixed data leaves the input pipeline out: this
is the compute alone. Two threads, as training runs here. Run each setting in its own
process (the policy is global), twice or more: on the 2-core machine the median of one
process differs from the next by up to 10 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.data import excerpt_frames
from training.train import configure_threads, training_step

BATCH = 16
EXCERPT_S = 3.0
WARM_UP_STEPS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="training output folder (its config.json)")
    parser.add_argument("--policy", default="float32", help="Keras dtype policy")
    parser.add_argument("--no-xla", action="store_true", help="run the step without XLA")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (default 8)")
    args = parser.parse_args()
    configure_threads(2, 1)
    import keras
    import tensorflow as tf

    from training import losses, models

    keras.mixed_precision.set_global_policy(args.policy)
    saved = json.loads((args.run / "config.json").read_text())
    net = models.build(saved["preset"], **saved["config"])
    model = net.training_model()
    optimizer = keras.optimizers.Adam(2e-4, clipnorm=5.0)
    optimizer.build(model.trainable_variables)
    rows, frames = BATCH * net.channels, excerpt_frames(EXCERPT_S)
    rng = np.random.default_rng(0)
    stems = tf.constant((0.1 * rng.standard_normal((rows, 4, frames))).astype(np.float32))
    mix = tf.reduce_sum(stems, axis=1)

    step = training_step(model, optimizer, losses.neg_sdr)
    run = tf.function(lambda: step(mix, stems), jit_compile=not args.no_xla)
    for _ in range(WARM_UP_STEPS):
        float(run())
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        float(run())
        seconds.append(time.perf_counter() - start)
    xla = "off" if args.no_xla else "on"
    print(
        f"{args.run} {args.policy}, XLA {xla}: median {np.median(seconds):.3f} s a step, "
        f"fastest {min(seconds):.3f} s ({args.steps} steps)"
    )


if __name__ == "__main__":
    main()
