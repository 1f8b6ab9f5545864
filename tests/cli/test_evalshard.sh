#!/usr/bin/env bash
# Item-sharded evaluation (eval.item_shard, stages/evalshard.h) end to end on a small synthetic run:
#  - results.h5 with the item tables of sasrec and align sharded at 1, 2, 3 and 4 ranks
#    (--oversubscribe) holds every per-user dataset bitwise equal to the unsharded run at 1 rank
#    (full, uni99 and pop19 on valid and test; pop, which is not a dot-product model, alongside),
#    and so under pessimistic ties at 3 ranks
#  - auto shards when the table exceeds a quarter of eval.mem_per_rank, and only at more than one
#    rank; off never shards
#  - sampled-user evaluation (eval.user_fraction 0.3) at 1 rank unsharded and 3 ranks sharded: the
#    same users in both (their count within 4 sd of the binomial's mean), their rows bitwise those of
#    the whole run, every other row NaN, one user set for every entry, the count stored as users_sampled;
#    the report's captions name the sample (and only then)
#  - an unknown value of the key is refused naming it
set -u
PY=/usr/bin/python3; chk=tests/reference/check_stress.py; B=$DM_BUILD/dynmm
export OMP_WAIT_POLICY=passive
W=$DM_TMP/evalshard; rm -rf "$W"; mkdir -p "$W/base"
fail() { echo "FAIL: $*"; exit 1; }
common=(--set synth.users=500 --set synth.items=301 --set synth.mean_len=5 --set sasrec.epochs=2 --set sasrec.eval_every=2
        --set sasrec.hidden=16 --set sasrec.maxlen=20 --set 'cf.models=[pop,sasrec]' --set align.epochs=2 --set align.batch=64
        --set align.hidden=32 --set align.dim=16 --set 'eval.models=[pop,sasrec,align]' --set 'eval.protocols=[full,uni99,pop19]'
        --set eval.batch=40)
$DM_MPIRUN -n 2 $B run "${common[@]}" --set 'run.stages=[synth,train-cf,align]' --set run.dir=$W/base < /dev/null > $W/base.log 2>&1 || { cat $W/base.log; fail "synth, train-cf, align"; }
ev() { # name, ranks, settings...
  local name=$1 np=$2; shift 2
  mkdir -p $W/$name; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/$name/
  $DM_MPIRUN -n $np $B eval "${common[@]}" "$@" --set run.dir=$W/$name < /dev/null > $W/$name.log 2>&1 || { cat $W/$name.log; fail "eval $name at $np ranks"; }
}
ev off1 1 --set eval.item_shard=off
for np in 1 2 3 4; do
  ev on$np $np --set eval.item_shard=on
  [ "$(grep -c 'sharded over '$np' ranks' $W/on$np.log)" = 2 ] || { cat $W/on$np.log; fail "sasrec and align not sharded at $np ranks"; }
  $PY $chk equal $W/off1/results.h5 $W/on$np/results.h5 || fail "sharded rows at $np ranks differ from the unsharded ones"
done
grep "sharded over 4 ranks" $W/on4.log
ev poff 1 --set eval.item_shard=off --set eval.ties=pessimistic
ev pon3 3 --set eval.item_shard=on --set eval.ties=pessimistic
$PY $chk equal $W/poff/results.h5 $W/pon3/results.h5 || fail "sharded rows under pessimistic ties"

# auto: the tables are at most 301 x 16 floats (0.018 MiB; synth keeps the items that occur); a budget of 0.05 MiB puts them above a quarter
ev auto2 2 --set eval.mem_per_rank=0.05
grep -q "sasrec: item table [0-9]* x 16 (0.0[0-9]* MiB) sharded over 2 ranks, .*memory 0.05 MiB per rank" $W/auto2.log || { cat $W/auto2.log; fail "auto did not shard above a quarter of the budget"; }
ev auto1 1 --set eval.mem_per_rank=0.05
ev big2 2 --set eval.mem_per_rank=1
ev off2 2 --set eval.item_shard=off --set eval.mem_per_rank=0.05
for r in auto1 big2 off2; do grep -q "sharded over" $W/$r.log && fail "$r sharded"; done
$PY $chk equal $W/off1/results.h5 $W/auto2/results.h5 || fail "auto at 2 ranks"

# sampled users
ev frac1 1 --set eval.item_shard=off --set eval.user_fraction=0.3
ev frac3 3 --set eval.item_shard=on --set eval.user_fraction=0.3
grep -q "eval: [0-9]* of [0-9]* users sampled (eval.user_fraction 0.3)" $W/frac1.log || { cat $W/frac1.log; fail "no log of the sampled users"; }
for r in frac1 frac3; do
  $PY - $W/off1/results.h5 $W/$r/results.h5 <<'EOF' || fail "sampled-user rows of $r"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
n = int(b.attrs["n_users"]); k = int(b.attrs["users_sampled"]); f = float(b.attrs["user_fraction"])
assert f == 0.3 and abs(k - 0.3 * n) <= 4 * (0.21 * n) ** 0.5, (k, n)
kept = None
for sp in ("valid", "test"):
    for p in ("full", "uni99", "pop19"):
        for m in ("pop", "sasrec", "align"):
            x, y = a["%s/%s/%s" % (sp, p, m)][...], b["%s/%s/%s" % (sp, p, m)][...]
            sampled, scored = ~np.isnan(y[:, 0]), ~np.isnan(x[:, 0])
            assert 0 < sampled.sum() <= k, (sp, p, m, sampled.sum(), k)
            assert np.array_equal(x[sampled].view(np.uint64), y[sampled].view(np.uint64)), (sp, p, m, "rows differ")
            # one user set for every entry: users scored in the whole run are sampled or not alike
            if kept is None: kept = sampled | ~scored
            assert not (sampled & ~kept).any() and not (scored & kept & ~sampled).any(), (sp, p, m, "another user set")
print("sampled users: %d of %d; rows equal" % (k, n))
EOF
done
$PY - $W/frac1/results.h5 $W/frac3/results.h5 <<'EOF' || fail "1 and 3 ranks sampled different users"
import sys, h5py, numpy as np
a, b = [h5py.File(f, "r") for f in sys.argv[1:]]
x, y = a["test/full/sasrec"][...], b["test/full/sasrec"][...]
assert np.array_equal(np.isnan(x[:, 0]), np.isnan(y[:, 0])) and a.attrs["users_sampled"] == b.attrs["users_sampled"]
EOF
# the report says which users its tables are on
for r in frac1 off1; do $B report $W/$r --set stats.bootstrap=100 > $W/report_$r.log 2>&1 || { cat $W/report_$r.log; fail "report on $r"; }; done
grep -q "On a sample of the users: each took part with probability 0.3 (eval.user_fraction)" $W/frac1/report/test_full.md ||
  { head -3 $W/frac1/report/test_full.md; fail "the caption does not name the sampled users"; }
grep -q "sample of the users" $W/off1/report/test_full.md && fail "a caption names a sample where every user was scored"

$B eval "${common[@]}" --set eval.item_shard=maybe --set run.dir=$W/off1 > $W/err.log 2>&1 && fail "eval.item_shard=maybe accepted"
grep -q "eval.item_shard" $W/err.log || { cat $W/err.log; fail "the error does not name eval.item_shard"; }
echo ok
