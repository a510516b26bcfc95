#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (CPU backend, and the CUDA
# backend where nvcc is found), and runs every test with ctest. On a machine without
# a GPU the GPU tests are reported as skipped (their reason: ctest -V).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
