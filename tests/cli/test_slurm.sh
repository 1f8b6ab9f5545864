#!/usr/bin/env bash
# The job scripts on a real single-node Slurm cluster (Debian's slurm-wlm and munge), started here
# as root for localhost with the node's real CPUs and memory, and stopped on exit (trap):
#  - `dynmm sweep` + sbatch of the array it writes: 4 runs, 2 ranks each (srun under the allocation)
#  - one array task is cancelled part-way (scancel) and resubmitted: it resumes from its checkpoint
#  - another gets SIGUSR1 (what --signal=B:USR1@60 sends before the time limit): the stage
#    checkpoints, the task requeues itself and resumes
#  - every run finishes (DONE holding its config hash); both interrupted runs give the same
#    results.h5 metrics as uninterrupted runs of the same settings; the report covers the sweep
#  - jobs/run.sbatch submitted directly (it finds its helper through the submit directory)
# Skips (exit 77) only when not root or when the packages cannot be installed.
set -u
PY=/usr/bin/python3; ref=tests/reference/check_report.py; B=$DM_BUILD/dynmm; ROOT=$PWD
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: starting slurmd and munged needs root"; exit 77; }
if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null || ! command -v munged > /dev/null; then
  echo "installing slurm-wlm and munge"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge) > /dev/null 2>&1 ||
    { echo "SKIP: slurm-wlm and munge are not installed and cannot be installed (apt-get failed)"; exit 77; }
fi
for c in slurmctld slurmd munged sbatch srun squeue scancel scontrol; do command -v $c > /dev/null || { echo "SKIP: no $c after installing slurm-wlm"; exit 77; }; done

W=$DM_TMP/slurm; rm -rf "$W"; mkdir -p "$W"/{munge,state,spool,log}
chmod 700 "$W/munge"
export SLURM_CONF=$W/slurm.conf DM_BIN=$B
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_NTASKS

cleanup() {
  local j
  if [ -f "$W/slurmctld.pid" ]; then
    for j in $(squeue -h -o %A 2> /dev/null); do scancel "$j" 2> /dev/null; done
    sleep 1
  fi
  for p in slurmd slurmctld; do
    [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2> /dev/null
  done
  sleep 1
  for p in slurmd slurmctld; do
    [ -f "$W/$p.pid" ] && kill -9 "$(cat "$W/$p.pid")" 2> /dev/null
  done
  [ -f "$W/munge/munged.pid" ] && kill "$(cat "$W/munge/munged.pid")" 2> /dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the cluster ------------------------------------------------------------------------------------
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$W/munge/munge.key"
munged -f -S "$W/munge/sock" --key-file="$W/munge/munge.key" --pid-file="$W/munge/munged.pid" \
  --seed-file="$W/munge/seed" --log-file="$W/log/munged.log" || fail "munged did not start"
read -r P1 P2 < <($PY -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
node=$(hostname -s)
hw=$(slurmd -C | head -n 1)   # the node's real CPUs, boards, sockets, cores, threads, memory
cpus=$(echo "$hw" | grep -o 'CPUs=[0-9]*' | cut -d= -f2)
[ "${cpus:-0}" -ge 2 ] || { echo "SKIP: $cpus CPU on this machine; the jobs need 2 ranks on 2 CPUs"; exit 77; }
cat > "$SLURM_CONF" <<EOF
# slurm.conf of the dynmm test cluster: one node, this machine, started by tests/cli/test_slurm.sh
ClusterName=dynmmtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$P1
SlurmdPort=$P2
AuthType=auth/munge
AuthInfo=socket=$W/munge/sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
KillWait=15
MinJobAge=600
InactiveLimit=0
JobRequeue=1
$(echo "$hw" | sed "s/^NodeName=[^ ]*/NodeName=$node NodeAddr=127.0.0.1/; s/ UpTime=.*//") State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
slurmctld -c || fail "slurmctld did not start (see $W/log/slurmctld.log)"
slurmd -c || fail "slurmd did not start (see $W/log/slurmd.log)"
for i in $(seq 60); do sinfo -h -o %T 2> /dev/null | grep -q idle && break; sleep 0.5; done
sinfo -h -o %T | grep -q idle || { tail "$W/log/slurmctld.log" "$W/log/slurmd.log"; fail "the node did not come up"; }
echo "ok: slurm $(sinfo -V | cut -d' ' -f2) up on $node ($(echo "$hw" | grep -o 'CPUs=[0-9]*'), $(echo "$hw" | grep -o 'RealMemory=[0-9]*') MB)"

state() { squeue -h -j "$1" -o %T 2> /dev/null | head -n 1; }   # "" once the job has left the queue
wait_gone() { # job, seconds
  for i in $(seq $(($2 * 2))); do [ -z "$(state "$1")" ] && return 0; sleep 0.5; done
  squeue; return 1
}

# ---- the sweep ---------------------------------------------------------------------------------------
cat > "$W/sw.cfg" <<EOF
sweep: {
  base = "$ROOT/configs/quickstart.cfg";
  dir = "$W/sw";
  grid = ["sasrec.hidden=[16,24]"];
  seeds = [1, 2];
  ranks = 2;
  time = "00:15:00";
};
run: { stages = ["synth", "train-cf", "eval"]; threads = 1; };
synth: { users = 600; items = 250; };
sasrec: { epochs = 30; eval_every = 30; checkpoint_every = 1; maxlen = 30; };
cf: { models = ["pop", "sasrec"]; };
eval: { models = ["pop", "sasrec"]; splits = ["test"]; protocols = ["full", "uni99"]; };
stats: { bootstrap = 200; };
EOF
$B sweep "$W/sw.cfg" > "$W/sweep.log" 2>&1 || { cat "$W/sweep.log"; fail "dynmm sweep"; }
M=$W/sw/manifest.tsv
run_dir() { awk -F '\t' -v i="$1" '!/^#/ && $1 == i {print $5}' "$M"; }
run_sets() { awk -F '\t' -v i="$1" '!/^#/ && $1 == i {for (k = 7; k <= NF; k++) if ($k !~ /^run.dir=/) printf "--set\n%s\n", $k}' "$M"; }
D1=$(run_dir 1); D2=$(run_dir 2)
t0=$(date +%s)
A=$(cd "$W" && sbatch --parsable "$W/sw/sweep.sbatch" | cut -d';' -f1) || fail "sbatch of the sweep array"
echo "submitted array $A: $(grep -c '^[0-9]' "$M") runs"

# task 1: cancel part-way (after its first checkpoint), resubmit later
for i in $(seq 600); do [ -f "$D1/ckpt_sasrec.h5" ] && break; sleep 0.2; done
[ -f "$D1/ckpt_sasrec.h5" ] || { squeue; tail -20 "$W"/sw/logs/*; fail "task 1 wrote no checkpoint"; }
scancel "${A}_1"
wait_gone "${A}_1" 60 || fail "task 1 did not stop"
[ -f "$D1/DONE" ] && fail "task 1 finished before it was cancelled; nothing was tested"
[ -f "$D1/results.h5" ] && fail "task 1 has results although cancelled"
echo "ok: task 1 cancelled part-way ($(ls "$D1" | tr '\n' ' '))"

# task 2: SIGUSR1 to the batch shell, as --signal=B:USR1@60 sends before the time limit
for i in $(seq 600); do [ "$(state "${A}_2")" = RUNNING ] && [ -f "$D2/ckpt_sasrec.h5" ] && break; sleep 0.2; done
[ -f "$D2/ckpt_sasrec.h5" ] || fail "task 2 wrote no checkpoint"
scancel --signal=USR1 --batch "${A}_2"
for i in $(seq 120); do [ "$(state "${A}_2")" = PENDING ] && break; sleep 0.5; done
[ "$(state "${A}_2")" = PENDING ] || { cat "$W"/sw/logs/*_2.out; fail "task 2 was not requeued after SIGUSR1"; }
grep -q "received SIGUSR1" "$W"/sw/logs/*_2.out && grep -q "requeueing job" "$W"/sw/logs/*_2.out || fail "task 2's log shows no USR1 handling"
[ -f "$D2/DONE" ] && fail "task 2 finished before SIGUSR1; nothing was tested"
scontrol update JobId="${A}_2" StartTime=now > /dev/null   # a requeued job waits a while; start it now
echo "ok: task 2 checkpointed on SIGUSR1 and requeued itself"

wait_gone "$A" 240 || fail "the array did not finish in 4 minutes"
A1=$(cd "$W" && sbatch --parsable --array=1 "$W/sw/sweep.sbatch" | cut -d';' -f1) || fail "resubmitting task 1"
wait_gone "$A1" 120 || fail "the resubmitted task did not finish"
echo "ok: array done in $(($(date +%s) - t0))s"

for i in 0 1 2 3; do
  d=$(run_dir $i)
  [ -s "$d/results.h5" ] || { cat "$W"/sw/logs/*_$i.out; fail "run $i has no results"; }
  [ "$(head -n 1 "$d/DONE" 2> /dev/null)" = "$(awk -F '\t' -v i=$i '!/^#/ && $1 == i {print $6}' "$M")" ] || fail "run $i: DONE missing or wrong"
  grep -q "srun (job" "$W"/sw/logs/*_$i.out || fail "run $i was not launched with srun"
done
grep -q "resuming from" "$W/sw/logs/${A1}_1.out" || { cat "$W/sw/logs/${A1}_1.out"; fail "the resubmitted task 1 did not resume"; }
[ "$(grep -c "resuming from" "$W"/sw/logs/${A}_2.out)" -ge 1 ] || fail "the requeued task 2 did not resume"
echo "ok: every run finished; tasks 1 and 2 resumed from their checkpoints"

# the interrupted runs against uninterrupted runs of the same settings (mpirun, 2 ranks)
for i in 1 2; do
  mapfile -t sets < <(run_sets $i)
  DM_BIN=$B DM_NP=2 DM_MPIRUN_ARGS="--oversubscribe --bind-to none" bash jobs/run.sbatch "$W/sw/base.cfg" "${sets[@]}" \
    --set run.dir="$W/ref$i" > "$W/ref$i.log" 2>&1 || { tail -20 "$W/ref$i.log"; fail "reference run $i"; }
  $PY $ref same "$(run_dir $i)/results.h5" "$W/ref$i/results.h5" || fail "run $i resumed under Slurm differs from an uninterrupted run"
done

# the report of the whole sweep
$B report "$W/sw" > "$W/report.log" 2>&1 || { cat "$W/report.log"; fail "report"; }
grep -q "4 results files, 2 configurations" "$W/report.log" || { cat "$W/report.log"; fail "the report does not read the 4 runs"; }
$PY $ref covers "$W/sw/report/test_full.csv" sasrec 2 2 || fail "report coverage"
[ -s "$W/sw/report/test_full.tex" ] && [ -s "$W/sw/report/index.md" ] || fail "report files"

# jobs/run.sbatch submitted as it is, from the checkout
J=$(sbatch --parsable --ntasks=2 --output="$W/run.out" jobs/run.sbatch configs/quickstart.cfg --set run.dir="$W/single" \
      --set synth.users=300 --set 'run.stages=[synth]' | cut -d';' -f1) || fail "sbatch jobs/run.sbatch"
wait_gone "$J" 60 || fail "run.sbatch job"
[ -s "$W/single/dataset.h5" ] && [ -s "$W/single/DONE" ] || { cat "$W/run.out"; fail "run.sbatch did not run"; }
echo ok
