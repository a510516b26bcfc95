#!/usr/bin/env bash
# The main job: installs what is missing, builds the eqprop command (not the tests;
# the CUDA backend only where a GPU is present), and trains the default
# FashionMNIST network (configs/fashion_mnist.json) on the best device available.
# Output in runs/fashion_mnist/ (metrics.jsonl, model.safetensors, config.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh --training
exec build/eqprop train --config configs/fashion_mnist.json --device auto --out runs/fashion_mnist "$@"
