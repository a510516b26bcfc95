#!/usr/bin/env bash
# Training throughput of eqprop's CPU backend against a straightforward PyTorch
# EP implementation (perf/torch_reference_ep.py: autograd forces as published EP
# code computes them, and a lean no-autograd loop), same model and work:
# 784-500-10, batch 128, T1=30, T2=10, symmetric nudging. All runs happen here,
# back to back, so the ratios compare like with like on this machine.
#
# Usage: perf/compare_torch.sh [repeats]      (needs build/eqprop: scripts/build.sh)
# Prints one JSON line per run and a summary line with the ratios; appends them to
# perf/results/compare_torch.jsonl.
#
# BLAS: OpenBLAS 0.3.21 (Debian 12) misdetects recent Xeons and runs its generic
# SSE3 kernels; eqprop selects the AVX-512 or AVX2 kernels itself (hosttools/main.cpp),
# so the PyTorch runs get the same OPENBLAS_CORETYPE to keep the comparison fair.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-30}"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "installing Debian's python3-torch (and the fast OpenBLAS it needs)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch libopenblas0-pthread > /dev/null
fi
[ -x build/eqprop ] || bash scripts/build.sh

core="${OPENBLAS_CORETYPE:-}"
if [ -z "$core" ]; then
  if grep -q avx512bw /proc/cpuinfo; then core=SkylakeX; elif grep -q avx2 /proc/cpuinfo; then core=Haswell; fi
fi
shape=(--set model.layers=[784,500,10] --set training.batch_size=128 --set dynamics.t_free=30
       --set dynamics.t_nudge=10 --set ep.nudging=symmetric --set dynamics.integrator=fixed_point)
results=perf/results/compare_torch.jsonl
run() { "$@" | tee -a "$results"; }
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "{\"run\": \"compare_torch\", \"date\": \"$stamp\", \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\", \"openblas_coretype\": \"$core\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\"}" | tee -a "$results"
e1=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=$core build/eqprop bench --device cpu "${shape[@]}" --repeats "$repeats" --warmup 5)
echo "$e1" | tee -a "$results"
e2=$(OPENBLAS_CORETYPE=$core build/eqprop bench --device cpu "${shape[@]}" --repeats "$repeats" --warmup 5)
echo "$e2" | tee -a "$results"
ta=$(/usr/bin/python3 perf/torch_reference_ep.py --threads 1 --repeats "$repeats" ${core:+--openblas-coretype $core})
echo "$ta" | tee -a "$results"
tl=$(/usr/bin/python3 perf/torch_reference_ep.py --lean --threads 1 --repeats "$repeats" ${core:+--openblas-coretype $core})
echo "$tl" | tee -a "$results"
threads=$(nproc)
ta2=$(/usr/bin/python3 perf/torch_reference_ep.py --threads "$threads" --repeats "$repeats" ${core:+--openblas-coretype $core})
echo "$ta2" | tee -a "$results"
tl2=$(/usr/bin/python3 perf/torch_reference_ep.py --lean --threads "$threads" --repeats "$repeats" ${core:+--openblas-coretype $core})
echo "$tl2" | tee -a "$results"
/usr/bin/python3 - "$e1" "$e2" "$ta" "$tl" "$ta2" "$tl2" <<'PY' | tee -a "$results"
import json, sys
e1, e2, ta, tl, ta2, tl2 = (json.loads(a) for a in sys.argv[1:])
best = min(e1["ms_per_batch"], e2["ms_per_batch"])
print(json.dumps({
    "summary": "ms per batch of 128 (median)",
    "eqprop_cpu_1_thread": round(e1["ms_per_batch"], 3),
    "eqprop_cpu_all_threads": round(e2["ms_per_batch"], 3),
    "torch_autograd_1_thread": round(ta["ms_per_batch"], 3),
    "torch_lean_1_thread": round(tl["ms_per_batch"], 3),
    "torch_autograd_all_threads": round(ta2["ms_per_batch"], 3),
    "torch_lean_all_threads": round(tl2["ms_per_batch"], 3),
    "speedup_vs_autograd_same_threads": round(ta["ms_per_batch"] / e1["ms_per_batch"], 2),
    "speedup_vs_autograd_best": round(ta["ms_per_batch"] / best, 2),
    "speedup_vs_autograd_all_threads": round(ta2["ms_per_batch"] / e2["ms_per_batch"], 2),
    "speedup_vs_lean_same_threads": round(tl["ms_per_batch"] / e1["ms_per_batch"], 2),
    "speedup_vs_lean_all_threads": round(tl2["ms_per_batch"] / e2["ms_per_batch"], 2),
    "eqprop_fraction_of_sgemm_peak_all_threads": round(e2["fraction_of_peak"], 3),
}))
PY
