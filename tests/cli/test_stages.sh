#!/usr/bin/env bash
# The stage contract (stages/stage.h): which stages rerun when what changes, and that no stage is ever
# skipped as current with a changed input.
#  - a full tiny pipeline (synth, train-cf, align, pq, lm, prompt, explain, eval), then settings changed
#    one at a time, cumulatively; after each change `dynmm run` must rerun exactly the stages that
#    read the changed key or whose inputs were remade, and skip the others
#  - adding a sampled protocol reruns eval only, and the candidate sets of the protocols already
#    there are the same sets as before (they are a function of the seed, not of the other protocols)
#  - the reproduction of the stale-results report: align changes -> eval reruns
#  - stage commands refuse inputs that do not belong together (files of two runs, a stale aligner)
#  - the run.dir lock; empty run.stages; a bad setting of a late stage stops before the first stage;
#    an input no listed stage makes is named before anything runs
set -u
B=$DM_BUILD/dynmm; PY=/usr/bin/python3
W=$DM_TMP/stages; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
NP=2
base=(configs/quickstart.cfg --set run.dir=$W/r --set synth.users=200 --set synth.items=120 --set sasrec.epochs=2
      --set sasrec.eval_every=1 --set sasrec.hidden=16 --set align.epochs=1 --set align.hidden=32 --set align.dim=16
      --set lm.steps=5 --set lm.layers=1 --set lm.width=32 --set lm.heads=2 --set lm.vocab=300
      --set prompt.train_users=12 --set prompt.eval_users=10 --set prompt.epochs=1 --set 'prompt.latency_tokens=[]'
      --set explain.users=3 --set explain.candidates=6 --set explain.top_k=2 --set explain.random_masks=1
      --set 'eval.models=[pop,sasrec,align,align@pq]' --set 'cf.models=[pop,sasrec]')
ALL="synth train-cf align pq lm prompt explain eval"
extra=()
# run; then compare the stages that ran with the expected list (the rest must be skipped)
step() { # name, expected stages that run, --set assignments to add ...
  local name=$1 want=$2; shift 2
  for a in "$@"; do extra+=(--set "$a"); done
  $DM_MPIRUN -n $NP $B run "${base[@]}" "${extra[@]}" < /dev/null > "$W/$name.log" 2>&1 || { tail -20 "$W/$name.log"; fail "$name: run failed"; }
  local ran skipped
  ran=$(grep -oE '^\[[0-9]+/[0-9]+\] [a-z-]+$' "$W/$name.log" | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')
  skipped=$(grep -oE '^\[[0-9]+/[0-9]+\] [a-z-]+: .* is current, skipped' "$W/$name.log" | awk '{print $2}' | tr -d ':' | tr '\n' ' ')
  [ "$ran" = "$want" ] || { cat "$W/$name.log" | grep -E '^\['; fail "$name: ran '$ran', expected '$want'"; }
  for s in $ALL; do
    case " $want " in *" $s "*) ;; *) case " $skipped " in *" $s "*) ;; *) fail "$name: stage $s neither ran nor was skipped";; esac;; esac
  done
  echo "ok: $name reran [$ran]"
}
step first "$ALL"
step unchanged ""
cp "$W/r/results.h5" "$W/results_before.h5"
step "add a sampled protocol" "eval" 'eval.protocols=[full,uni99,uni19,uni30]'
$PY - "$W/results_before.h5" "$W/r/results.h5" <<'EOF' || fail "candidate sets changed when a protocol was added"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert "uni30" in b["candidates"] and "uni30" not in a["candidates"]
for p in ("uni99", "uni19"):
    assert np.array_equal(a["candidates"][p][...], b["candidates"][p][...]), p
    assert np.array_equal(a["test/%s/sasrec" % p][...], b["test/%s/sasrec" % p][...], equal_nan=True), p
EOF
step "eval cutoffs" "prompt explain eval" 'eval.ks=[1,5,10]'
step "explain users" "explain" 'explain.users=4'
step "prompt learning rate" "prompt explain" 'prompt.lr=0.002'
step "evidence tokens" "prompt explain" 'explain.tokens=2'
step "lm steps" "lm prompt explain" 'lm.steps=6'
# the report's reproduction: the aligner changes, eval must not keep the old aligner's scores
step "align epochs" "align pq prompt explain eval" 'align.epochs=2'
step "sasrec epochs" "train-cf align pq prompt explain eval" 'sasrec.epochs=3'
step "stress experiments" "eval" 'stress.enabled=true' 'stress.rates=[0,50]' 'stress.snr_db=[10]'
step "pq codebooks" "pq eval" 'pq.m=8'
step "pq re-ranking (eval's)" "eval" 'pq.rerank=20'
step "split protocol" "train-cf align pq prompt explain eval" 'split.protocol=temporal'
step "data" "$ALL" 'synth.users=210'
step "seed" "$ALL" 'run.seed=7'
step "unchanged again" ""
# a stage rerun by hand with other settings is not mistaken for the config's: align reruns, and what
# read the configured aligner is current again (its inputs are the same files as when it ran)
$DM_MPIRUN -n $NP $B align "${base[@]}" "${extra[@]}" --set align.epochs=3 < /dev/null > "$W/align3.log" 2>&1 || { cat "$W/align3.log"; fail "align by hand"; }
step "after align by hand" "align"
# the eval settings changed while results.h5 stays: run with eval dropped from the stages, then a
# standalone eval must see the current files (and it always runs)
$DM_MPIRUN -n $NP $B eval "${base[@]}" "${extra[@]}" < /dev/null > "$W/eval.log" 2>&1 || { cat "$W/eval.log"; fail "eval by hand"; }
grep -q "wrote $W/r/results.h5" "$W/eval.log" || fail "eval by hand did not write results.h5"

# ---- inputs that do not belong together ----------------------------------------------------------
mkdir -p "$W/other"
$DM_MPIRUN -n $NP $B run "${base[@]}" --set run.dir=$W/other --set synth.users=230 --set 'run.stages=[synth,train-cf]' < /dev/null > "$W/other.log" 2>&1 || { cat "$W/other.log"; fail "second run"; }
mkdir -p "$W/mix"; cp "$W/r/dataset.h5" "$W/r/align.h5" "$W/r/pq.h5" "$W/mix/"; cp "$W/other/cf.h5" "$W/mix/"
$DM_MPIRUN -n 3 $B eval "${base[@]}" "${extra[@]}" --set run.dir=$W/mix < /dev/null > "$W/mix.log" 2>&1 && fail "eval accepted files of two runs"
grep -q "were made from different datasets" "$W/mix.log" || { cat "$W/mix.log"; fail "no message for files of two runs"; }
[ "$(grep -c 'error:' "$W/mix.log")" = 1 ] || { cat "$W/mix.log"; fail "not exactly one error line"; }
[ ! -e "$W/mix/results.h5" ] && [ -z "$(ls "$W/mix" | grep part)" ] || fail "output left after refusing inputs"
# a stale aligner: cf.h5 retrained by hand, align.h5 made from the previous one
mkdir -p "$W/stale"; cp "$W/r/dataset.h5" "$W/r/cf.h5" "$W/r/align.h5" "$W/r/pq.h5" "$W/stale/"
$DM_MPIRUN -n $NP $B train-cf "${base[@]}" "${extra[@]}" --set run.dir=$W/stale --set sasrec.epochs=1 < /dev/null > "$W/stale1.log" 2>&1 || { cat "$W/stale1.log"; fail "train-cf by hand"; }
$DM_MPIRUN -n $NP $B eval "${base[@]}" "${extra[@]}" --set run.dir=$W/stale < /dev/null > "$W/stale2.log" 2>&1 && fail "eval accepted a stale align.h5"
grep -q "align.h5' was made from another cf.h5" "$W/stale2.log" || { cat "$W/stale2.log"; fail "no message for a stale align.h5"; }
grep -q "hint: align.h5 is stale: rerun the align stage" "$W/stale2.log" || { cat "$W/stale2.log"; fail "no hint for a stale align.h5"; }
# without the aligner among the models, eval does not read align.h5 and runs
$DM_MPIRUN -n $NP $B eval "${base[@]}" "${extra[@]}" --set run.dir=$W/stale --set 'eval.models=[pop,sasrec]' --set stress.enabled=false < /dev/null > "$W/stale3.log" 2>&1 ||
  { cat "$W/stale3.log"; fail "eval of pop and sasrec refused an unread align.h5"; }

# ---- the plan is checked before anything runs ---------------------------------------------------------
$B run "${base[@]}" --set run.dir=$W/empty --set 'run.stages=[]' > "$W/e1.log" 2>&1 && fail "empty run.stages accepted"
grep -qE "run.stages'? is empty: nothing to run" "$W/e1.log" || { cat "$W/e1.log"; fail "no message for empty run.stages"; }
$DM_MPIRUN -n $NP $B run "${base[@]}" --set run.dir=$W/heads --set 'run.stages=[synth,train-cf]' --set sasrec.heads=3 < /dev/null > "$W/e2.log" 2>&1 && fail "sasrec.heads = 3 with hidden 16 accepted"
grep -qE "sasrec.heads'? = 3 does not divide sasrec.hidden = 16" "$W/e2.log" || { cat "$W/e2.log"; fail "no message for sasrec.heads"; }
[ ! -e "$W/heads/dataset.h5" ] || fail "synth ran before the bad sasrec.heads was reported"
$B run "${base[@]}" --set run.dir=$W/noalign --set 'run.stages=[synth,train-cf,eval]' > "$W/e3.log" 2>&1 && fail "eval without align.h5 accepted"
grep -q "'eval' reads align.h5, which no earlier stage of run.stages makes" "$W/e3.log" || { cat "$W/e3.log"; fail "no message for the missing aligner"; }
grep -q "hint: add 'align' to run.stages before 'eval'" "$W/e3.log" || { cat "$W/e3.log"; fail "no hint for the missing aligner"; }
[ ! -e "$W/noalign/dataset.h5" ] || fail "synth ran before the missing input was reported"

# ---- a setting given to a stage that does not read it is named, with the stages that do ------------
$DM_MPIRUN -n $NP $B align "${base[@]}" "${extra[@]}" --set modal.text.path=/nowhere.npy < /dev/null > "$W/unread.log" 2>&1 || { cat "$W/unread.log"; fail "align with an unread key"; }
grep -q "warning: --set modal.text.path: this stage never reads it (read by ingest, synth); it has no effect here" "$W/unread.log" ||
  { cat "$W/unread.log"; fail "no warning for a key align does not read"; }
grep -qE "warning: --set (align|split)\." "$W/unread.log" && { grep 'warning: --set' "$W/unread.log"; fail "warnings for keys align reads"; }

# ---- the run.dir lock ---------------------------------------------------------------------------------
$PY - "$W/r/.dynmm.lock" > "$W/holder.log" 2>&1 <<'EOF' &
import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write("pid 4242 on testhost since now\n"); f.flush()
print("locked", flush=True)
time.sleep(20)
EOF
holder=$!
for i in $(seq 50); do grep -q locked "$W/holder.log" 2>/dev/null && break; sleep 0.1; done
$DM_MPIRUN -n $NP $B run "${base[@]}" "${extra[@]}" < /dev/null > "$W/lock.log" 2>&1 && { kill $holder; fail "a second command ran on a locked run.dir"; }
kill $holder 2>/dev/null; wait $holder 2>/dev/null
grep -q "run.dir '$W/r' is in use by another dynmm command (pid 4242 on testhost since now)" "$W/lock.log" || { cat "$W/lock.log"; fail "no message for the lock"; }
# the holder is gone: the lock is free again (no stale lock after a process ends)
step "after the lock" ""
echo ok
