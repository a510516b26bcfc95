#!/usr/bin/env bash
# The shape of the seed paper's Fig. 3 on FashionMNIST: test accuracy against the
# intensity of the Langevin noise in the dynamics, and against beta under noise,
# for gradient-flow EP and cSB-EP (configs/fashion_mnist.json, dense 784-500-10).
#
# Usage: scripts/noise_robustness_study.sh [EPOCHS] [TRAIN_LIMIT] [OUT_DIR]
#        (defaults: 5 epochs, all 60000 training images, runs/noise_robustness)
# Writes OUT_DIR/noise/, OUT_DIR/beta/ and OUT_DIR/temperature/, each with sweep.csv, sweep.jsonl and
# sweep_test_acc.svg. One sigma is not one noise level across integrators (cSB's
# stationary variance is a0/gamma times gradient flow's at the same sigma), so the
# third sweep sets the temperature T instead (dynamics.temperature: sigma = sqrt(2T)
# for gradient flow, sqrt(2T gamma/a0) for cSB; T = 0.00125 is sigma = 0.05 for
# gradient flow). Noisy dynamics draw one Gaussian per unit and step: on the
# CPU backend that costs far more than the noiseless step, so a smaller
# TRAIN_LIMIT gives a quicker first look. Interrupted? Run it again: finished runs
# are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-5}"
limit="${2:-0}"
out="${3:-runs/noise_robustness}"
eqprop="${EQPROP:-build/eqprop}"  # EQPROP=path: another binary
[ -x "$eqprop" ] || bash scripts/build.sh
common=(--config configs/fashion_mnist.json --set training.epochs="$epochs" --set data.train_limit="$limit"
        --set dynamics.dt=0.5
        --variant gradient_flow:dynamics.integrator=gradient_flow
        --variant csb:dynamics.integrator=csb --variant csb:dynamics.gamma=0.5)
"$eqprop" sweep "${common[@]}" --out "$out/noise" --sweep dynamics.noise=0,0.02,0.05,0.1,0.2
"$eqprop" sweep "${common[@]}" --out "$out/beta" --set dynamics.noise=0.05 --sweep ep.beta=0.1,0.2,0.5,0.9
"$eqprop" sweep "${common[@]}" --out "$out/temperature" --sweep dynamics.temperature=0,0.0002,0.0005,0.00125,0.005
