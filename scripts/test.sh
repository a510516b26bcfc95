#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (CPU backend, and the CUDA
# backend where nvcc is found), and runs every test with ctest. GPU tests skip
# with a message on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
