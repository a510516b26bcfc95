#!/usr/bin/env bash
# Data-parallel EP on CPU ranks, one OpenMP thread per rank, one epoch of a
# FashionMNIST subset each run:
#   strong scaling: the same global batch (200) and samples (6000) on 1 and N ranks;
#   weak scaling:   200 samples per rank in each global batch and 6000 per rank in
#                   the epoch, so each rank's share of the work stays the same.
# Writes one line per run (per-epoch seconds and rates from metrics.jsonl) and a
# header (date, commit, load average) to perf/results/scaling/cpu.jsonl.
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
args() {  # ranks of the global batch (1: strong scaling)
  echo train --config "$here/../configs/fashion_mnist.json" --device cpu --set training.epochs=1 \
    --set training.batch_size=$((200 * $1)) --set data.train_limit=$((6000 * $1)) --set data.test_limit=2000
}
record() {  # mode, ranks, run dir
  python3 - "$1" "$2" "$3/metrics.jsonl" "$(nproc)" <<'PY'
import json, sys
mode, ranks, path, cores = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
r = json.loads(open(path).readline())
print(json.dumps({"scaling": mode, "ranks": ranks, "cores": cores, "epoch_seconds": r["seconds"],
                  "samples_per_s": r["samples_per_s"], "test_acc": r["test_acc"], "train_loss": r["train_loss"]}))
PY
}
run() {  # mode, ranks, scale of the batch and the data
  local dir="$work/$1_$2"
  if [ "$2" = 1 ]; then
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=1 "$binary" $(args "$3") --out "$dir" > /dev/null
  else
    # shellcheck disable=SC2046
    mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -x OMP_NUM_THREADS=1 -np "$2" \
      "$binary" $(args "$3") --out "$dir" > /dev/null
  fi
  record "$1" "$2" "$dir"
}
{
  printf '{"run": "scaling_cpu", "date": "%s", "commit": "%s", "loadavg_start": "%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git -C "$here/.." rev-parse --short HEAD 2> /dev/null || echo unknown)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  run strong 1 1
  for n in "${ranks[@]}"; do run strong "$n" 1; done
  for n in "${ranks[@]}"; do run weak "$n" "$n"; done
} | tee -a "$out/cpu.jsonl"
