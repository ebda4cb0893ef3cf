"""Training losses on waveforms ``[B, S, T]``: L1, and a clipped negative SDR per source
(of whole excerpts or of 1 s frames).

The SDR loss rewards what evaluation measures (energy ratio in dB) instead of sample-wise
absolute error, which under-weights quiet sources. Each source's SDR is capped at
``SDR_CAP`` dB (a soft threshold, as in MixIT), so that sources already separated well stop
dominating the gradient. A floor at ``MIX_FLOOR`` of the mixture's energy (added to both
terms) keeps silent targets from dominating: for them the loss asks for an estimate well
below the mixture, not for an infinite ratio.

``sdr-frames`` is the same SDR averaged over about 1 s frames of each excerpt, as museval
scores a track (the median over 1 s frames): a quiet frame counts as much as a loud one, where
the SDR of a whole excerpt is ruled by its loudest second.

``weighted`` turns any of them into a weighted mean over sources, so that training can spend more
of a shared network on one source (the default model's drums trail its targets most).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from rtsep.contract import SAMPLE_RATE

SDR_CAP = 30.0
MIX_FLOOR = 1e-3  # -30 dB of the mixture's energy
EPS = 1e-8
FRAME = SAMPLE_RATE  # museval scores 1 s frames


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


def neg_sdr_frames_per_source(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """``neg_sdr_per_source`` of each about-1 s frame (``FRAME`` samples, the excerpt cut into
    a whole number of equal frames, at least one), averaged over frames: ``[B, S]``."""
    length = target.shape[-1]
    frames = max(1, round(length / FRAME))
    size = length // frames

    def framed(x: tf.Tensor) -> tf.Tensor:  # [B, S, T] -> [B * frames, S, size]
        x = tf.reshape(x[..., : frames * size], (-1, x.shape[1], frames, size))
        return tf.reshape(tf.transpose(x, (0, 2, 1, 3)), (-1, x.shape[1], size))

    per_frame = neg_sdr_per_source(framed(target), framed(estimate))
    return tf.reduce_mean(tf.reshape(per_frame, (-1, frames, target.shape[1])), axis=1)


def l1(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Mean absolute error (the seed's loss)."""
    return tf.reduce_mean(l1_per_source(target, estimate))


def neg_sdr(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Negative SDR (dB), capped at ``SDR_CAP``, floored by the mixture, mean over all."""
    return tf.reduce_mean(neg_sdr_per_source(target, estimate))


def neg_sdr_frames(target: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """``neg_sdr`` of 1 s frames, mean over all."""
    return tf.reduce_mean(neg_sdr_frames_per_source(target, estimate))


Loss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
PER_SOURCE: dict[str, Loss] = {
    "l1": l1_per_source,
    "sdr": neg_sdr_per_source,
    "sdr-frames": neg_sdr_frames_per_source,
}
LOSSES: dict[str, Loss] = {"l1": l1, "sdr": neg_sdr, "sdr-frames": neg_sdr_frames}
VALIDATION: dict[str, str] = {"l1": "l1", "sdr": "sdr", "sdr-frames": "sdr"}
"""The loss that validation reports for each training loss: both SDR losses report the
whole-excerpt SDR, so that legs trained on either stay comparable."""


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
