# dm_job.sh: shared by the job scripts (run.sbatch, sweep.sbatch, eval.sbatch); sourced, not run.
#
# dm_setup                     find build/dynmm (or $DM_BIN), set the MPI/OpenMP environment
# dm_launch NP CMD... &        srun inside a Slurm allocation (its --ntasks), else mpirun -n NP
# dm_run_one MARKER DIR HASH NP ARGS...
#                              one resumable run: skipped when DIR/MARKER holds HASH; otherwise
#                              `dynmm run ARGS...` under dm_launch, and MARKER (holding HASH) written
#                              only after it succeeded. SIGUSR1 (Slurm's warning before the time
#                              limit, --signal=B:USR1@60) and SIGTERM (scancel, preemption) are
#                              passed on to the ranks, whose stages checkpoint and exit non-zero;
#                              after SIGUSR1 under Slurm the job requeues itself and resumes from the
#                              checkpoint (run.resume = true; finished stages are skipped by their
#                              stage hash).
# Environment: DM_BIN (the binary), DM_NP (ranks without Slurm, default 2), DM_SRUN_ARGS,
# DM_MPIRUN_ARGS (extra launcher flags, e.g. DM_SRUN_ARGS="--mpi=pmix"), DM_NO_REQUEUE=1.

dm_log() { printf '[%s] %s\n' "$(date '+%F %T')" "$*"; }
dm_die() { dm_log "error: $*" >&2; exit 2; }

dm_setup() {
  DM_JOBS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if [ -z "${DM_BIN:-}" ]; then
    if [ -x "$DM_JOBS/../build/dynmm" ]; then DM_BIN=$(cd "$DM_JOBS/../build" && pwd)/dynmm
    elif [ -x "$DM_JOBS/../../../bin/dynmm" ]; then DM_BIN=$(cd "$DM_JOBS/../../../bin" && pwd)/dynmm   # installed: PREFIX/share/dynmm/jobs
    elif command -v dynmm >/dev/null 2>&1; then DM_BIN=$(command -v dynmm)
    else DM_BIN=build/dynmm; fi
  fi
  [ -x "$DM_BIN" ] || dm_die "no dynmm binary at '$DM_BIN'; build it with 'make' or set DM_BIN"
  export DM_BIN
  if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ] && [ -z "${OMP_NUM_THREADS:-}" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi
  DM_SIGNAL=""
  DM_CHILD=""
  trap '_dm_on_signal USR1' USR1
  trap '_dm_on_signal TERM' TERM
  trap '_dm_on_signal INT' INT
}

_dm_on_signal() {
  DM_SIGNAL=$1
  if [ -n "$DM_CHILD" ] && kill -0 "$DM_CHILD" 2>/dev/null; then
    dm_log "received SIG$1: passing it to the ranks, which checkpoint and stop"
    kill -"$1" "$DM_CHILD" 2>/dev/null
  else
    dm_log "received SIG$1"
  fi
}

dm_in_slurm() { [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null 2>&1; }

# Replaces the calling (sub)shell with the launcher, so that `dm_launch ... &` gives the launcher's
# own pid (signals sent to it reach srun/mpirun, which pass them on to every rank).
dm_launch() {
  local np=$1; shift
  if dm_in_slurm; then
    # shellcheck disable=SC2086
    exec srun ${DM_SRUN_ARGS:-} "$@"
  else
    # shellcheck disable=SC2086
    exec mpirun ${DM_MPIRUN_ARGS:---bind-to none} -n "$np" "$@"
  fi
}

# The run.dir of a config with overrides, from the resolved config `dynmm config` prints.
dm_run_dir() {
  "$DM_BIN" config "$@" | awk '/^run: \{/{g=1; next} g && /^\};/{g=0} g && $1 == "dir" {v=$0; sub(/^[^"]*"/, "", v); sub(/";[ \t]*$/, "", v); print v}'
}

dm_run_one() {
  local marker=$1 dir=$2 hash=$3 np=$4; shift 4
  if [ -f "$dir/$marker" ] && [ "$(head -n 1 "$dir/$marker")" = "$hash" ]; then
    dm_log "$dir: finished before ($marker), skipped"
    return 0
  fi
  if [ -f "$dir/$marker" ]; then
    dm_log "$dir: $marker was written for other settings; running again (current stages are skipped)"
    rm -f "$dir/$marker"
  fi
  mkdir -p "$dir"
  local where="mpirun -n $np"
  dm_in_slurm && where="srun (job ${SLURM_JOB_ID}, ${SLURM_NTASKS:-?} tasks)"
  dm_log "$dir: $where dynmm run $*"
  dm_launch "$np" "$DM_BIN" run "$@" &
  DM_CHILD=$!
  local rc
  while :; do
    wait "$DM_CHILD"; rc=$?
    if [ "$rc" -gt 128 ] && kill -0 "$DM_CHILD" 2>/dev/null; then continue; fi
    break
  done
  DM_CHILD=""
  if [ "$rc" -eq 0 ]; then
    local by="host $(hostname)"
    [ -n "${SLURM_JOB_ID:-}" ] && by="slurm job $SLURM_JOB_ID on $(hostname)"
    printf '%s\nfinished %s by %s\n' "$hash" "$(date -u '+%FT%TZ')" "$by" > "$dir/$marker.part" &&
      mv -f "$dir/$marker.part" "$dir/$marker"
    dm_log "$dir: done"
    return 0
  fi
  dm_log "$dir: dynmm run exited with status $rc${DM_SIGNAL:+ after SIG$DM_SIGNAL}"
  return "$rc"
}

# After a run stopped on SIGUSR1 under Slurm: requeue this job (array task) so it resumes.
dm_maybe_requeue() {
  if [ "$DM_SIGNAL" = USR1 ] && dm_in_slurm && [ -z "${DM_NO_REQUEUE:-}" ]; then
    dm_log "requeueing job $SLURM_JOB_ID; it resumes from the checkpoint"
    scontrol requeue "$SLURM_JOB_ID" && exit 0
    dm_log "scontrol requeue failed; resubmit this job to resume"
  fi
}
