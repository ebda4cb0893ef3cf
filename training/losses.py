"""Training losses on waveforms ``[B, S, T]``: L1, and a clipped negative SDR per source.

The SDR loss rewards what evaluation measures (energy ratio in dB) instead of sample-wise
absolute error, which under-weights quiet sources. Each source's SDR is capped at
``SDR_CAP`` dB (a soft threshold, as in MixIT), so that sources already separated well stop
dominating the gradient. A floor at ``MIX_FLOOR`` of the mixture's energy (added to both
terms) keeps silent targets from dominating: for them the loss asks for an estimate well
below the mixture, not for an infinite ratio.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

SDR_CAP = 30.0
MIX_FLOOR = 1e-3  # -30 dB of the mixture's energy
EPS = 1e-8


def l1(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Mean absolute error (the seed's loss)."""
    return tf.reduce_mean(tf.abs(target - estimate))


def neg_sdr(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Negative SDR (dB), capped at ``SDR_CAP``, floored by the mixture, mean over all."""
    signal = tf.reduce_sum(tf.square(target), axis=-1)
    noise = tf.reduce_sum(tf.square(target - estimate), axis=-1)
    floor = MIX_FLOOR * tf.reduce_sum(tf.square(tf.reduce_sum(target, axis=1)), axis=-1)
    floor = floor[:, None] + EPS
    ratio = (signal + floor) / (noise + 10.0 ** (-SDR_CAP / 10.0) * signal + floor)
    return -10.0 * tf.reduce_mean(tf.math.log(ratio)) / tf.math.log(10.0)


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {"l1": l1, "sdr": neg_sdr}
