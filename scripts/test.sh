#!/usr/bin/env bash
# Run the whole test suite, benchmarks (short mode) included, against a real JACK server.
# Starts jackd (dummy backend, paced like a sound card) unless one is already running.
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
if ! JACK_NO_START_SERVER=1 jack_lsp >/dev/null 2>&1; then
  JACK_NO_AUDIO_RESERVATION=1 jackd -d dummy -r 44100 -p 128 >/tmp/rtsep-jackd.log 2>&1 &
  started=$!
  trap 'kill "$started" 2>/dev/null || true; wait "$started" 2>/dev/null || true' EXIT
  jack_wait -w -t 20 >/dev/null 2>&1
fi
export RTSEP_BENCH_SHORT=1
python3 -m pytest -q "$@"
