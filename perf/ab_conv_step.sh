#!/usr/bin/env bash
# Interleaved A/B of one convolutional EP training step on the CPU: two eqprop
# binaries, or one binary under two training.conv_path values, timed in turns
# (A B A B ...), so that load from other processes falls on both alike; prints
# each run's ms_per_batch_min and the ratio of the medians.
#   perf/ab_conv_step.sh A_BINARY B_BINARY [ROUNDS] [PRECISION] [BATCH] [THREADS]
# Defaults: 3 rounds, bf16, batch 16, 1 thread, on configs/cifar10_conv4_laborieux.json
# with T1/T2 = 20/4. CONV_PATH_A / CONV_PATH_B: each side's training.conv_path
# (default library). SET_A / SET_B: further settings of each side, space-separated
# key=value pairs (e.g. SET_B=conv.nudged_couplings=direct). The evidence of
# kernels/dnnl_convolution_routes.h:
#   CONV_PATH_B=library_only perf/ab_conv_step.sh build/eqprop build/eqprop 5 fp32 16 1
set -euo pipefail
a=$1 b=$2 rounds=${3:-3} precision=${4:-bf16} batch=${5:-16} threads=${6:-1}
path_a=${CONV_PATH_A:-library} path_b=${CONV_PATH_B:-library}
set_a=${SET_A:-} set_b=${SET_B:-}
cd "$(dirname "$0")/.."
run() {
  local extra=()
  for kv in $3; do extra+=(--set "$kv"); done
  OMP_NUM_THREADS=$threads "$1" bench --config configs/cifar10_conv4_laborieux.json --device cpu --repeats 3 \
    --warmup 1 --set training.batch_size="$batch" --set training.eval_batch_size="$batch" --set dynamics.t_free=20 \
    --set dynamics.t_nudge=4 --set training.conv_path="$2" --set training.gemm_precision="$precision" "${extra[@]}" |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["ms_per_batch_min"])'
}
echo "A: $a, conv_path $path_a ${set_a}; B: $b, conv_path $path_b ${set_b}; $precision, batch $batch, $threads thread(s)"
ta=() tb=()
for ((r = 1; r <= rounds; ++r)); do
  ta+=("$(run "$a" "$path_a" "$set_a")") tb+=("$(run "$b" "$path_b" "$set_b")")
  echo "round $r: A ${ta[-1]} ms  B ${tb[-1]} ms"
done
python3 - "${ta[*]}" "${tb[*]}" <<'PY'
import statistics, sys
a = [float(v) for v in sys.argv[1].split()]
b = [float(v) for v in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median A {ma:.1f} ms  B {mb:.1f} ms  A/B {ma / mb:.3f}")
PY
