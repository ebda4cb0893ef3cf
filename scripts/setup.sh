#!/usr/bin/env bash
# Install rtsep and what it needs on a fresh Debian machine (run as root).
#   bash scripts/setup.sh          runtime: separate files, play live, benchmark
#   bash scripts/setup.sh --dev    + training (TensorFlow), export and the test tools
#   bash scripts/setup.sh --gpu    + onnxruntime-gpu with its CUDA and cuDNN libraries (any order,
#                                    with --dev too), for an NVIDIA machine
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libsndfile1 libportaudio2 jackd2)
extras=""
gpu=0
for arg in "$@"; do
  case "$arg" in
    --dev)
      # fluidsynth + soundfonts + Hydrogen kits render training data; ffmpeg reads .stem.mp4
      packages+=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont hydrogen-drumkits ffmpeg
                musescore-general-soundfont-small)
      extras="[train,dev]" ;;
    --gpu) gpu=1 ;;
    *) echo "setup.sh: unknown option $arg: use --dev and/or --gpu" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e ".${extras}"
if (( gpu )); then
  # Both packages install the module onnxruntime: the GPU one must replace the CPU one,
  # not land beside it (whichever pip writes last wins, file by file).
  python3 -m pip uninstall -q -y onnxruntime onnxruntime-gpu
  python3 -m pip install -q "onnxruntime-gpu[cuda,cudnn]"
fi
echo "rtsep installed ($(python3 -m pip show rtsep | grep ^Version))"
