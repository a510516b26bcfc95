#!/usr/bin/env bash
# The seed paper's central claim, on our data: test accuracy after a few epochs of
# EP against the step budget per phase, gradient-flow EP against cSB-EP, on
# FashionMNIST with the default dense network (configs/fashion_mnist.json).
# Free-phase budgets 5, 10, 20, 40, 80 steps; each nudged phase gets about a third.
#
# Usage: scripts/step_budget_study.sh [EPOCHS] [OUT_DIR]    (defaults: 5, runs/step_budget)
# Writes OUT_DIR/sweep.csv, sweep.jsonl, sweep_test_acc.svg, sweep_free_energy.svg.
# Interrupted? Run it again: finished runs are reused, unfinished ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-5}"
out="${2:-runs/step_budget}"
eqprop="${EQPROP:-build/eqprop}"  # EQPROP=path: another binary
[ -x "$eqprop" ] || bash scripts/build.sh
exec "$eqprop" sweep --config configs/fashion_mnist.json --out "$out" \
  --set training.epochs="$epochs" --set dynamics.dt=0.5 \
  --sweep dynamics.t_free=5,10,20,40,80 --with dynamics.t_nudge=2,4,7,14,27 \
  --variant gradient_flow:dynamics.integrator=gradient_flow \
  --variant csb:dynamics.integrator=csb --variant csb:dynamics.gamma=0.5 --variant csb:dynamics.a0=1
