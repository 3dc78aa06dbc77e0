#!/usr/bin/env bash
# Idempotent setup of the project-local Python venv that provides libtorch.
#   scripts/setup.sh              torch==2.11.0 (libtorch for tch/torch-sys)
#   scripts/setup.sh --reference  also the pinned Python reference (fixture generation, benchmarks)
# The Rust binaries never need Python at run time; the venv only supplies libtorch's shared libs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"  # .cargo/config.toml expects it here
TORCH_VERSION=2.11.0
REFERENCE_REQUIREMENTS="$root/fixtures/requirements.txt"  # exact pins of the Python reference

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating venv $venv" >&2
  "$python" -m venv "$venv"
fi
have_torch="$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
if [ "${have_torch%%+*}" != "$TORCH_VERSION" ]; then
  echo "setup: installing torch==$TORCH_VERSION into $venv (once; large download)" >&2
  "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
fi
# A stable path to libtorch for torch-sys (.cargo/config.toml points LIBTORCH here).
torch_dir="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
ln -sfn "$torch_dir" "$venv/libtorch"
# Headers the c10d shim's ProcessGroupNCCL needs beyond the wheel (build.rs): CUDA's crt and
# CCCL, pinned to torch's CUDA 13.0 (cuda-toolkit 13.0.2). Skipped for a CPU-only libtorch.
nvidia_include="$(dirname "$torch_dir")/nvidia/cu13/include"
if [ -e "$torch_dir/lib/libtorch_cuda.so" ] &&
   { [ ! -e "$nvidia_include/crt/host_config.h" ] || [ ! -e "$nvidia_include/cccl/cuda/std/version" ]; }; then
  echo "setup: installing CUDA crt/cccl headers for ProcessGroupNCCL" >&2
  "$venv/bin/python" -m pip install --quiet "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85"
fi
if [ "${1:-}" = "--reference" ]; then
  # A no-op (no download) when the exact pins are already installed; applies pin changes otherwise.
  "$venv/bin/python" -m pip install --quiet -r "$REFERENCE_REQUIREMENTS"
  # GluonTS (evaluation metrics, FileDataset) needs pandas < 3: its own venv, made by eval.py.
  "$venv/bin/python" -c 'import sys; sys.path.insert(0, "'"$root"'/fixtures"); from eval import gluonts_python; gluonts_python()'
fi
