#!/usr/bin/env bash
# GPU readiness check (benchmarks/README.md "GPU readiness check"): about 5 minutes on one GPU.
# DRG/DFG it/s at AWA2 shapes in fp32 and bf16 next to the same run's matmul rate, a tiny
# end-to-end pipeline on CUDA, and its CPU-vs-CUDA metric difference, as one table.
#   benchmarks/gpu_check.sh                  # on CUDA
#   benchmarks/gpu_check.sh --device cpu --shape tiny --pipeline tiny   # no GPU (what the test runs)
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv || true
fi
export ZERODIFFPP_NO_PROGRESS=1
exec python benchmarks/gpu_check.py "$@"
