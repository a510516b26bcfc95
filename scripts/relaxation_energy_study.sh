#!/usr/bin/env bash
# Final free-phase energies of gradient flow, cSB and the fixed-point map on the same
# instances (the first N test images) and the same step budgets, for a trained
# checkpoint: the seed paper claims lower energies for cSB at equal budgets.
#
# Usage: scripts/relaxation_energy_study.sh [CHECKPOINT_DIR] [N]
#        (defaults: runs/fashion_mnist, the main job's output, and 2000 images;
#        EQPROP=path/to/eqprop to use another binary than build/eqprop)
# Prints CSV: integrator,gamma,t_free,accuracy,free_energy_mean
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint="${1:-runs/fashion_mnist}"
samples="${2:-2000}"
eqprop="${EQPROP:-build/eqprop}"
[ -x "$eqprop" ] || bash scripts/build.sh
echo "integrator,gamma,t_free,accuracy,free_energy_mean"
for steps in 2 3 5 10 20 40; do
  for variant in "gradient_flow -" "csb 0.25" "csb 0.5" "csb 1" "csb 2" "fixed_point -"; do
    set -- $variant
    # dynamics.gamma acts on cSB only (the config refuses it elsewhere), and
    # dynamics.dt not on the fixed point.
    extra=()
    [ "$1" = csb ] && extra+=(--set dynamics.gamma="$2")
    [ "$1" != fixed_point ] && extra+=(--set dynamics.dt=0.5)
    "$eqprop" eval --checkpoint "$checkpoint" --set data.test_limit="$samples" \
      --set dynamics.integrator="$1" "${extra[@]}" --set dynamics.t_free="$steps" |
      python3 -c "import json,sys; d=json.load(sys.stdin); print('$1,$2,$steps,%.4f,%.4f' % (d['accuracy'], d['free_energy_mean']))"
  done
done
