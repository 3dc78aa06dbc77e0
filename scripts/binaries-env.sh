# Sourced by the scripts that run built binaries, maybe on another machine (gpu-check.sh,
# gpu-bench-train.sh), with their arguments BIN_DIR OUT_DIR: sets `here` (the checkout), `bin`
# and `out` (absolute; OUT_DIR is created), `python` (the absolute path of $PYTHON, default
# python3) and `have_torch` (1 when it imports torch), and then puts that torch's lib folder first
# in LD_LIBRARY_PATH, as the binaries' rpath names this checkout's venv, which another machine
# may lack (and a machine's own LD_LIBRARY_PATH may not hold libtorch).
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR OUT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
python=$(command -v "${PYTHON:-python3}" || echo "${PYTHON:-python3}")
python=$(realpath -s "$python" 2>/dev/null || echo "$python") # absolute: the scripts change folder
have_torch=0
if "$python" -c 'import torch' 2>/dev/null; then
  have_torch=1
  torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
