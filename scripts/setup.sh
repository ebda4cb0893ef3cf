#!/usr/bin/env bash
# Install rtsep and what it needs on a fresh Debian machine (run as root).
#   bash scripts/setup.sh          runtime: separate files, play live, benchmark
#   bash scripts/setup.sh --dev    + training (TensorFlow), export and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libsndfile1 libportaudio2 jackd2)
extras=""
if [[ "${1:-}" == "--dev" ]]; then
  # fluidsynth + soundfonts + Hydrogen kits render training data; ffmpeg reads .stem.mp4
  packages+=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont hydrogen-drumkits ffmpeg
            musescore-general-soundfont-small)
  extras="[train,dev]"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e ".${extras}"
echo "rtsep installed ($(python3 -m pip show rtsep | grep ^Version))"
