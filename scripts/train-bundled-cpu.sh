#!/usr/bin/env bash
# Stage 2 of the bundled model on the CPU (configs/train/chronos-bolt-2m-cpu.yaml): starts the run
# under /work/runs/chronos-bolt-2m/cpu/ (outside the work tree, so it outlives a session), or
# resumes it from its last checkpoint. A session that ends kills it; the next one runs this again.
#
#   scripts/train-bundled-cpu.sh [--bin DIR]
#
# Data: the stage-1 files, copied beside the run (/work/runs/bundled) so that a new work tree
# still finds them; made by scripts/train-bundled.sh --data-only if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

data=/work/runs/bundled
run=/work/runs/chronos-bolt-2m/cpu/run-0
STAGE1_COMMIT=f5c61b6
mkdir -p "$data"
for name in history kernelsynth; do
  if [[ ! -f "$data/$name.arrow" ]]; then
    if [[ ! -f "data/bundled/$name.arrow" ]]; then
      scripts/train-bundled.sh --data-only --bin "$bin"
    fi
    cp "data/bundled/$name.arrow" "$data/$name.arrow"
  fi
done
sha256sum "$data/history.arrow" "$data/kernelsynth.arrow"

if [[ -d "$run" ]]; then
  exec "$bin/train" --quiet --resume "$run"
fi
# Stage 1's weights: models/chronos-bolt-2m as committed by the GPU session, before stage 2
# replaced them.
stage1=/work/runs/chronos-bolt-2m/stage1-weights
mkdir -p "$stage1"
for name in config.json model.safetensors; do
  git show "$STAGE1_COMMIT:models/chronos-bolt-2m/$name" > "$stage1/$name"
done
exec "$bin/train" --quiet --config configs/train/chronos-bolt-2m-cpu.yaml \
  --training-data-paths "[\"$data/history.arrow\", \"$data/kernelsynth.arrow\"]" \
  --model-id "$stage1"
