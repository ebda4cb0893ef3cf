"""One hop through the step graph, as the engine and the benchmarks run it.

``Stepper.run()`` reads the hop from the caller's ``audio`` array and writes the sources into
the caller's ``sources`` array, with the model's states alternating between two
preallocated sets (IOBinding: the output set of one hop is the input set of the next), but
for its delay lines (``rtsep.delays``), each bound once and advanced after every hop.

Real-time rules: ``run`` and ``zero_states`` allocate no buffers, take no locks and do no
I/O. On the CPU onnxruntime reads and writes the caller's arrays in place. On CUDA the
inputs and outputs live on the GPU: the hop (and each delay line's input) is copied in,
replayed from a CUDA graph (one per state set, captured when the Stepper is made) and the
sources (and each delay line's output) are copied back, so that the hop's kernels cost one
launch. A graph the model or onnxruntime cannot capture falls back to plain CUDA runs
(README, "CUDA").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from rtsep import contract
from rtsep.delays import DelayLine
from rtsep.model import Model

GRAPH_WARMUP_RUNS = 3
"""Runs per state set when a Stepper is made: onnxruntime captures a CUDA graph after its
first regular runs, and the capture must happen here, not in an audio callback."""


class Stepper:
    """Run the step graph hop by hop on ``audio`` (channels, hop) into ``sources``
    (channels, sources, hop), both float32 arrays the caller keeps and reuses.

    ``cuda_graph=False`` runs CUDA without a graph (for measurements; the CPU has none).
    """

    def __init__(
        self, model: Model, audio: np.ndarray, sources: np.ndarray, cuda_graph: bool = True
    ) -> None:
        for name, array, shape in (
            ("audio", audio, (model.channels, model.hop)),
            ("sources", sources, (model.channels, len(model.sources), model.hop)),
        ):
            if array.shape != shape or array.dtype != np.float32 or not array.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous float32 array {shape}")
        self.model = model
        self._lines = {
            name: DelayLine(shape, model.delays[name])
            for name, shape in model.states
            if name in model.delays
        }
        # what zero_states() copies into the alternating states
        self._zeros = {k: v for k, v in model.zero_states().items() if k not in self._lines}
        self._parity = 0
        self.cuda_graph = False
        """Whether each hop replays a captured CUDA graph."""
        if model.provider == "cuda" and cuda_graph:
            try:
                self._bind(audio, sources, graph=True)
                self.cuda_graph = True
            except Exception:  # onnxruntime's errors are plain Exceptions: any failure to
                # capture (a node left on the CPU, no CUDA runtime to copy with: not Linux)
                # means plain CUDA runs
                self._bind(audio, sources, graph=False)
        else:
            self._bind(audio, sources, graph=False)

    def _bind(self, audio: np.ndarray, sources: np.ndarray, graph: bool) -> None:
        import onnxruntime as ort

        cuda = self.model.provider == "cuda"
        device = "cuda" if cuda else "cpu"
        self.session = self.model.session("step", threads=1, cuda_graph=graph)

        def value(array: np.ndarray, where: str = device) -> Any:
            # A CPU value shares the array's memory; a CUDA value is a copy on the GPU.
            return ort.OrtValue.ortvalue_from_numpy(array, where, 0)

        def model_states(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
            return {name: value(array) for name, array in arrays.items()}

        # Fresh arrays for each set: on the CPU a value is its array, and zero_states()
        # copies self._zeros into them.
        self._states = [
            model_states({name: np.zeros_like(zeros) for name, zeros in self._zeros.items()})
            for _ in range(2)
        ]
        # onnxruntime copies a CPU input to the GPU once, when it is bound: on CUDA the hop is
        # a GPU value that each run overwrites.
        audio_value = value(audio)
        # In a graph every output is on the GPU, copied back after the run; otherwise a
        # CPU-bound output is copied back by onnxruntime at the end of every run.
        sources_value = value(sources, "cuda" if graph else "cpu")
        # A delay line's input is its own array on the CPU, on CUDA a GPU copy made each hop
        # like the audio's; its output goes where the sources go.
        line_inputs = {name: value(line.input) for name, line in self._lines.items()}
        line_outputs = {
            name: value(line.output, "cuda" if graph else "cpu")
            for name, line in self._lines.items()
        }
        self._uploads: list[Callable[[], None]] = []
        if cuda:
            self._uploads = [functools.partial(audio_value.update_inplace, audio)]
            self._uploads += [
                functools.partial(line_inputs[n].update_inplace, line.input)
                for n, line in self._lines.items()
            ]
        self._downloads: list[Callable[[], None]] = []
        if graph:
            self._downloads = [_device_to_host(sources, sources_value)]
            self._downloads += [
                _device_to_host(line.output, line_outputs[n]) for n, line in self._lines.items()
            ]
        self._advances = [line.advance for line in self._lines.values()]
        self._bindings = []
        self._run_options: list[Any] = []
        for parity, (src, dst) in enumerate(((0, 1), (1, 0))):
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(contract.AUDIO_INPUT, audio_value)
            binding.bind_ortvalue_output(contract.SOURCES_OUTPUT, sources_value)
            for name in self._zeros:
                binding.bind_ortvalue_input(name, self._states[src][name])
                binding.bind_ortvalue_output(
                    name + contract.STATE_OUT_SUFFIX, self._states[dst][name]
                )
            for name in self._lines:
                binding.bind_ortvalue_input(name, line_inputs[name])
                binding.bind_ortvalue_output(name + contract.STATE_OUT_SUFFIX, line_outputs[name])
            self._bindings.append(binding)
            options = None  # no RunOptions on the CPU: onnxruntime 1.32 adds ~20 µs for one
            if graph:
                options = ort.RunOptions()
                options.add_run_config_entry("gpu_graph_id", str(parity + 1))
            self._run_options.append(options)
        # the bindings point into these
        self._keep = (audio_value, sources_value, line_inputs, line_outputs)
        if graph:
            for _ in range(2 * GRAPH_WARMUP_RUNS):
                self.run()
        self.zero_states()

    def zero_states(self) -> None:
        """Back to the reset state (zeros), in place: the bound buffers stay where they are."""
        for states in self._states:
            for name, zeros in self._zeros.items():
                states[name].update_inplace(zeros)
        for line in self._lines.values():
            line.reset()
        self._parity = 0

    def run(self) -> None:
        """One hop: ``audio`` in, ``sources`` out, states advanced."""
        for upload in self._uploads:
            upload()
        parity = self._parity
        self.session.run_with_iobinding(self._bindings[parity], self._run_options[parity])
        for download in self._downloads:
            download()
        for advance in self._advances:
            advance()
        self._parity = parity ^ 1


def _device_to_host(array: np.ndarray, value: Any) -> Callable[[], None]:
    """A copy of the GPU ``value`` into ``array`` that allocates nothing: cudaMemcpy from the
    CUDA runtime onnxruntime has loaded (onnxruntime's own copy_tensors has no transfer for
    its built-in CUDA provider)."""
    import ctypes

    major = int(str(_cuda_version()).split(".")[0])
    memcpy = ctypes.CDLL(f"libcudart.so.{major}").cudaMemcpy
    memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    memcpy.restype = ctypes.c_int
    args = (array.ctypes.data, value.data_ptr(), array.nbytes, 2)  # 2: device to host

    def copy() -> None:
        if memcpy(*args):
            raise RuntimeError("cudaMemcpy of the sources from the GPU failed")

    return copy


def _cuda_version() -> str:
    import onnxruntime as ort

    return ort.capi.build_and_package_info.cuda_version
