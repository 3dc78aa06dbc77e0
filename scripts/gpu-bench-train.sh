#!/usr/bin/env bash
# Training speed on a GPU: `train` against upstream's HF Trainer, in one run on the same machine.
# Not part of CI: for a session with a GPU (the CPU benchmark is `cargo bench --bench train`).
#
#   scripts/gpu-bench-train.sh BIN_DIR OUT_DIR
#
# BIN_DIR holds `train` and `kernel-synth` built elsewhere (`cargo build --release`); OUT_DIR
# receives the runs, logs and `bench.txt`. chronos-t5-tiny (configs/train/chronos-t5-tiny.yaml:
# random init, batch 32, context 512, prediction 64, fused AdamW) on 512 KernelSynth series, in
# f32, TF32 and bf16 autocast, each precision Rust then Python (fixtures/bench_train.py, HF
# Trainer as upstream train.py sets it up, eager, from pre-tokenised windows): steps/s over
# $STEPS steps (default 180) after $WARMUP (default 20; both multiples of 10), and the ratio.
# COMPILE=1 adds HF Trainer with TF32 and torch_compile, as upstream's config has it.
#
# Needs a GPU, and for the Python side a $PYTHON (default python3) that imports torch 2.11,
# chronos and transformers (`scripts/setup.sh --reference`, or PYTHONPATH); without them only
# Rust runs. libtorch: that of $PYTHON (scripts/binaries-env.sh). Two minutes or so.
set -euo pipefail
# shellcheck source=scripts/binaries-env.sh
. "$(dirname "$0")/binaries-env.sh"
steps=${STEPS:-180}
warmup=${WARMUP:-20}
if [ $((steps % 10)) -ne 0 ] || [ $((warmup % 10)) -ne 0 ] || [ "$warmup" -lt 10 ]; then
  echo "$0: STEPS ($steps) and WARMUP ($warmup) must be multiples of 10, WARMUP at least 10" >&2
  exit 2
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "$0: no GPU (nvidia-smi -L fails)" >&2
  exit 1
fi
have_reference=0
"$python" -c 'import chronos, transformers' 2>/dev/null && have_reference=1

cd "$out"
"$bin/kernel-synth" --num-series 512 --length 1024 --seed 2 --threads 4 --output t5.arrow >/dev/null 2>&1
python_bench() { # LOG [FLAGS...]: HF Trainer's JSON line, or nothing
  local log=$1
  shift
  timeout 600 "$python" "$here/fixtures/bench_train.py" --device cuda --optim adamw_torch_fused \
    --data t5.arrow --batch 32 --context 512 --horizon 64 --warmup "$warmup" --steps "$steps" "$@" \
    2> "$log" | tail -1 || true
}
{
  echo "== chronos-t5-tiny on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1): 32 windows a step, steps/s over steps $((warmup + 1))-$((warmup + steps))"
  [ "$have_reference" = 1 ] || echo "($python does not import chronos and transformers: Rust only)"
  for precision in f32 tf32 bf16; do
    name=t5-$precision
    rm -rf "$name"
    flags=(--tf32 false)
    py_flags=()
    if [ "$precision" = tf32 ]; then
      flags=(--tf32 true)
      py_flags=(--tf32)
    elif [ "$precision" = bf16 ]; then
      flags=(--tf32 false --bf16 true)
      py_flags=(--bf16)
    fi
    timeout 600 "$bin/train" --quiet --device cuda \
      --config "$here/configs/train/chronos-t5-tiny.yaml" --training-data-paths "[\"$out/t5.arrow\"]" \
      --probability '[1.0]' --max-steps $((warmup + steps)) --log-steps 10 --save-steps 1000000 \
      --output-dir "$name" "${flags[@]}" > "$name.log" 2>&1
    py=""
    if [ "$have_reference" = 1 ]; then
      py=$(python_bench "$name-python.log" "${py_flags[@]}")
      py=${py:-failed}
    fi
    "$python" - "$name/run-0/metrics.jsonl" "$warmup" "$precision" "$py" <<'PY'
import json, sys
path, warmup, precision, py = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {r["step"]: r for r in map(json.loads, open(path)) if "loss" in r}
first, last = rows[warmup], rows[max(rows)]
rate = (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])
line = f"{precision:>5}: Rust {rate:6.2f} steps/s (loss {first['loss']:.4f} -> {last['loss']:.4f})"
if py == "failed":
    line += f", HF Trainer failed (t5-{precision}-python.log)"
elif py:
    theirs = json.loads(py)["steps_per_s"]
    line += f", HF Trainer {theirs:6.2f} steps/s, ratio {rate / theirs:.2f}x"
print(line)
PY
  done
  if [ "$have_reference" = 1 ] && [ "${COMPILE:-0}" = 1 ]; then
    py=$(python_bench t5-compile-python.log --tf32 --torch-compile)
    echo "tf32 + torch_compile: HF Trainer ${py:-failed (t5-compile-python.log)}"
  fi
} | tee bench.txt
