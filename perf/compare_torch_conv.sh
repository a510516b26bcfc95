#!/usr/bin/env bash
# Training throughput of eqprop against the PyTorch EP reference of the 4-conv
# CIFAR-10 network (perf/torch_reference_conv_ep.py: autograd forces as the
# published code computes them), same model, batch and steps, back to back on
# this machine, so the ratio compares like with like.
#
# Usage: perf/compare_torch_conv.sh CONFIG [batch] [t_free] [t_nudge] [threads] [repeats]
#   CONFIG   an eqprop config of the conv model (e.g. configs/cifar10_conv4_laborieux.json)
#   defaults: batch, T1 and T2 from CONFIG's training.batch_size, dynamics.t_free and
#   dynamics.t_nudge (pass them to override both sides); threads 1; repeats 3.
# Device: eqprop runs on the config's device unless EQPROP_DEVICE is set (cpu or
# cuda); PyTorch runs on TORCH_DEVICE (default cpu; cuda where a GPU and a CUDA
# torch are present).
# EQPROP_BINARY: the eqprop executable (default build/eqprop, built by scripts/build.sh).
# EQPROP_PRECISION: training.gemm_precision of the eqprop side (default: the config's).
# EQPROP_CONV_PATH: training.conv_path of the eqprop side (default: the config's; auto
#   takes oneDNN for bf16 only, `library` takes it for fp32 too).
# EP_AUTHORS_DIR: a checkout of Laborieux et al.'s published code
#   (github.com/Laborieux-Axel/Equilibrium-Propagation). When set, the PyTorch side is
#   their own model_utils.P_CNN and train() (perf/authors_conv_ep_timing.py), not the
#   reference of perf/torch_reference_conv_ep.py.
# Prints one JSON line per run and a summary line with the ratio; appends them to
# perf/results/compare_torch_conv.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
config="$1"
[ -f "$config" ] || { echo "compare_torch_conv.sh: no such config: $config" >&2; exit 2; }
# A value from CONFIG (section, key, default); eqprop configs may hold // comment lines.
from_config() {
  /usr/bin/python3 -c "import json,re,sys; c=json.loads(re.sub(r'(?m)^\s*//.*$', '', open(sys.argv[1]).read())); print(c.get(sys.argv[2],{}).get(sys.argv[3],sys.argv[4]))" "$config" "$@"
}
batch="${2:-$(from_config training batch_size 128)}"
t_free="${3:-$(from_config dynamics t_free 250)}"
t_nudge="${4:-$(from_config dynamics t_nudge 25)}"
threads="${5:-1}"
repeats="${6:-3}"
eqprop_device="${EQPROP_DEVICE:-}"
torch_device="${TORCH_DEVICE:-cpu}"

if ! /usr/bin/python3 -c "import torch, torchvision, matplotlib" 2>/dev/null; then
  echo "installing Debian's python3-torch (and the fast OpenBLAS it needs; the published code imports torchvision and matplotlib)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch python3-torchvision python3-matplotlib libopenblas0-pthread > /dev/null
fi
eqprop="${EQPROP_BINARY:-build/eqprop}"
if [ ! -x "$eqprop" ]; then
  [ -z "${EQPROP_BINARY:-}" ] || { echo "compare_torch_conv.sh: $eqprop is not executable" >&2; exit 2; }
  bash scripts/build.sh
fi

core="${OPENBLAS_CORETYPE:-}"
if [ -z "$core" ]; then
  if grep -q avx512bw /proc/cpuinfo; then core=SkylakeX; elif grep -q avx2 /proc/cpuinfo; then core=Haswell; fi
fi
kind=$(from_config model kind dense_hopfield)
[ "$kind" = conv_hopfield ] || echo "compare_torch_conv.sh: warning: $config has model.kind = $kind, not conv_hopfield; the PyTorch side is the 4-conv network, so the ratio compares different models" >&2
results=perf/results/compare_torch_conv.jsonl
mkdir -p perf/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "{\"run\": \"compare_torch_conv\", \"date\": \"$stamp\", \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\", \"config\": \"$config\", \"batch\": $batch, \"t_free\": $t_free, \"t_nudge\": $t_nudge, \"threads\": $threads, \"openblas_coretype\": \"$core\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\"}" | tee -a "$results"

shape=(--set training.batch_size="$batch" --set dynamics.t_free="$t_free" --set dynamics.t_nudge="$t_nudge"
       --set ep.nudging=symmetric ${EQPROP_PRECISION:+--set training.gemm_precision=$EQPROP_PRECISION}
       ${EQPROP_CONV_PATH:+--set training.conv_path=$EQPROP_CONV_PATH})
e=$(OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OPENBLAS_CORETYPE=$core \
    "$eqprop" bench --config "$config" ${eqprop_device:+--device "$eqprop_device"} "${shape[@]}" \
    --repeats "$repeats" --warmup 1)
echo "$e" | tee -a "$results"
if [ -n "${EP_AUTHORS_DIR:-}" ]; then
  [ -f "$EP_AUTHORS_DIR/model_utils.py" ] || { echo "compare_torch_conv.sh: no model_utils.py in EP_AUTHORS_DIR=$EP_AUTHORS_DIR" >&2; exit 2; }
  t=$(OPENBLAS_CORETYPE=$core /usr/bin/python3 perf/authors_conv_ep_timing.py --authors-dir "$EP_AUTHORS_DIR" \
      --batch "$batch" --t-free "$t_free" --t-nudge "$t_nudge" --threads "$threads" --repeats "$repeats" \
      --warmup 1 --device "$torch_device" 2> /dev/null)
else
t=$(/usr/bin/python3 perf/torch_reference_conv_ep.py --batch "$batch" --t-free "$t_free" --t-nudge "$t_nudge" \
    --threads "$threads" --repeats "$repeats" --warmup 1 --device "$torch_device" ${core:+--openblas-coretype $core})
fi
echo "$t" | tee -a "$results"
/usr/bin/python3 - "$e" "$t" "${EQPROP_PRECISION:-as in the config}" "${EQPROP_CONV_PATH:-as in the config}" <<'PY' | tee -a "$results"
import json, sys
e, t = (json.loads(a) for a in sys.argv[1:3])
print(json.dumps({
    "summary": "EP training step of the 4-conv CIFAR-10 network, median ms per batch",
    "batch": e["batch"], "t_free": e["t_free"], "t_nudge": e["t_nudge"],
    "eqprop_model": e["model"], "eqprop_backend": e["backend"], "eqprop_device": e["device"],
    "eqprop_ms_per_batch": round(e["ms_per_batch"], 3),
    "eqprop_precision": sys.argv[3], "eqprop_conv_path": sys.argv[4],
    "eqprop_convolution_library": e.get("convolution_library"),
    "torch_code": t.get("code", "perf/torch_reference_conv_ep.py"),
    "torch_device": t["device"], "torch_threads": t["threads"],
    "torch_ms_per_batch": round(t["ms_per_batch"], 3),
    "speedup_vs_torch": round(t["ms_per_batch"] / e["ms_per_batch"], 2),
}))
PY
