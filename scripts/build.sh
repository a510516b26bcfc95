#!/usr/bin/env bash
# Configures and builds eqprop into build/ (Release, ccache). The CUDA backend is
# built where nvcc is found; EQPROP_CUDA_ARCHITECTURES picks the GPU targets
# (default 90, the H100; e.g. "80;90" for A100 and H100).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${EQPROP_CUDA_ARCHITECTURES:-90}" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build --parallel "$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
grep -E "eqprop CUDA backend" build.log || true
