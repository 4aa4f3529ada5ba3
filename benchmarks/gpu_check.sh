#!/usr/bin/env bash
# GPU check of the fused weighted-sum op, for a machine with an NVIDIA GPU, torch and nvcc:
#   1. builds the extensions in place for the visible GPU (CPU and CUDA kernels),
#   2. runs the kernel tests on CUDA for the CUDA and Triton backends (and the reference),
#   3. prints forward, backward and forward+backward bandwidth of every provider against a device
#      copy measured in the same run, and writes the tables to $OUT (JSON and markdown).
#
#   bash benchmarks/gpu_check.sh            # PYTHON, OUT and TEST_TIMEOUT may be set
#
# Nothing is downloaded: torch, triton and pytest must already be importable by $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-benchmarks/kernels/results}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" - <<'EOF'
import torch
assert torch.cuda.is_available(), "no CUDA device is visible to torch"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(),
      "capability", torch.cuda.get_device_capability())
EOF

step "build (TORCH_CUDA_ARCH_LIST from the visible GPU unless set)"
unset IFNAS_NO_CUDA
if [ -z "${CUDA_HOME:-}" ] && ! [ -x /usr/local/cuda/bin/nvcc ] && command -v nvcc >/dev/null; then
  CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
  export CUDA_HOME
fi
LOG=${TMPDIR:-/tmp}/ifnas_build_ext.log
time "$PYTHON" setup.py build_ext --inplace >"$LOG" 2>&1 || { tail -50 "$LOG"; exit 1; }
"$PYTHON" - <<'EOF'
import ifnas_kernels
report = ifnas_kernels.backends()
for name, info in report.items():
    print(f"{name:10s} built={info.built!s:5s} usable={info.usable!s:5s} {info.reason}")
assert report["cuda"].usable and report["triton"].usable, "cuda and triton must both be usable"
from ifnas_kernels import _cuda
print("CUDA kernels compiled for", _cuda.cuda_arch_list, "with CUDA runtime", _cuda.cuda_version)
EOF

step "kernel tests on CUDA (cuda, triton and reference backends)"
timeout "$TEST_TIMEOUT" "$PYTHON" -m pytest tests/kernels/test_weighted_sum_backends.py \
  -q -p no:cacheprovider -o addopts= -k "cuda-cuda or triton-cuda or reference-cuda" -ra

step "bandwidth against a device copy (K = 16, 2.4M float32; then 16M bfloat16)"
"$PYTHON" benchmarks/kernels/bench_weighted_sum.py --device cuda --num-inputs 16 \
  --numel 2400000 --dtype float32 --out "$OUT"
"$PYTHON" benchmarks/kernels/bench_weighted_sum.py --device cuda --num-inputs 8 \
  --numel 16000000 --dtype bfloat16 --out "$OUT"

step "done"
