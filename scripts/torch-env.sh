# Sourced by the scripts that run built binaries elsewhere (gpu-check.sh, gpu-bench-train.sh):
# sets `python` to the absolute path of $PYTHON (default python3) and `have_torch` (1 when it
# imports torch), and then puts that torch's lib folder first in LD_LIBRARY_PATH, as the
# binaries' rpath names this checkout's venv, which another machine may lack (and a machine's
# own LD_LIBRARY_PATH may not hold libtorch).
python=$(command -v "${PYTHON:-python3}" || echo "${PYTHON:-python3}")
python=$(realpath -s "$python" 2>/dev/null || echo "$python") # absolute: the scripts change folder
have_torch=0
if "$python" -c 'import torch' 2>/dev/null; then
  have_torch=1
  torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
