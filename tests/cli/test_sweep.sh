#!/usr/bin/env bash
# dynmm sweep and the job scripts without Slurm (mpirun):
#  - expansion: grid x seeded random search x seeds; run count, unique deterministic ids, the same
#    draws at every grid point, values within their distributions, manifest.tsv == manifest.json,
#    each run's hash == `dynmm config base.cfg --set ... --hash`, the array script's directives
#  - bad sweep files are refused with a message naming the entry
#  - jobs/sweep.sbatch runs a small sweep (2 ranks each), writes DONE markers, skips finished runs,
#    reruns a run whose marker is stale (its finished stages skipped); report covers every run
#  - jobs/run.sbatch: SIGUSR1 makes the stage checkpoint and the job stop non-zero; the rerun resumes
#  - jobs/eval.sbatch re-evaluates a run with other protocols (EVAL_DONE)
set -u
PY=/usr/bin/python3; B=$DM_BUILD/dynmm
W=$DM_TMP/sweep; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
export DM_BIN=$B DM_MPIRUN_ARGS="--oversubscribe --bind-to none" OMP_WAIT_POLICY=passive
ROOT=$PWD

# ---- expansion ---------------------------------------------------------------------------------
cat > "$W/big.cfg" <<EOF
sweep: {
  base = "$ROOT/configs/quickstart.cfg";
  dir = "$W/big";
  grid = ["sasrec.hidden=[16,32]", "sasrec.dropout=0.2|0.5"];
  random = ["sasrec.lr=loguniform(1e-4,1e-2)", "sasrec.blocks=int(1,3)", "sasrec.loss=choice(bce,ce)"];
  samples = 3;
  seed = 5;
  seeds = [1, 2];
  ranks = 3;
  time = "00:05:00";
  partition = "short";
  parallel = 4;
};
synth: { users = 500; };
EOF
$B sweep "$W/big.cfg" > "$W/big.log" 2>&1 || { cat "$W/big.log"; fail "sweep"; }
cat "$W/big.log"
M=$W/big/manifest.tsv
[ "$(grep -vc '^#\|^index' "$M")" = 24 ] || fail "expected 2 x 2 x 3 samples x 2 seeds = 24 runs"
[ "$(grep -v '^#\|^index' "$M" | cut -f2 | sort -u | wc -l)" = 24 ] || fail "run ids are not unique"
[ "$(grep -v '^#\|^index' "$M" | cut -f3 | sort -u | wc -l)" = 12 ] || fail "expected 12 configurations"
cp "$M" "$W/manifest1.tsv"
$B sweep "$W/big.cfg" > /dev/null 2>&1 && cmp -s "$M" "$W/manifest1.tsv" || fail "the expansion is not deterministic"
$PY - "$M" "$W/big/manifest.json" <<'EOF' || fail "manifest contents"
import json, math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#") and not l.startswith("index")]
js = json.load(open(sys.argv[2]))
assert js["format"] == "dynmm-sweep-manifest" and js["version"] == 1 and len(js["runs"]) == len(rows) == 24
draws = {}
for r, j in zip(rows, js["runs"]):
    assert [str(j["index"]), j["id"], j["config"], str(j["seed"]), j["dir"], j["hash"]] == r[:6], (r[:6], j)
    assert j["set"] == r[6:], (j["set"], r[6:])
    v = dict(s.split("=", 1) for s in r[6:])
    assert v["run.dir"] == r[4] and v["run.seed"] == r[3] and r[4].endswith("/" + r[1])
    lr, blocks = float(v["sasrec.lr"]), int(v["sasrec.blocks"])
    assert 1e-4 <= lr <= 1e-2 and 1 <= blocks <= 3 and v["sasrec.loss"] in ("bce", "ce"), v
    assert len(v["sasrec.lr"].replace(".", "").replace("e-0", "").lstrip("0")) <= 7, v["sasrec.lr"]
    draws.setdefault((v["sasrec.hidden"], v["sasrec.dropout"]), []).append((v["sasrec.lr"], v["sasrec.blocks"], v["sasrec.loss"]))
sets = {tuple(sorted(set(d))) for d in draws.values()}
assert len(draws) == 4 and len(sets) == 1 and len(next(iter(sets))) == 3, draws   # the same 3 draws at every grid point
print("ok: 24 runs, 12 configurations, 3 random draws shared by the 4 grid points, TSV == JSON")
EOF
line=$(grep -v '^#\|^index' "$M" | sed -n 7p)
IFS=$'\t' read -r -a f <<< "$line"
args=(); for s in "${f[@]:6}"; do args+=(--set "$s"); done
[ "$($B config "$W/big/base.cfg" "${args[@]}" --hash)" = "${f[5]}" ] || fail "the manifest hash is not the run's config hash"
S=$W/big/sweep.sbatch
for d in '--array=0-23%4' '--ntasks=3' '--time=00:05:00' '--partition=short' '--signal=B:USR1@60' '--requeue' "--chdir=$ROOT" "--output=$W/big/logs/%A_%a.out"; do
  grep -q -- "^#SBATCH $d\$" "$S" || fail "sweep.sbatch lacks #SBATCH $d"
done
grep -q "jobs/sweep.sbatch $W/big/manifest.tsv" "$S" || fail "sweep.sbatch does not call jobs/sweep.sbatch on the manifest"
[ -d "$W/big/logs" ] || fail "no logs directory for Slurm's output"
echo "ok: manifest hashes and the array script"

bad() { # pattern, --set...
  local pat=$1; shift
  if $B sweep "$W/big.cfg" --set sweep.dir="$W/bad" "$@" > "$W/bad.log" 2>&1; then fail "sweep with $* succeeded"; fi
  grep -q -- "$pat" "$W/bad.log" || { cat "$W/bad.log"; fail "expected '$pat'"; }
}
bad "unknown key 'sasrec.hiden'" --set 'sweep.grid=sasrec.hiden=1|2'
bad "run.seed cannot be swept" --set 'sweep.grid=run.seed=1|2'
bad "'sasrec.hidden' must be an integer" --set 'sweep.grid=sasrec.hidden=16|x'
bad "sweep.samples = 0" --set sweep.samples=0
bad "is swept twice" --set 'sweep.grid=sasrec.lr=0.1|0.2'
bad "not a float key" --set 'sweep.random=sasrec.hidden=uniform(1|2)' --set 'sweep.grid=sasrec.dropout=0.1|0.2'
echo "ok: bad sweep files refused"

# ---- running a small sweep without Slurm ---------------------------------------------------------
cat > "$W/small.cfg" <<EOF
sweep: {
  base = "$ROOT/configs/quickstart.cfg";
  dir = "$W/small";
  grid = ["sasrec.hidden=[16,24]"];
  seeds = [1, 2];
  ranks = 2;
};
run: { stages = ["synth", "train-cf", "eval"]; };
synth: { users = 300; items = 200; };
sasrec: { epochs = 2; eval_every = 1; maxlen = 20; };
cf: { models = ["pop", "sasrec"]; };
eval: { models = ["pop", "sasrec"]; splits = ["test"]; protocols = ["full", "uni99"]; };
stats: { bootstrap = 100; };
EOF
$B sweep "$W/small.cfg" > /dev/null 2>&1 || fail "small sweep"
M=$W/small/manifest.tsv
bash jobs/sweep.sbatch "$M" > "$W/run1.log" 2>&1 || { tail -40 "$W/run1.log"; fail "jobs/sweep.sbatch"; }
grep -q "all 4 runs of" "$W/run1.log" || fail "not every run finished"
for d in $(grep -v '^#\|^index' "$M" | cut -f5); do
  [ -s "$d/results.h5" ] || fail "$d has no results"
  [ "$(head -n 1 "$d/DONE")" = "$(grep -P "\t$d\t" "$M" | cut -f6)" ] || fail "$d/DONE does not hold the run's hash"
done
bash jobs/sweep.sbatch "$M" > "$W/run2.log" 2>&1 || fail "second pass"
[ "$(grep -c 'finished before (DONE), skipped' "$W/run2.log")" = 4 ] || { cat "$W/run2.log"; fail "finished runs were not skipped"; }
d1=$(grep -v '^#\|^index' "$M" | head -n 1 | cut -f5)
echo stale > "$d1/DONE"
bash jobs/sweep.sbatch "$M" 0 > "$W/run3.log" 2>&1 || fail "rerun of a stale run"
grep -q "written for other settings" "$W/run3.log" && grep -q "train-cf: .* is current, skipped" "$W/run3.log" || { cat "$W/run3.log"; fail "a stale DONE should rerun with current stages skipped"; }
echo "ok: DONE markers, skipping, stale markers"
$B report "$W/small" --set report.baseline=pop > "$W/report.log" 2>&1 || { cat "$W/report.log"; fail "report on the sweep"; }
R=$W/small/report
[ -s "$R/test_full.csv" ] && [ -s "$R/index.md" ] || fail "no report in $R"
$PY - "$R/test_full.csv" <<'EOF' || fail "the report does not cover the sweep"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["metric"] == "ndcg@10"]
sas = sorted(r["sasrec.hidden"] for r in rows if r["model"] == "sasrec")
assert sas == ["16", "24"], sas
assert all(r["seeds"] == "2" for r in rows), [r["seeds"] for r in rows]
assert all(r["test"] == "ttest/seeds" for r in rows if r["model"] == "sasrec"), rows
print("ok: the report covers 2 configurations x 2 seeds")
EOF

# ---- SIGUSR1: checkpoint, stop, resume ------------------------------------------------------------
cfgset=(--set run.dir="$W/one" --set 'run.stages=[synth,train-cf]' --set synth.users=800 --set synth.items=300
        --set 'cf.models=[sasrec]' --set sasrec.epochs=200 --set sasrec.eval_every=200 --set sasrec.checkpoint_every=0)
bash jobs/run.sbatch configs/quickstart.cfg "${cfgset[@]}" > "$W/one1.log" 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "training users" "$W/one1.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -USR1 $pid
wait $pid; rc=$?
[ $rc -ne 0 ] || { cat "$W/one1.log"; fail "run.sbatch exited 0 after SIGUSR1 (finished before the signal?)"; }
grep -q "received SIGUSR1" "$W/one1.log" && grep -q "checkpoint written" "$W/one1.log" || { cat "$W/one1.log"; fail "no checkpoint on SIGUSR1"; }
[ -f "$W/one/ckpt_sasrec.h5" ] && [ ! -f "$W/one/DONE" ] || fail "expected a checkpoint and no DONE"
bash jobs/run.sbatch configs/quickstart.cfg "${cfgset[@]}" > "$W/one2.log" 2>&1 || { cat "$W/one2.log"; fail "the resumed run failed"; }
grep -q "resuming from" "$W/one2.log" && [ -s "$W/one/DONE" ] && [ -s "$W/one/cf.h5" ] || { cat "$W/one2.log"; fail "the rerun did not resume"; }
echo "ok: SIGUSR1 checkpointed and stopped the run; the rerun resumed ($(grep -o 'resuming from.*' "$W/one2.log" | cut -c1-80))"

# ---- evaluation only --------------------------------------------------------------------------------
bash jobs/eval.sbatch "$M" --set 'eval.protocols=[full]' > "$W/eval.log" 2>&1 || { cat "$W/eval.log"; fail "eval.sbatch"; }
for d in $(grep -v '^#\|^index' "$M" | cut -f5); do
  [ -s "$d/EVAL_DONE" ] || fail "$d has no EVAL_DONE"
  $PY -c "import h5py,sys; f=h5py.File(sys.argv[1]); sys.exit(0 if list(f['test'].keys()) == ['full'] else 1)" "$d/results.h5" || fail "$d: not re-evaluated"
done
bash jobs/eval.sbatch "$M" --set 'eval.protocols=[full]' > "$W/eval2.log" 2>&1 || fail "eval.sbatch again"
[ "$(grep -c 'finished before (EVAL_DONE)' "$W/eval2.log")" = 4 ] || fail "eval.sbatch did not skip finished evaluations"
echo ok
