#!/usr/bin/env bash
# BPR-MF through the model registry and the generic trainer (stages/models.h, stages/trainer.h):
#  - train-cf trains it data parallel: the weights after the same steps agree at 1, 2 and 3 ranks
#    (float allreduce order: within bpr.lr/20, tests/reference/tolerance.py), and so do its metric rows (rows: a user may change only
#    where candidates tie within that rounding)
#  - it learns: test NDCG@10 (full ranking) above popularity's on the synthetic data, and eval stores
#    its rows with the registry's label
#  - SIGTERM mid-epoch writes a checkpoint; the rerun resumes to the uninterrupted weights and curve
#  - unknown models are refused naming the registered ones
set -u
. tests/cli/model_lib.sh
model_setup bpr
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,bpr]'
        --set 'eval.models=[pop,bpr]' --set bpr.epochs=12 --set bpr.eval_every=4 --set bpr.batch=512 --set bpr.lr=0.005)
model_ranks bpr BPR-MF 0.01
$PY $chk beats $W/r2/results.h5 bpr BPR-MF 0.01 || exit 1
# SIGTERM mid-epoch (the signal is looked at every 16 steps; 8 steps an epoch), resume, compare
long=(--set bpr.epochs=400 --set bpr.eval_every=50 --set bpr.checkpoint_every=0 --set 'run.stages=[synth,train-cf]' --set 'cf.models=[bpr]')
$DM_MPIRUN -n 2 $B run "${common[@]}" "${long[@]}" --set bpr.epochs=40 --set run.dir=$W/full < /dev/null > $W/full.log 2>&1 || { cat $W/full.log; fail "uninterrupted run"; }
$DM_MPIRUN -n 2 $B run "${common[@]}" "${long[@]}" --set bpr.epochs=40 --set run.dir=$W/term < /dev/null > $W/term1.log 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "bpr epoch    1" $W/term1.log 2>/dev/null && break; sleep 0.05; done
pkill -TERM -f "^$B run .*run.dir=$W/term"   # the ranks, as Slurm signals every task of a step (mpirun, signalled, would SIGKILL them a moment later)
wait $pid && fail "the run finished before SIGTERM reached it"
grep -q "interrupted by a signal" $W/term1.log && [ -f $W/term/ckpt_bpr.h5 ] || { cat $W/term1.log; fail "no checkpoint on SIGTERM"; }
$DM_MPIRUN -n 2 $B run "${common[@]}" "${long[@]}" --set bpr.epochs=40 --set run.dir=$W/term < /dev/null > $W/term2.log 2>&1 || { cat $W/term2.log; fail "resumed run"; }
grep -q "resuming from" $W/term2.log || { cat $W/term2.log; fail "the rerun did not resume"; }
$PY $chk equal $W/full/cf.h5 $W/term/cf.h5 bpr/weights || fail "resumed weights differ from the uninterrupted run"
$PY - $W/full/cf.h5 $W/term/cf.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["bpr/curve"][...] for p in sys.argv[1:])
assert a.shape == b.shape and np.nanmax(np.abs(a[:, :3] - b[:, :3])) <= 1e-12, "resumed curve differs"
print("ok: resumed after SIGTERM to the uninterrupted weights and curve (%d epochs)" % len(a))
EOF
[ ! -e $W/term/ckpt_bpr.h5 ] || fail "checkpoint left after completion"
# unknown models
$B train-cf --set run.dir=$W/r1 --set 'cf.models=[pop,caser]' > $W/bad.log 2>&1 && fail "unknown model accepted"
grep -q "unknown model 'caser'" $W/bad.log && grep -q "hint: cf.models takes pop, ease, sasrec, bpr" $W/bad.log || { cat $W/bad.log; fail "no message for an unknown model"; }
echo ok
