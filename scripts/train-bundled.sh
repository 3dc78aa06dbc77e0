#!/usr/bin/env bash
# Reproduces stage 1 of the bundled model models/chronos-bolt-2m (see its README.md): makes the
# training data if it is not there yet, then trains with configs/train/chronos-bolt-2m.yaml.
# Stage 2 continues from its weights: scripts/train-bundled-cpu.sh.
#
#   scripts/train-bundled.sh [--device cpu|cuda] [--max-steps N] [--output-dir DIR] [--bin DIR]
#                            [--datasets DIR] [--data-only]
#
# Without --max-steps, the config's max_steps (the value the bundled model was trained with).
#
# Data (deterministic; their SHA-256 is printed):
#   data/bundled/history.arrow      every series of the 11 shared datasets before its evaluation
#                                   window (`evaluate history`, needs ../shared/datasets)
#   data/bundled/kernelsynth.arrow  10,000 KernelSynth series, seed 1
set -euo pipefail
cd "$(dirname "$0")/.."

device=cpu
steps=()
output_dir=/work/runs/chronos-bolt-2m
bin=target/release
datasets=../shared/datasets
data_only=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --max-steps) steps=(--max-steps "$2"); shift 2 ;;
    --output-dir) output_dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --datasets) datasets=$2; shift 2 ;;
    --data-only) data_only=true; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p data/bundled
if [[ ! -f data/bundled/history.arrow ]]; then
  "$bin/evaluate" history --config fixtures/eval/shared.yaml --data-dir "$datasets" \
    --output data/bundled/history.arrow.tmp
  mv data/bundled/history.arrow.tmp data/bundled/history.arrow
fi
if [[ ! -f data/bundled/kernelsynth.arrow ]]; then
  "$bin/kernel-synth" -N 10000 --seed 1 --output data/bundled/kernelsynth.arrow.tmp
  mv data/bundled/kernelsynth.arrow.tmp data/bundled/kernelsynth.arrow
fi
sha256sum data/bundled/history.arrow data/bundled/kernelsynth.arrow
if $data_only; then
  exit 0
fi

"$bin/train" --device "$device" --quiet --config configs/train/chronos-bolt-2m.yaml \
  "${steps[@]}" --output-dir "$output_dir"
