#!/usr/bin/env bash
# Strong scaling of data-parallel EP on CPU ranks: one epoch of a FashionMNIST subset
# (global batch fixed), 1 process vs N MPI ranks of one OpenMP thread each; writes
# the per-epoch seconds of each run (metrics.jsonl) to perf/results/scaling/cpu.jsonl.
# usage: perf/scaling_cpu.sh build/eqprop [RANKS...]   (default ranks: 2)
set -euo pipefail
binary=${1:?usage: perf/scaling_cpu.sh EQPROP_BINARY [RANKS...]}
shift
ranks=("${@:-2}")
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results/scaling"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
args=(train --config "$here/../configs/fashion_mnist.json" --device cpu --set training.epochs=1
      --set training.batch_size=200 --set data.train_limit=6000 --set data.test_limit=2000)
record() {  # ranks, run dir
  python3 - "$1" "$2/metrics.jsonl" "$(nproc)" <<'PY'
import json, sys
ranks, path, cores = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r = json.loads(open(path).readline())
print(json.dumps({"ranks": ranks, "cores": cores, "epoch_seconds": r["seconds"],
                  "samples_per_s": r["samples_per_s"], "test_acc": r["test_acc"], "train_loss": r["train_loss"]}))
PY
}
{
  OMP_NUM_THREADS=1 "$binary" "${args[@]}" --out "$work/r1" > /dev/null
  record 1 "$work/r1"
  for n in "${ranks[@]}"; do
    mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -x OMP_NUM_THREADS=1 -np "$n" \
      "$binary" "${args[@]}" --out "$work/r$n" > /dev/null
    record "$n" "$work/r$n"
  done
} | tee "$out/cpu.jsonl"
