#!/usr/bin/env bash
# Where the fused relaxation of a layered network (one launch per phase: the dense
# Hopfield network's kernels/fused_relaxation_block.h, the oscillator network's
# kernels/fused_oscillator_block.h, the Ising network's kernels/fused_ising_block.h) beats the GEMM path (GEMMs and a step op per
# layer and step): `eqprop bench` (one EP training step: a free phase, two nudged
# phases, the update) with training.relaxation_path = fused and = gemm, over hidden
# widths and batch sizes of a 784-H-10 MSE network; the evidence for
# RelaxationPath::automatic (fused_measured_faster in models/dense_hopfield.cpp,
# oscillator_fused_measured_faster in models/oscillator_network.cpp,
# ising_fused_measured_faster in models/ising_network.cpp).
#
# Usage: perf/relaxation_path_crossover.sh [device]   (default cpu)
#   MODEL       dense (configs/mnist.json, default), oscillator
#               (configs/fashion_mnist_oscillator.json) or ising (configs/fashion_mnist_ising.json)
#   EQPROP_BIN  the eqprop binary (default build/eqprop)
#   HIDDEN, BATCHES  space-separated lists (default "16 64 256 500 1000 2000", "16 128 512")
#   REPEATS     timed steps per run (default 5; the median is reported)
# Appends a header line and one summary per (hidden, batch) to
# perf/results/relaxation_path_crossover.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${EQPROP_BIN:-build/eqprop}"
device="${1:-cpu}"
hidden_sizes="${HIDDEN:-16 64 256 500 1000 2000}"
batches="${BATCHES:-16 128 512}"
repeats="${REPEATS:-5}"
model="${MODEL:-dense}"
case "$model" in
  dense) config=configs/mnist.json ;;
  oscillator) config=configs/fashion_mnist_oscillator.json ;;
  ising) config=configs/fashion_mnist_ising.json ;;
  *) echo "relaxation_path_crossover: MODEL must be dense, oscillator or ising, got '$model'" >&2; exit 2 ;;
esac
[ -x "$bin" ] || bash scripts/build.sh
results=perf/results/relaxation_path_crossover.jsonl
mkdir -p perf/results
printf '{"run": "relaxation_path_crossover", "date": "%s", "commit": "%s", "cpu": "%s", "threads": %s, "omp_num_threads": "%s", "loadavg_start": "%s", "device": "%s", "model": "%s"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "${OMP_NUM_THREADS:-unset}" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$device" "$model" | tee -a "$results"
bench() {  # path hidden batch
  "$bin" bench --config "$config" --device "$device" --repeats "$repeats" --warmup 2 \
    --set "model.layers=[784, $2, 10]" --set "training.batch_size=$3" --set "training.relaxation_path=$1"
}
for hidden in $hidden_sizes; do
  for batch in $batches; do
    fused=$(bench fused "$hidden" "$batch")
    gemm=$(bench gemm "$hidden" "$batch")
    python3 - "$fused" "$gemm" "$hidden" "$batch" "$(cut -d' ' -f1 /proc/loadavg)" "$model" <<'PY' | tee -a "$results"
import json, sys
fused, gemm = (json.loads(a) for a in sys.argv[1:3])
print(json.dumps({"summary": "fused vs gemm", "model": sys.argv[6], "backend": fused["backend"], "layers": [784, int(sys.argv[3]), 10],
                  "batch": int(sys.argv[4]), "fused_ms_per_batch": round(fused["ms_per_batch"], 3),
                  "gemm_ms_per_batch": round(gemm["ms_per_batch"], 3),
                  "gemm_over_fused_time": round(gemm["ms_per_batch"] / fused["ms_per_batch"], 3),
                  "fused_launches": fused.get("launches"), "gemm_launches": gemm.get("launches"),
                  "loadavg": sys.argv[5]}))
PY
  done
done
