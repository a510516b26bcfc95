#!/usr/bin/env bash
# Fingerprints of short training runs of every model kind, with the hardware model
# off and on and with Langevin noise: one line per run with the SHA-256 of its
# checkpoint (model.safetensors) and of its per-epoch records without the wall-clock
# fields. A refactor that must not change behaviour prints the same lines before and
# after (at any thread count: results do not depend on it).
#
#   bash scripts/run_fingerprints.sh [EQPROP_BINARY] [WORK_DIR]   (defaults: build/eqprop, a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:-build/eqprop}"
work="${2:-$(mktemp -d)}"
mkdir -p "$work"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

small=(--set data.train_limit=1000 --set data.test_limit=300 --set training.epochs=2)
hardware=(--set hardware.dac.enabled=true --set hardware.dac.bits=6 --set hardware.input_dac.enabled=true
          --set hardware.adc.enabled=true --set hardware.adc.noise_sigma=0.5
          --set hardware.programming_noise.additive=0.001 --set hardware.programming_noise.multiplicative=0.01
          --set hardware.mismatch_sigma=0.02)

run() {
  local name="$1" config="$2"
  shift 2
  rm -rf "${work:?}/$name"  # a fresh run each time: train refuses a directory that holds one
  "$binary" train --config "configs/$config" --device cpu --out "$work/$name" "${small[@]}" "$@" > "$work/$name.log" 2>&1 ||
    { echo "$name: FAILED (log: $work/$name.log)"; tail -5 "$work/$name.log"; return 1; }
  local model metrics
  model=$(sha256sum "$work/$name/model.safetensors" | cut -c1-16)
  metrics=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line); r.pop("seconds", None); r.pop("samples_per_s", None)
        print(json.dumps(r, sort_keys=True))' "$work/$name/metrics.jsonl" | sha256sum | cut -c1-16)
  echo "$name model $model metrics $metrics"
}

run dense_mse fashion_mnist.json
run dense_mse_hw fashion_mnist.json "${hardware[@]}"
run dense_xent fashion_mnist_xent.json --set training.batch_size=50
run dense_csb_noise fashion_mnist.json --set dynamics.integrator=csb --set dynamics.noise=0.02 --set dynamics.pump=linear
run dense_gf_early_exit fashion_mnist.json --set dynamics.integrator=gradient_flow --set dynamics.tolerance=0.01 --set dynamics.check_every=3
run conv fashion_mnist_conv.json --set data.train_limit=256 --set data.test_limit=128 --set training.epochs=1
run conv_hw fashion_mnist_conv.json --set data.train_limit=256 --set data.test_limit=128 --set training.epochs=1 "${hardware[@]}"
run oscillator fashion_mnist_oscillator.json
run oscillator_noise_hw fashion_mnist_oscillator.json --set dynamics.noise=0.05 --set hardware.dac.enabled=true \
  --set hardware.adc.enabled=true --set hardware.adc.lo=-3.1416 --set hardware.adc.hi=3.1416
run ising fashion_mnist_ising.json
run ising_hw fashion_mnist_ising.json "${hardware[@]}" --set hardware.adc.lo=-1 --set hardware.adc.hi=1
run ising_dsb fashion_mnist_ising.json --set ising.relaxation=dsb
