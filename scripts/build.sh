#!/usr/bin/env bash
# Configures and builds eqprop into build/ (Release, ccache), logging to build.log
# and showing cmake's [NN%] progress lines.
#   bash scripts/build.sh             everything: the eqprop command, the library, the
#                                     tests, and the CUDA backend where nvcc is found
#   bash scripts/build.sh --training  only the eqprop command, and the CUDA backend
#                                     only where a GPU is present (nvidia-smi -L): nvcc
#                                     takes minutes that a CPU-only machine never uses
# EQPROP_CUDA_ARCHITECTURES picks the GPU targets (default 90, the H100; e.g.
# "80;90" for A100 and H100).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
targets=()
what="everything"
cuda=ON
if [ "${1:-}" = "--training" ]; then
  targets=(--target eqprop)
  what="the eqprop command"
  if ! { command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; }; then
    cuda=OFF
  fi
fi
echo "build: configuring (CUDA backend ${cuda/ON/where nvcc is found}; log in build.log)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEQPROP_ENABLE_CUDA="$cuda" \
  -DCMAKE_CUDA_ARCHITECTURES="${EQPROP_CUDA_ARCHITECTURES:-90}" > build.log 2>&1 || { cat build.log; exit 1; }
grep -E "eqprop CUDA backend" build.log || true
echo "build: compiling $what with $(nproc) jobs"
set +e
cmake --build build --parallel "$(nproc)" "${targets[@]}" 2>&1 | tee -a build.log |
  grep --line-buffered -E '^\[ *[0-9]+%\] (Building|Linking|Built target)'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  tail -50 build.log
  exit "$status"
fi
echo "build: done"
