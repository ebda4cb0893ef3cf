"""Training losses on waveforms ``[B, S, T]``: L1, and a clipped negative SDR per source.

The SDR loss rewards what evaluation measures (energy ratio in dB) instead of sample-wise
absolute error, which under-weights quiet sources. Each source's SDR is capped at
``SDR_CAP`` dB (a soft threshold, as in MixIT), so that sources already separated well stop
dominating the gradient. A floor at ``MIX_FLOOR`` of the mixture's energy (added to both
terms) keeps silent targets from dominating: for them the loss asks for an estimate well
below the mixture, not for an infinite ratio.

``weighted`` turns either into a weighted mean over sources, so that training can spend more
of a shared network on one source (the default model's drums trail its targets most).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

SDR_CAP = 30.0
MIX_FLOOR = 1e-3  # -30 dB of the mixture's energy
EPS = 1e-8


def l1_per_source(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Mean absolute error per excerpt and source, ``[B, S]``."""
    return tf.reduce_mean(tf.abs(target - estimate), axis=-1)


def neg_sdr_per_source(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Negative SDR (dB) per excerpt and source, ``[B, S]``: capped at ``SDR_CAP``, floored
    by the mixture."""
    signal = tf.reduce_sum(tf.square(target), axis=-1)
    noise = tf.reduce_sum(tf.square(target - estimate), axis=-1)
    floor = MIX_FLOOR * tf.reduce_sum(tf.square(tf.reduce_sum(target, axis=1)), axis=-1)
    floor = floor[:, None] + EPS
    ratio = (signal + floor) / (noise + 10.0 ** (-SDR_CAP / 10.0) * signal + floor)
    return -10.0 * tf.math.log(ratio) / tf.math.log(10.0)


def l1(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Mean absolute error (the seed's loss)."""
    return tf.reduce_mean(l1_per_source(target, estimate))


def neg_sdr(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Negative SDR (dB), capped at ``SDR_CAP``, floored by the mixture, mean over all."""
    return tf.reduce_mean(neg_sdr_per_source(target, estimate))


Loss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
PER_SOURCE: dict[str, Loss] = {"l1": l1_per_source, "sdr": neg_sdr_per_source}
LOSSES: dict[str, Loss] = {"l1": l1, "sdr": neg_sdr}


def source_weights(weights: Mapping[str, float], sources: Sequence[str]) -> list[float]:
    """One weight per source in ``sources`` order (1 where not named), scaled to mean 1 so that
    the loss keeps its scale; raises ``ValueError`` on an unknown source or a weight <= 0."""
    unknown = set(weights) - set(sources)
    if unknown:
        raise ValueError(f"unknown source {sorted(unknown)[0]!r}: choose from {', '.join(sources)}")
    if any(w <= 0 for w in weights.values()):
        raise ValueError("source weights must be above 0")
    raw = [float(weights.get(name, 1.0)) for name in sources]
    return [w * len(raw) / sum(raw) for w in raw]


def weighted(name: str, weights: Sequence[float]) -> Loss:
    """The loss ``name`` as a mean over sources weighted by ``weights`` (one per source)."""
    per_source, w = PER_SOURCE[name], tf.constant(weights, tf.float32)

    def loss(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(per_source(target, estimate) * w)

    return loss
