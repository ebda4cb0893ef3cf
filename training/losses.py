"""Training losses on waveforms ``[B, S, T]``: L1, and a clipped negative SDR per source.

The SDR loss rewards what evaluation measures (energy ratio in dB) instead of sample-wise
absolute error, which under-weights quiet sources. Each source's SDR is capped at
``SDR_CAP`` dB (a soft threshold, as in MixIT), so that sources already separated well stop
dominating the gradient, and a silent target is handled by the epsilon.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

SDR_CAP = 30.0
EPS = 1e-8


def l1(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Mean absolute error (the seed's loss)."""
    return tf.reduce_mean(tf.abs(target - estimate))


def sdr_per_source(target: tf.Tensor, estimate: tf.Tensor, cap: float | None = None) -> tf.Tensor:
    """SDR in dB per excerpt and source ``[B, S]``, optionally soft-capped at ``cap`` dB."""
    signal = tf.reduce_sum(tf.square(target), axis=-1)
    noise = tf.reduce_sum(tf.square(target - estimate), axis=-1)
    if cap is not None:
        noise = noise + 10.0 ** (-cap / 10.0) * signal
    ratio = (signal + EPS) / (noise + EPS)
    return 10.0 * tf.math.log(ratio) / tf.math.log(10.0)


def neg_sdr(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Negative SDR (dB), capped at ``SDR_CAP``, averaged over excerpts and sources."""
    return -tf.reduce_mean(sdr_per_source(target, estimate, SDR_CAP))


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {"l1": l1, "sdr": neg_sdr}
