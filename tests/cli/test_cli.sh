#!/usr/bin/env bash
# The command line as a new user meets it:
#  - --version, -V and `dynmm version` print the version; `dynmm help CMD` is `dynmm CMD --help`
#  - a mistyped command gets the closest commands as a hint (and an unrelated word none), status 2
#  - a config with several bad keys and values, and bad --set assignments, get one error listing
#    every one with its file:line or --set and what was expected, once, at 1 and 2 ranks
#  - the code's trace ("at: src/...") is shown with -v only
#  - training progress lines carry the time left (eta) until the last epoch
#  - the man page (doc/man.sh, `make man`) has a section for every command of --help and renders
#    without a groff warning; the bash completion (doc/completion.sh) completes commands, keys,
#    enumerated values and each command's options
#  - `make install` into a prefix; from another directory, without the checkout: the installed
#    binary, config, man page and completion; a shipped sweep (configs/sweeps/small.cfg, its base
#    found relative to it) expanded, one of its runs run by the installed jobs/sweep.sbatch (which
#    finds bin/dynmm), the "next:" hint naming the installed paths; `dynmm status` on that sweep
#    (done, not started, and planted running, failed with its Slurm log's error, changed)
set -u
B=$DM_BUILD/dynmm; PY=/usr/bin/python3; ROOT=$PWD
W=$DM_TMP/cli; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
expect() { # status, message, args... : dynmm ARGS exits with status and prints message
  local st=$1 want=$2; shift 2
  $B "$@" > "$W/out.log" 2>&1; local rc=$?
  [ $rc -eq "$st" ] || { cat "$W/out.log"; fail "dynmm $*: status $rc, expected $st"; }
  grep -qF -- "$want" "$W/out.log" || { cat "$W/out.log"; fail "dynmm $*: expected '$want'"; }
}

# ---- version, help, did-you-mean ----------------------------------------------------------------------
expect 0 "dynmm " --version
head -n 1 "$W/out.log" | grep -qE '^dynmm [0-9a-f]{7}' || fail "--version: '$(head -n 1 "$W/out.log")'"
grep -q "build flags: " "$W/out.log" && grep -q "mpi: " "$W/out.log" || fail "--version: no build information"
[ "$($B -V | head -n 1)" = "$(head -n 1 "$W/out.log")" ] && [ "$($B version | head -n 1)" = "$(head -n 1 "$W/out.log")" ] ||
  fail "-V and 'dynmm version' differ from --version"
[ "$($B help status)" = "$($B status --help)" ] || fail "'dynmm help status' is not 'dynmm status --help'"
expect 2 "did you mean 'train-cf'?" trian-cf
expect 2 "did you mean 'eval'?" evl
expect 2 "did you mean 'status'?" stat
expect 2 "did you mean 'export'?" exprot
expect 2 "unknown command 'xyzzy'" xyzzy
grep -q "did you mean" "$W/out.log" && fail "an unrelated word got a suggestion: $(cat "$W/out.log")"
echo "ok: --version, help, did-you-mean"

# ---- every config error at once ------------------------------------------------------------------------
printf 'synth: {\n  user = 5;\n  zipf = -3.0;\n};\nsasrec: { hidden = "wide"; };\n' > "$W/bad.cfg"
printf 'foo: { a = 1; };\n' > "$W/bad2.cfg"
for np in 1 2; do
  $DM_MPIRUN -n $np $B synth "$W/bad.cfg" "$W/bad2.cfg" --set sasrec.hiden=3 --set eval.ks=1,x --set run.dir="$W/none" > "$W/cfg$np.log" 2>&1 &&
    fail "bad settings accepted"
  for want in "6 errors in the configuration:" "bad.cfg:2: unknown key 'synth.user'" "did you mean 'synth.users'" \
              "bad.cfg:3: 'synth.zipf' = -3 is out of range" "bad.cfg:5: 'sasrec.hidden' must be an integer, found a string" \
              "bad2.cfg:1: unknown group 'foo'" "--set: unknown key 'sasrec.hiden'" "--set eval.ks: 'eval.ks' must be an integer, found 'x'"; do
    grep -qF -- "$want" "$W/cfg$np.log" || { cat "$W/cfg$np.log"; fail "at $np ranks the error list lacks '$want'"; }
  done
  [ "$(grep -c "errors in the configuration" "$W/cfg$np.log")" = 1 ] || { cat "$W/cfg$np.log"; fail "the list is printed more than once at $np ranks"; }
done
[ ! -e "$W/none" ] || fail "a refused config created its run.dir"
$B config "$W/bad.cfg" > "$W/cfg.log" 2>&1; [ $? -eq 2 ] && grep -q "3 errors in the configuration" "$W/cfg.log" || { cat "$W/cfg.log"; fail "dynmm config: the file's 3 errors"; }
echo "ok: 6 errors of 2 files and 2 --set in one message, each with file:line or --set (1 and 2 ranks)"

# ---- the code trace only with -v --------------------------------------------------------------------------
expect 2 "unknown key 'synth.user'" synth --set synth.user=5
grep -q "^  at: " "$W/out.log" && fail "a trace without -v: $(cat "$W/out.log")"
expect 2 "unknown key 'synth.user'" synth --set synth.user=5 -v
grep -qE "^  at: src/config/config.c:[0-9]+" "$W/out.log" || { cat "$W/out.log"; fail "-v shows no trace"; }
expect 1 "cannot open" info "$W/nothing.h5"
grep -q "^  at: " "$W/out.log" && fail "a trace without -v: $(cat "$W/out.log")"
echo "ok: the code trace with -v only"

# ---- man page and completion ---------------------------------------------------------------------------
doc/man.sh "$B" > "$W/dynmm.1" || fail "doc/man.sh"
groff -man -Tutf8 -ww -z "$W/dynmm.1" 2> "$W/groff.log"; [ ! -s "$W/groff.log" ] || { cat "$W/groff.log"; fail "groff warns about dynmm.1"; }
cmds=$($B --help | awk '/^commands:/{c=1; next} c && /^$/{exit} c {print $1}')
[ "$(echo "$cmds" | wc -w)" -ge 15 ] || fail "--help lists only: $cmds"
for c in $cmds; do grep -q "^\.SS $c\$" "$W/dynmm.1" || fail "the man page has no section for '$c'"; done
man -l "$W/dynmm.1" 2>/dev/null | grep -q "COMMAND DETAILS" || fail "man -l does not render the page"
grep -q '^\\fBdynmm export\\fR' "$W/dynmm.1" || fail "the man page lacks export's synopsis"
doc/completion.sh "$B" > "$W/dynmm.bash" || fail "doc/completion.sh"
bash -c '
source "$1"
t() { COMP_WORDS=("${@:2}"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _dynmm; [ "${COMPREPLY[*]}" = "$1" ] || { echo "FAIL: completing [${*:2}]: [${COMPREPLY[*]}], expected [$1]"; exit 1; }; }
t "train-cf" dynmm trai
t "export" dynmm expo
t "sasrec.hidden=" dynmm train-cf --set sasrec.hidd
t "data.format=recbole" dynmm ingest --set data.format=rec
t "--metrics" dynmm export --met
t "--only" dynmm status --on
t "status" dynmm help stat
' _ "$W/dynmm.bash" || exit 1
echo "ok: man page ($(grep -c '^\.SS' "$W/dynmm.1") command sections, no groff warning) and bash completion"

# ---- progress: training lines carry the time left ------------------------------------------------------
$B run configs/quickstart.cfg --set run.dir="$W/eta" --set 'run.stages=[synth,train-cf]' --set synth.users=200 --set synth.items=80 \
  --set sasrec.epochs=4 --set sasrec.eval_every=2 --set 'cf.models=[sasrec]' -v > "$W/eta.log" 2>&1 || { cat "$W/eta.log"; fail "the run with ETA lines"; }
for e in 1 2 3; do grep -Eq "sasrec epoch +$e .* eta [0-9]+m[0-5][0-9]s\$" "$W/eta.log" || { cat "$W/eta.log"; fail "epoch $e of 4 has no eta"; }; done
grep -E "sasrec epoch +4 " "$W/eta.log" | grep -q eta && fail "the last epoch has an eta"
echo "ok: training lines carry the time left (eta), the last one none"

# ---- install, and use from elsewhere ------------------------------------------------------------------
P=$W/prefix
make -s BUILD="$DM_BUILD" PREFIX="$P" -o "$DM_BUILD/dynmm" install > "$W/install.log" 2>&1 || { cat "$W/install.log"; fail "make install"; }
for f in bin/dynmm share/man/man1/dynmm.1 share/bash-completion/completions/dynmm share/dynmm/configs/quickstart.cfg \
         share/dynmm/configs/reference.cfg share/dynmm/configs/sweeps/small.cfg share/dynmm/jobs/sweep.sbatch share/dynmm/jobs/dm_job.sh \
         share/dynmm/jobs/run.sbatch share/dynmm/analysis/dynmm_results.py; do
  [ -e "$P/$f" ] || fail "make install: no $P/$f"
done
E=$W/elsewhere; mkdir -p "$E"
(
  cd "$E" || exit 1
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  unset DM_BIN BUILD
  command -v dynmm > /dev/null && { echo "FAIL: a dynmm on PATH ($(command -v dynmm)) would hide what is tested"; exit 1; }
  D=$P/bin/dynmm
  $D --version > /dev/null || { echo "FAIL: the installed binary"; exit 1; }
  MANPATH=$P/share/man man -w dynmm > /dev/null 2>&1 || { echo "FAIL: man does not find the installed page"; exit 1; }
  $D config "$P/share/dynmm/configs/sweeps/small.cfg" > small.resolved || { echo "FAIL: the installed sweep file does not load"; exit 1; }
  tiny=(--set synth.users=150 --set synth.items=80 --set sasrec.epochs=1 --set sasrec.eval_every=1 --set sasrec.hidden=16
        --set sasrec.checkpoint_every=1)
  $D sweep "$P/share/dynmm/configs/sweeps/small.cfg" --set sweep.dir=sw "${tiny[@]}" > sweep.log 2>&1 || { cat sweep.log; echo "FAIL: sweep"; exit 1; }
  grep -qF "$P/share/dynmm/jobs/sweep.sbatch sw/manifest.tsv" sweep.log && grep -qF "$D report sw" sweep.log ||
    { cat sweep.log; echo "FAIL: the next: hint does not name the installed job script and binary"; exit 1; }
  grep -q "build/dynmm" sweep.log && { cat sweep.log; echo "FAIL: the hint names build/dynmm"; exit 1; }
  DM_MPIRUN_ARGS="--oversubscribe --bind-to none" DM_NP=2 bash "$P/share/dynmm/jobs/sweep.sbatch" sw/manifest.tsv 0 > jobs.log 2>&1 ||
    { tail -20 jobs.log; echo "FAIL: the installed sweep.sbatch"; exit 1; }
  # no dynmm on PATH and no checkout here: the job script can only have found the installed bin/dynmm
  grep -q "all 1 runs of sw/manifest.tsv finished" jobs.log || { cat jobs.log; echo "FAIL: the installed job script's run"; exit 1; }
  # plant the other states: 1 running (its lock held), 2 failed (an output, no DONE; a Slurm log), 3 changed
  dirs=($(awk -F '\t' '!/^#/ && $1 ~ /^[0-9]+$/ {print $5}' sw/manifest.tsv))
  mkdir -p "${dirs[1]}" "${dirs[2]}" "${dirs[3]}"
  cp "${dirs[0]}/dataset.h5" "${dirs[2]}/"
  printf 'dynmm: error: train-cf: nan loss at epoch 3\n[2026-01-01 00:00:00] run 2: dynmm run exited with status 1\n' > sw/logs/77_2.out
  printf 'feedbeef\nfinished\n' > "${dirs[3]}/DONE"
  $PY -c 'import fcntl, sys, time; f = open(sys.argv[1] + "/.dynmm.lock", "w"); f.write("pid 4242 on testhost since now\n"); f.flush(); fcntl.lockf(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(30)' \
    "${dirs[1]}" locked &
  holder=$!
  for i in $(seq 100); do [ -e locked ] && break; sleep 0.1; done
  $D status sw > status.log 2>&1 || { cat status.log; echo "FAIL: dynmm status"; kill $holder; exit 1; }
  kill $holder; wait $holder 2>/dev/null
  cat status.log
  grep -q "12 runs: 1 done, 1 running, 1 failed, 1 changed, 8 not started" status.log || { echo "FAIL: status counts"; exit 1; }
  ids=($(awk -F '\t' '!/^#/ && $1 ~ /^[0-9]+$/ {print $2}' sw/manifest.tsv))
  st() { grep -E "^ +$1 +${ids[$1]} +$2 +$3" status.log > /dev/null || { echo "FAIL: run $1 is not '$2 $3'"; exit 1; }; }
  st 0 "done" "3/3"; st 1 "running" "0/3"; st 2 "failed" "1/3"; st 3 "changed" "0/3"; st 4 "not started" "0/3"
  grep -q "pid 4242 on testhost" status.log && grep -q "nan loss at epoch 3" status.log && grep -q "another config hash" status.log ||
    { echo "FAIL: status notes"; exit 1; }
  grep -qF "$P/share/dynmm/jobs/sweep.sbatch sw/manifest.tsv 2 3 4 5 6 7 8 9 10 11" status.log || { echo "FAIL: status: the rerun command"; exit 1; }
  $D status sw --only failed | grep -c "^ *2 " | grep -q 1 || { echo "FAIL: status --only failed"; exit 1; }
  $D export "${dirs[0]}" > export.log 2>&1 && [ -s "${dirs[0]}/results.csv" ] || { cat export.log; echo "FAIL: export of the run"; exit 1; }
  echo "ok: installed into a prefix; from $(pwd): binary, man page, shipped sweep, installed job script, status, export"
) || exit 1
echo ok
