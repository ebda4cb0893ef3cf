"""The Keras model family: one ``forward`` per preset, three Keras models sharing its layers.

Every causal convolution is a *valid* convolution over ``concat(state, input)`` along time,
and its new state is the last ``(k - 1) * dilation`` steps of that concat. With zero states
this equals causal zero padding, so the training model (zero states made inside), the
sequence model (dynamic time) and the step model (one hop) compute the same numbers.
In the step model a kernel-2 conv with dilation ``d`` keeps no window: its state is a delay
line (``rtsep.delays``) that hands back the one frame it needs, from ``d`` hops ago.
Audio rows come in groups of ``channels`` (config): 1 runs each channel on its own, 2 reads
the rows as (left, right) pairs and encodes them jointly, so that panning is a cue. The graphs'
``audio [2, T]`` is one such pair, and each state's leading dimension is ``2 // channels``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from rtsep import contract

HOP = contract.HOP
N_SOURCES = len(contract.SOURCES)


class CausalConv(layers.Layer):
    """Causal conv over time (axis 1) as taps of a cached concat and one matmul.

    Input ``(state, x)``: state ``[B, (k-1)*d, *rest, C]``, x ``[B, F, *rest, C]``; output
    ``(y [B, F, *rest, units], state_out)`` (kernel 1: just ``x`` → ``y``). Written as
    slices + MatMul (not Conv1D) so that the ONNX graph has no NHWC/NCHW transposes and
    dilation needs no space-to-batch. With one frame (the step graph) the taps are one
    strided slice of the concat, not a slice per tap and a concat of them: fewer nodes a hop.
    Over many frames, a conv that narrows (fewer units than input channels) multiplies each
    tap on its own and shifts the narrow products into place instead.
    """

    def __init__(self, units: int, kernel: int, dilation: int = 1, use_bias: bool = True, **kw):
        super().__init__(**kw)
        self.units, self.kernel, self.dilation, self.use_bias = units, kernel, dilation, use_bias

    @property
    def context(self) -> int:
        return (self.kernel - 1) * self.dilation

    def build(self, input_shape):
        cin = (input_shape if self.context == 0 else input_shape[1])[-1]
        self.w = self.add_weight(
            name="kernel", shape=(self.kernel * cin, self.units), initializer="glorot_uniform"
        )
        self.b = (
            self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, inputs):
        if self.context == 0:  # kernel 1: no state, input and output are plain tensors
            return _matmul(inputs, self.w, self.b)
        state, x = inputs
        c, d = self.context, self.dilation
        if self.units < x.shape[-1] and x.shape[1] != 1:
            return self._sum_of_tap_products(state, x), self._next_state(state, x)
        z = ops.concatenate([state, x], axis=1)
        if x.shape[1] == 1:  # the step graph: the taps are every d-th frame of z
            taps = ops.moveaxis(z[:, ::d], 1, -2)  # [B, *rest, K, C]
            taps = ops.reshape(taps, (-1, 1, *taps.shape[1:-2], taps.shape[-2] * taps.shape[-1]))
        else:
            ends = [c - j * d for j in range(self.kernel)]
            taps = ops.concatenate(
                [z[:, j * d : (-end if end else None)] for j, end in enumerate(ends)], axis=-1
            )
        return _matmul(taps, self.w, self.b), z[:, -c:]

    def step_on_delayed(self, delayed, x):
        """The step graph's kernel-2 conv: ``delayed`` ``[B, 1, C]`` is the input from
        ``dilation`` frames ago (a delay line's entry), ``x`` ``[B, 1, C]`` the current one."""
        if self.kernel != 2:
            raise ValueError(f"{self.name}: a delay line feeds kernel-2 convs, not {self.kernel}")
        return _matmul(ops.concatenate([delayed, x], axis=-1), self.w, self.b)

    def _sum_of_tap_products(self, state, x):
        """``Σ_j tap_j @ w_j``, each tap's product shifted into place: for a conv that narrows
        (the decoder: 256 channels in, 64 out) this moves the narrow products, never a copy of
        the wide taps, which was the costliest part of the sequence graph after its matmuls."""
        cin, c, d = x.shape[-1], self.context, self.dilation
        y = _matmul(x, self.w[-cin:], self.b)  # the last tap is the current frame
        for j in range(self.kernel - 1):
            w = self.w[j * cin : (j + 1) * cin]
            shifted = ops.concatenate([_matmul(state, w), _matmul(x, w)], axis=1)
            y = y + shifted[:, j * d : j * d - c]
        return y

    def _next_state(self, state, x):
        """The last ``context`` frames of ``concat(state, x)``, without copying all of ``x``."""
        c = self.context
        return ops.concatenate([state, x[:, -c:]], axis=1)[:, -c:]


def _matmul(x, w, b=None):
    """``x @ w (+ b)`` on the last axis. ``w`` stays 2-D, so TensorFlow runs a tensordot (a
    MatMul between two Reshapes in ONNX). Reshaped to ``[1, .., K, N]`` for one broadcasting
    MatMul, it made XLA copy ``w`` across the batch: 1.8 s instead of 1.36 s per training
    step of ``rt`` and 2.5x the memory, and 10x the time once the channel axis came in."""
    y = ops.matmul(x, w)
    return y if b is None else y + b


def _softmax_times(logits, x, axis: int = 3):
    """``softmax(logits, axis) * x``: masks that sum to one over the sources, applied to ``x``.

    Written out (exp, sum, one division of the narrow ``x``) rather than as a Softmax: on
    the sources axis, which is not the last, onnxruntime's Softmax transposes the tensor
    there and back, a fifth of the sequence graph's time."""
    e = ops.exp(logits - ops.max(logits, axis=axis, keepdims=True))
    return e * (x / ops.sum(e, axis=axis, keepdims=True))


class Linear(layers.Layer):
    """A Dense layer on the last axis that exports as a single MatMul (+ Add)."""

    def __init__(self, units: int, **kw):
        super().__init__(**kw)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.units), initializer="glorot_uniform"
        )
        self.b = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return _matmul(x, self.w, self.b)


class FrameNorm(layers.Layer):
    """Layer normalization over features, per frame (no statistics over time).

    Written as ReduceMean/Sub/Pow/Sqrt/Div so that onnxruntime fuses it into one
    LayerNormalization kernel when it loads the graph.
    """

    def __init__(self, epsilon: float = 1e-3, **kw):
        super().__init__(**kw)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(input_shape[-1],), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        d = x - ops.mean(x, axis=-1, keepdims=True)
        var = ops.mean(ops.power(d, 2.0), axis=-1, keepdims=True)
        return d / ops.sqrt(var + self.epsilon) * self.gamma + self.beta


class ZeroState(layers.Layer):
    """Zeros ``[rows of x // group, *shape]``: the reset state, for the training model."""

    def __init__(self, shape: tuple[int, ...], group: int = 1, **kw):
        super().__init__(**kw)
        self.shape_, self.group = tuple(shape), group

    def call(self, x):
        return ops.zeros((ops.shape(x)[0] // self.group, *self.shape_), dtype=x.dtype)


def _frames(x) -> Any:
    """Axis 1 of ``x`` (frames): static where the graph knows it (the step graph), else dynamic."""
    return x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]


class GroupChannels(layers.Layer):
    """Hop frames ``[B*k, F, 64]`` → ``[B, F, k, 64]``: rows in groups of ``k`` channels."""

    def __init__(self, k: int, **kw):
        super().__init__(**kw)
        self.k = k

    def call(self, x):
        return ops.transpose(ops.reshape(x, (-1, self.k, _frames(x), HOP)), (0, 2, 1, 3))


class UngroupChannels(layers.Layer):
    """Per-frame sources ``[B, F, k, S, 64]`` → waveforms ``[B*k, S, F*64]``."""

    def call(self, y):
        f = _frames(y)
        y = ops.transpose(y, (0, 2, 3, 1, 4))  # [B, k, S, F, 64]
        return ops.reshape(y, (-1, N_SOURCES, f * HOP))


class MixtureConsistency(layers.Layer):
    """``s_i += (x - Σ_j s_j) / S``: the sources sum exactly to the input."""

    def call(self, inputs):
        x, s = inputs  # x [B, T], s [B, S, T]
        return s + ops.expand_dims((x - ops.sum(s, axis=1)) / s.shape[1], 1)


class Chunks(layers.Layer):
    """``[B, T]`` → ``[B*F, 64, 1]``: every hop an item of the batch (the seed's view)."""

    def call(self, audio):
        return ops.reshape(audio, (-1, HOP, 1))


class Unchunk(layers.Layer):
    """``(audio [B, T], y [B*F, 64, S])`` → ``[B, S, T]``."""

    def call(self, inputs):
        audio, y = inputs
        b = ops.shape(audio)[0]
        y = ops.transpose(ops.reshape(y, (b, -1, HOP, N_SOURCES)), (0, 3, 1, 2))
        return ops.reshape(y, (b, N_SOURCES, -1))


def _rt_config(**over: Any) -> dict[str, Any]:
    cfg = dict(
        filters=256,  # analysis filterbank size N
        window_hops=4,  # analysis window = 4 hops = 256 samples
        bottleneck=96,
        hidden=128,
        dilations=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        repeats=1,
        norm_blocks=True,
        decoder_hops=2,  # synthesis draws on this many frames (current + previous)
        channels=1,  # 2: encode left and right jointly, a mask per channel
    )
    cfg.update(over)
    return cfg


PRESETS: dict[str, dict[str, Any]] = {
    "rt": _rt_config(),
    "rt-stereo": _rt_config(channels=2),
    "tiny": _rt_config(filters=16, bottleneck=8, hidden=12, dilations=[1, 2, 4], decoder_hops=2),
    "seed": dict(filters=[16, 32, 64, 128, 256, 512], kernel=5, dropout=0.5),
}


def channels_per_item(config: dict[str, Any]) -> int:
    """A config's audio rows per item (configs saved before the key existed: 1)."""
    return int(config.get("channels", 1))


@dataclass
class Net:
    """A preset's layers and its three Keras models (weights shared)."""

    preset: str
    config: dict[str, Any]
    state_specs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    """Each state's name and full shape in the sequence (and training) graph."""
    step_state_specs: list[tuple[str, tuple[int, ...]]] | None = None
    """The step graph's states, where they differ (delay lines); None: ``state_specs``."""
    delays: dict[str, list[int]] = field(default_factory=dict)
    """The step graph's delay-line states: each entry's delay in hops (``rtsep.delays``)."""
    _cache: dict[str, keras.Model] = field(default_factory=dict)

    def forward(self, audio, states: list, training_graph: bool = False, step: bool = False):
        """``audio`` and ``states`` → (sources, new states); ``step``: the step graph's states
        (``step_specs``), else the sequence graph's."""
        raise NotImplementedError  # pragma: no cover - overridden

    @property
    def step_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """The step graph's states: name and full shape."""
        return self.state_specs if self.step_state_specs is None else self.step_state_specs

    @property
    def channels(self) -> int:
        """Audio rows per item: 1 (channels on their own) or 2 (a stereo pair)."""
        return channels_per_item(self.config)

    def _build(self, kind: str) -> keras.Model:
        if kind == "training":
            audio = keras.Input(shape=(None,), name=contract.AUDIO_INPUT)
            states = [ZeroState(shape[1:], self.channels)(audio) for _, shape in self.state_specs]
            sources, _ = self.forward(audio, states, training_graph=True)
            return keras.Model(audio, sources, name=f"{self.preset}_training")
        step = kind == "step"
        audio = keras.Input(
            shape=(HOP if step else None,), batch_size=contract.CHANNELS, name=contract.AUDIO_INPUT
        )
        states = [
            keras.Input(shape=shape[1:], batch_size=shape[0], name=name)
            for name, shape in (self.step_specs if step else self.state_specs)
        ]
        sources, new_states = self.forward(audio, states, training_graph=False, step=step)
        return keras.Model([audio, *states], [sources, *new_states], name=f"{self.preset}_{kind}")

    def model(self, kind: str) -> keras.Model:
        if kind not in self._cache:
            self._cache[kind] = self._build(kind)
        return self._cache[kind]

    def training_model(self) -> keras.Model:
        """``audio [B, T]`` → ``sources [B, S, T]``, zero states (B a multiple of channels)."""
        return self.model("training")

    def sequence_model(self) -> keras.Model:
        """``[audio [2, T], *states]`` → ``[sources [2, S, T], *states_out]``, T dynamic."""
        return self.model("sequence")

    def step_model(self) -> keras.Model:
        """``[audio [2, 64], *states]`` → ``[sources [2, S, 64], *states_out]``."""
        return self.model("step")

    def parameters(self) -> int:
        return int(sum(np.prod(w.shape) for w in self.training_model().weights))

    def start_as(self, smaller: Net) -> None:
        """Make the layers this network has beyond ``smaller`` (its preset with a grown config,
        ``--init-from``) add nothing, so that with ``smaller``'s weights it computes the same."""


class RtNet(Net):
    """One frame per hop: learned filterbank, per-frame norm, dilated causal TCN, softmax masks
    over the sources, learned per-frame synthesis of the current hop, mixture consistency.

    With ``channels=2`` the filterbank runs on left and right alike, one norm and one TCN see
    both (level and timing differences between channels are kept), and each channel gets its
    own masks: the TCN runs once per stereo hop, not once per channel."""

    def __init__(self, preset: str, config: dict[str, Any]):
        c = config
        n, bn, h = c["filters"], c["bottleneck"], c["hidden"]
        k = channels_per_item(c)
        if k not in (1, 2):
            raise ValueError(f"channels {k}: the rt family encodes 1 or 2 channels per item")
        rows = contract.CHANNELS // k
        self.group, self.ungroup = GroupChannels(k, name="group"), UngroupChannels(name="ungroup")
        self.encoder = CausalConv(n, c["window_hops"], 1, name="encoder")
        self.enc_norm = FrameNorm(name="enc_norm")
        self.proj = Linear(bn, name="proj")
        self.blocks = []
        enc = ("enc", (rows, self.encoder.context, k, HOP))
        specs, dilations = [enc], []
        i = 0
        for _ in range(c["repeats"]):
            for d in c["dilations"]:
                conv = CausalConv(h, 2, d, name=f"tcn{i}_conv")
                norm = FrameNorm(name=f"tcn{i}_norm") if c["norm_blocks"] else None
                out = Linear(bn, name=f"tcn{i}_out")
                self.blocks.append((conv, norm, out))
                specs.append((f"tcn{i}", (rows, conv.context, bn)))
                dilations.append(d)
                i += 1
        # the step graph: one delay line for every block's input, entry i = block i
        step_specs = [enc, ("tcn", (rows, len(dilations), bn))]
        self.mask = Linear(k * N_SOURCES * n, name="mask")
        self.decoder = CausalConv(HOP, c["decoder_hops"], 1, name="decoder")
        if self.decoder.context:
            dec = ("dec", (rows, self.decoder.context, k, N_SOURCES, n))
            specs.append(dec)
            step_specs.append(dec)
        self.consistency = MixtureConsistency(name="consistency")
        super().__init__(preset, config, specs, step_specs, {"tcn": dilations})

    def forward(self, audio, states: list, training_graph: bool = False, step: bool = False):
        n, k = self.config["filters"], self.channels
        it = iter(states)
        new_states = []
        frames = self.group(layers.Reshape((-1, HOP))(audio))  # [B, F, k, 64]
        feats, s = self.encoder((next(it), frames))
        new_states.append(s)
        feats = ops.relu(feats)  # [B, F, k, N]: nonnegative filterbank magnitudes
        x = self.proj(self.enc_norm(layers.Reshape((-1, k * n))(feats)))
        if step:  # each block's input from its dilation's hops ago, and now for later hops
            delayed = iter(ops.split(next(it), len(self.blocks), axis=1))
            block_inputs = []
        for conv, norm, out in self.blocks:
            if step:
                block_inputs.append(x)
                y = conv.step_on_delayed(next(delayed), x)
            else:
                y, s = conv((next(it), x))
                new_states.append(s)
            y = ops.relu(y)
            if norm is not None:
                y = norm(y)
            x = x + out(y)
        if step:
            new_states.append(ops.concatenate(block_inputs, axis=1))
        m = layers.Reshape((-1, k, N_SOURCES, n))(self.mask(ops.relu(x)))
        masked = _softmax_times(m, ops.expand_dims(feats, 3))  # [B, F, k, S, N]
        if self.decoder.context:
            y, s = self.decoder((next(it), masked))  # [B, F, k, S, 64]
            new_states.append(s)
        else:
            y = self.decoder(masked)
        return self.consistency((audio, self.ungroup(y))), new_states

    def start_as(self, smaller: Net) -> None:
        """Blocks beyond ``smaller``'s (more ``repeats``, ``dilations`` appended) get zero
        output projections: each adds nothing to the residual stream until training brings it
        in (the projection has a gradient at once, the block's conv from the next step on)."""
        self.training_model()  # builds the layers
        for _conv, _norm, out in self.blocks[len(smaller.blocks) :]:
            out.w.assign(ops.zeros_like(out.w))
            out.b.assign(ops.zeros_like(out.b))

    def macs_per_hop(self) -> int:
        """Multiply-adds per channel-hop (matmuls only; elementwise ops not counted)."""
        c = self.config
        n, bn, h, k = c["filters"], c["bottleneck"], c["hidden"], self.channels
        macs = k * c["window_hops"] * HOP * n + k * n * bn
        macs += len(self.blocks) * (2 * bn * h + h * bn)
        macs += bn * k * N_SOURCES * n + k * N_SOURCES * c["decoder_hops"] * n * HOP
        return macs // k


class SeedNet(Net):
    """The seed U-Net: each 64-sample chunk alone, strided Conv1D encoder 16..512 with
    BatchNorm + LeakyReLU, Conv1DTranspose decoder with skips, ReLU and dropout 0.5 on the
    1st and 3rd upsampling stages, 4 sigmoid masks times the input, mixture consistency."""

    def __init__(self, preset: str, config: dict[str, Any]):
        f, k = config["filters"], config["kernel"]
        self.enc = [
            (
                layers.Conv1D(c, k, strides=2, padding="same", name=f"enc{i}"),
                layers.BatchNormalization(name=f"enc{i}_bn"),
            )
            for i, c in enumerate(f)
        ]
        ups = [*f[-2::-1]]  # 256, 128, 64, 32, 16
        self.dec = [
            layers.Conv1DTranspose(c, k, strides=2, padding="same", name=f"dec{i}")
            for i, c in enumerate(ups)
        ]
        self.drop = {0: layers.Dropout(config["dropout"]), 2: layers.Dropout(config["dropout"])}
        self.out = layers.Conv1DTranspose(
            N_SOURCES, k, strides=2, padding="same", activation="sigmoid", name="masks"
        )
        self.consistency = MixtureConsistency(name="consistency")
        super().__init__(preset, config, [])

    def forward(self, audio, states: list, training_graph: bool = False, step: bool = False):
        x = Chunks()(audio)  # [B*F, 64, 1]: every hop alone
        h, skips = x, []
        for conv, bn in self.enc:
            h = layers.LeakyReLU(0.2)(bn(conv(h)))
            skips.append(h)
        for i, up in enumerate(self.dec):
            h = ops.relu(ops.concatenate([up(h), skips[-2 - i]], axis=-1))
            if i in self.drop:
                h = self.drop[i](h)
        masks = self.out(h)  # [B*F, 64, S]
        y = masks * x
        sources = Unchunk()((audio, y))
        return self.consistency((audio, sources)), []

    def macs_per_hop(self) -> int:
        """Multiply-adds per channel-hop of the convolutions."""
        f, k = self.config["filters"], self.config["kernel"]
        macs, length, cin = 0, HOP, 1
        for c in f:
            length //= 2
            macs += length * k * cin * c
            cin = c
        ups = [*f[-2::-1]]
        for i, c in enumerate(ups):  # a transposed conv scatters k taps per input step
            macs += length * k * cin * c
            length *= 2
            cin = c + f[-2 - i]
        macs += length * k * cin * N_SOURCES
        return macs


def build(preset: str, **overrides: Any) -> Net:
    """The preset's network; ``overrides`` change its config (for design comparisons)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    config = {**PRESETS[preset], **overrides}
    cls = SeedNet if preset == "seed" else RtNet
    return cls(preset, config)
