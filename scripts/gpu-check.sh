#!/usr/bin/env bash
# `train` on a GPU, checked against the CPU: data parallelism with NCCL (issue 7) and mixed
# precision (bf16 autocast, TF32; issue 6). Not part of CI: for a session with a GPU.
#
#   scripts/gpu-check.sh BIN_DIR OUT_DIR
#
# BIN_DIR holds `train` and `kernel-synth` built elsewhere (`cargo build --release`, e.g.
# target/release); OUT_DIR receives the runs, logs and `compare.txt`. Trains a tiny Chronos-Bolt
# (random init, no dropout, TF32 off unless said) for 30 steps on 64 KernelSynth series:
#
#   cuda-ddp   `--nproc 1 --device cuda`: one rank, ProcessGroupNCCL on cuda:0 (--check-sync 10)
#   cuda       the same without --nproc (no process group)
#   cuda-tf32  `--tf32 true`: TF32 matmuls
#   cuda-bf16  `--bf16 true`: forward passes under bfloat16 autocast
#   cpu-ddp    `--nproc 1 --device cpu`: one rank, ProcessGroupGloo
#   cpu        the same without --nproc
#   cpu-bf16   `--bf16 true` on the CPU
#
# and prints the logged losses and the largest |a - b| / (1 + |b|) over the final weights of
# pairs of runs. Expected: the one-rank runs equal the plain ones bit for bit on each device (the
# mean over one rank is exact); CUDA vs CPU in f32 differ by float rounding only (about 1e-6);
# TF32 and bf16 differ from f32 (so they took effect) by far less than training moves the
# weights, and bf16 on CUDA is near bf16 on the CPU. Without a GPU (no nvidia-smi, or GPU=0)
# only the CPU runs happen. About a minute on a GPU machine. Speed on a GPU, against upstream's
# HF Trainer: scripts/gpu-bench-train.sh.
#
# libtorch: that of $PYTHON (scripts/binaries-env.sh). The weights are compared with $PYTHON
# (default python3) and torch when they import, else only the losses are printed.
set -euo pipefail
# shellcheck source=scripts/binaries-env.sh
. "$(dirname "$0")/binaries-env.sh"
gpu=${GPU:-1}
if [ "$gpu" = 1 ] && ! nvidia-smi -L 2>/dev/null; then
  gpu=0
fi
[ "$gpu" = 1 ] || echo "no GPU: CPU runs only" >&2

cd "$out"
"$bin/kernel-synth" --num-series 64 --length 256 --seed 1 --threads 4 --output data.arrow >/dev/null
cat > tiny.yaml <<EOF
model_family: bolt
training_data_paths: ["$out/data.arrow"]
context_length: 64
prediction_length: 16
min_past: 32
max_steps: 30
save_steps: 1000
log_steps: 5
per_device_train_batch_size: 16
gradient_accumulation_steps: 1
learning_rate: 0.001
shuffle_buffer_length: 100
seed: 3
random_init: true
tf32: false
input_patch_size: 8
input_patch_stride: 8
# levels q with 16 q never an integer: no exactly cancelling pinball gradients, whose rounding
# residue AdamW's first step would amplify to about lr (see tests/distributed_train.rs)
quantiles: [0.1234, 0.4321, 0.8765]
model_config: {d_model: 32, d_ff: 64, d_kv: 16, num_heads: 2, num_layers: 1, num_decoder_layers: 1, dropout_rate: 0.0}
EOF

run() { # NAME [TRAIN-FLAGS...] [-- CONFIG-OVERRIDES...]
  local name=$1
  shift
  local flags=() overrides=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    flags+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  overrides=("$@")
  rm -rf "$name"
  echo "== $name: train ${flags[*]} ${overrides[*]}"
  local start=$SECONDS
  timeout 120 "$bin/train" --quiet "${flags[@]}" --config tiny.yaml --output-dir "$name" \
    "${overrides[@]}" 2>&1 | tee "$name.log"
  echo "($name: $((SECONDS - start)) s)"
}
runs=(cpu-ddp cpu cpu-bf16)
if [ "$gpu" = 1 ]; then
  run cuda-ddp --device cuda --check-sync 10 --nproc 1
  run cuda --device cuda
  run cuda-tf32 --device cuda -- --tf32 true
  run cuda-bf16 --device cuda -- --bf16 true
  runs=(cuda-ddp cuda cuda-tf32 cuda-bf16 "${runs[@]}")
fi
run cpu-ddp --device cpu --threads 4 --check-sync 10 --nproc 1
run cpu --device cpu --threads 4
run cpu-bf16 --device cpu --threads 4 -- --bf16 true

{
  echo "== losses (metrics.jsonl, every 5 steps)"
  for name in "${runs[@]}"; do
    printf '%-9s %s\n' "$name" "$(grep -o '"loss":[^,}]*' "$name/run-0/metrics.jsonl" | cut -d: -f2 | tr '\n' ' ')"
  done
  if [ "$have_torch" = 1 ]; then
    echo "== final weights: max |a - b| / (1 + |b|), and whether bit for bit equal"
    "$python" - "${runs[@]}" <<'PY'
import json, struct, sys
import torch

def weights(name):
    with open(f"{name}/run-0/checkpoint-final/model.safetensors", "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        assert info["dtype"] == "F32", (key, info["dtype"])
        a, b = info["data_offsets"]
        out[key] = torch.frombuffer(bytearray(body[a:b]), dtype=torch.float32).reshape(info["shape"])
    return out

runs = {name: weights(name) for name in sys.argv[1:]}
pairs = [
    ("cuda-ddp", "cuda"), ("cpu-ddp", "cpu"), ("cuda-ddp", "cpu-ddp"), ("cuda", "cpu"),
    ("cuda-tf32", "cuda"), ("cuda-bf16", "cuda"), ("cpu-bf16", "cpu"), ("cuda-bf16", "cpu-bf16"),
]
for a, b in pairs:
    if a not in runs or b not in runs:
        continue
    wa, wb = runs[a], runs[b]
    assert wa.keys() == wb.keys()
    rel = max(((wa[k].double() - wb[k].double()).abs() / (1 + wb[k].double().abs())).max().item() for k in wa)
    equal = all(torch.equal(wa[k], wb[k]) for k in wa)
    print(f"{a:>9} vs {b:<8} max rel {rel:.3e}  bitwise equal: {equal}")
PY
  fi
} | tee compare.txt
