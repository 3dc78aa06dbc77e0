#!/usr/bin/env bash
# The GPU session that trained stage 1 of models/chronos-bolt-2m, with binaries built on another
# machine (`cargo build --release --bins`) and carried: checks CUDA inference against the CPU,
# measures the training speed on 300 steps, then trains for as many steps as fit in
# TRAIN_SECONDS with scripts/train-bundled.sh, and copies the result to OUT.
#
#   OUT=/some/dir TRAIN_SECONDS=280 scripts/gpu-train-bundled.sh
#
# Needs a python3 with torch 2.11 (for its libtorch) and pandas (for the comparison), and
# data/bundled/history.arrow (made by scripts/train-bundled.sh where ../shared/datasets is).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
TRAIN_SECONDS=${TRAIN_SECONDS:-280}
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L
bin=target/release

echo "== CUDA inference vs CPU (Bolt fixture model, example data)"
for device in cpu cuda; do
  "$bin/predict" --device "$device" --model fixtures/bolt/models/bolt-reg \
    --input fixtures/example/m4_hourly_5.csv --prediction-length 72 --output "/tmp/predict-$device.csv"
done
python3 - /tmp <<'PY'
import sys, pandas as pd
a = pd.read_csv(f"{sys.argv[1]}/predict-cpu.csv"); b = pd.read_csv(f"{sys.argv[1]}/predict-cuda.csv")
num = [c for c in a.columns if a[c].dtype.kind == "f"]
rel = ((a[num] - b[num]).abs() / (1 + a[num].abs())).max().max()
print(f"predict cuda vs cpu: {len(a)} rows, max |diff|/(1+|cpu|) = {rel:.3e}")
PY

echo "== speed on 300 steps"
start=$(date +%s)
scripts/train-bundled.sh --device cuda --max-steps 300 --output-dir /tmp/calib --bin "$bin" 2>&1 | tee "$OUT/calib.log"
rate=$(grep -o '[0-9.]* steps/s' "$OUT/calib.log" | tail -1 | cut -d' ' -f1)
steps=$(python3 -c "print(max(500, int($rate * $TRAIN_SECONDS) // 500 * 500))")
echo "calibration: $rate steps/s (with data generation: $(( $(date +%s) - start )) s) -> --max-steps $steps"

echo "== training"
start=$(date +%s)
# A guard against a wrong estimate: past it, the last complete checkpoint is kept instead.
status=0
timeout $(( TRAIN_SECONDS * 3 / 2 + 30 )) scripts/train-bundled.sh --device cuda \
  --max-steps "$steps" --output-dir /tmp/run --bin "$bin" 2>&1 | tee "$OUT/train.log" || status=$?
echo "training wall time: $(( $(date +%s) - start )) s (exit status $status)"
run=$(ls -d /tmp/run/run-* | tail -1)
cp "$run/metrics.jsonl" "$OUT/"
checkpoint="$run/checkpoint-final"
[[ -d $checkpoint ]] || checkpoint=$(ls -d "$run"/checkpoint-* | sort -V | tail -1)
echo "copying $checkpoint"
mkdir -p "$OUT/final"
cp "$checkpoint"/*.json "$checkpoint/model.safetensors" "$OUT/final/"
