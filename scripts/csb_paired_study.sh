#!/usr/bin/env bash
# Paired comparison of fixed-point, gradient-flow and cSB EP at equal step budgets,
# each integrator tuned per budget on seed 0 and reported on seeds 1..5, with the EP
# gradient's cosine against the exact gradient (docs/csb_study.md).
#
# Usage: scripts/csb_paired_study.sh [options of scripts/csb_paired_study.py]
#        (defaults: 3 epochs, all data, 2 runs in parallel, build/eqprop;
#        --binary PATH for another binary)
# Writes perf/results/csb_paired/{tune,eval,gradcheck,gradcheck_grid}.jsonl as the
# runs finish and summary.md at the end; runs/csb_paired/ holds the run
# directories. Interrupted? Run it again: recorded runs are not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/eqprop ] || [[ " $* " == *" --binary "* ]] || bash scripts/build.sh
exec python3 scripts/csb_paired_study.py --epochs 3 --grad-samples 32 "$@"
