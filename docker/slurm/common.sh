# shellcheck shell=bash
# Sourced by the sbatch scripts beside it: the image, the run directory, how eqprop
# is started inside the image, and requeue on preemption.
#
# Slurm sends SIGUSR1 to this batch shell 300 s before the time limit
# (--signal=B:USR1@300). The shell requeues the job (--requeue) and, where eqprop
# handles the signal (its `train --help` says so), passes it on so that eqprop writes
# a checkpoint at the next batch and exits; otherwise the run continues until the
# limit and the requeued job resumes from the last epoch's checkpoint. A requeued job
# runs the same script: it resumes when the run directory holds a checkpoint.

: "${EQPROP_IMAGE:?set EQPROP_IMAGE to the image (eqprop.sif for Apptainer, or a Charliecloud image directory)}"
: "${EQPROP_CONFIG:=/opt/eqprop/share/eqprop/configs/fashion_mnist.json}"
: "${EQPROP_RUN_DIR:=$PWD/runs/${SLURM_JOB_NAME:-eqprop}}"
: "${EQPROP_DATA:=/usr/share/datasets/fashion-mnist}"
export EQPROP_IMAGE EQPROP_CONFIG EQPROP_RUN_DIR EQPROP_DATA
mkdir -p "$EQPROP_RUN_DIR"

# Runs a program inside the image, with the data and the run directory bound at
# /data and /runs. It execs, so that the process a signal is sent to (the background
# job of run_and_wait, a rank's `bash -c`) becomes the container runtime, which
# passes SIGUSR1 on to eqprop; without exec, that shell would die of the signal and
# eqprop would never see it. Call it only in a subshell (a pipeline, `&`, bash -c).
in_image() {
  if [[ "$EQPROP_IMAGE" == *.sif ]]; then
    exec apptainer exec --nv --bind "$EQPROP_DATA:/data,$EQPROP_RUN_DIR:/runs" "$EQPROP_IMAGE" "$@"
  else
    exec ch-run --bind="$EQPROP_DATA:/data" --bind="$EQPROP_RUN_DIR:/runs" "$EQPROP_IMAGE" -- "$@"
  fi
}

# train arguments: resume where a checkpoint exists, else start from the config.
train_arguments() {
  if [ -f "$EQPROP_RUN_DIR/model.safetensors" ]; then
    echo "--resume /runs"
  else
    echo "--config $EQPROP_CONFIG --out /runs --set data.dir=/data"
  fi
}

eqprop_handles_preemption() { in_image eqprop train --help 2>&1 | grep -q "SIGUSR1"; }

on_preemption() {
  echo "$(date -Is) preemption signal: requeueing job ${SLURM_JOB_ID:-?}"
  scontrol requeue "${SLURM_JOB_ID}" || true
  if [ -n "${eqprop_pid:-}" ] && eqprop_handles_preemption; then kill -USR1 "$eqprop_pid" 2>/dev/null || true; fi
}
trap on_preemption USR1

# Runs "$@" in the background and waits, so the trap runs while it trains.
run_and_wait() {
  "$@" &
  eqprop_pid=$!
  wait "$eqprop_pid" || wait "$eqprop_pid"  # a trapped signal ends the first wait early
}
