#!/usr/bin/env bash
# The stream stage (the online adapter under the prequential protocol) on a small synthetic set
# with planted drift:
#  - 1, 2 and 3 ranks, and 1 rank with 2 OpenMP threads, reach bitwise the same served adapter
#    weights (the adapter's inputs and training run in reproducible mode, src/nn/gemm.h), and the
#    same window metrics (within 2e-3: the means are summed over ranks) and bitwise the same per-user
#    rows (scoring uses eval's fixed-order kernel); 3 ranks with the item tables sharded
#    (stream.item_shard = on) give bitwise the per-user rows of the unsharded runs
#  - the adapter beats the static aligner on the drifting users, significantly (paired Wilcoxon,
#    Holm), and does not lose on the stable users; stream.h5's per-user tests agree with SciPy
#  - adapter@pq (the served latents product-quantised each window): per-user rows bitwise at every
#    rank count and sharding, within 1% of the adapter's NDCG@10 re-ranking the top 20, the adapter's
#    rows exactly when re-ranking the whole catalogue; in the queries' metric (pq.metric = "query")
#    at 3 ranks within 1% as well
#  - `dynmm report` tables the prequential protocol (all / drifting / stable users) against static
#  - adapter@pq with residual stages (pq.stages = 2): error below one stage's in every window, the
#    exact rows with full re-ranking
#  - error paths: a base trained without split.protocol = "stream", an unknown variant, adapter@pq
#    without adapter; every rank
#    stops and no stream.h5 is left behind
set -u
PY=/usr/bin/python3; chk=tests/reference/check_cf.py; B=$DM_BUILD/dynmm
W=$DM_TMP/stream; rm -rf $W; mkdir -p $W/base
fail() { echo "FAIL: $*"; exit 1; }
common=(--set synth.users=1500 --set synth.items=400 --set synth.clusters=6 --set split.protocol=stream
        --set sasrec.epochs=6 --set sasrec.eval_every=6 --set sasrec.hidden=32 --set 'cf.models=[sasrec]'
        --set align.epochs=6 --set align.hidden=64 --set align.dim=32 --set window.count=6)
$DM_MPIRUN -n 2 $B run "${common[@]}" --set 'run.stages=[synth,train-cf,align]' --set run.dir=$W/base < /dev/null > $W/base.log 2>&1 ||
  { cat $W/base.log; fail "base models"; }
# adapter@pq: the adapter's served latents in 4-bit codes (8 sub-spaces of d 32: 4 bytes an item, 32x
# smaller), the top 20 re-ranked exactly
pq=(--set pq.m=8 --set pq.k=16 --set pq.rerank=20 --set pq.opq=0)   # plain PQ (quickstart.cfg has OPQ)
# r<np>: np ranks with 1 thread each; r1t2: 1 rank with 2 threads (the cores 2 ranks get)
for run in 1 2 3 1t2 3s; do
  np=${run%t2}; np=${np%s}; th=1; [ "$run" = 1t2 ] && th=2
  sh=off; [ "$run" = 3s ] && sh=on
  mkdir -p $W/r$run; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/r$run/
  $DM_MPIRUN -x OMP_NUM_THREADS=$th -n $np $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/r$run \
    --set 'stream.variants=[static,adapter,no_kl,adapter@pq]' "${pq[@]}" --set stream.item_shard=$sh < /dev/null > $W/r$run.log 2>&1 ||
    { cat $W/r$run.log; fail "stream at $np ranks x $th threads (item tables sharded: $sh)"; }
done
grep -A6 "drifting users" $W/r1.log
wts=(stream/adapter/weights stream/no_kl/weights)
desc() { [ "$1" = 1t2 ] && echo "1 rank x 2 threads" || echo "$1 ranks x 1 thread"; }
for run in 2 3 1t2; do
  $PY $chk close $W/r1/stream.h5 $W/r$run/stream.h5 0 "${wts[@]}" && $PY $chk equal $W/r1/stream.h5 $W/r$run/stream.h5 "${wts[@]}" ||
    fail "adapter weights at $(desc $run) are not bitwise those at 1 rank"
  $PY $chk close $W/r1/stream.h5 $W/r$run/stream.h5 2e-3 stream/static/mean stream/adapter/mean stream/no_kl/mean || fail "window metrics at $(desc $run)"
done
$PY $chk equal $W/r2/stream.h5 $W/r1t2/stream.h5 "${wts[@]}" || fail "adapter weights: 1 rank x 2 threads differ from 2 ranks x 1 thread"
grep -q "scored sharded over 3 ranks (stream.item_shard on" $W/r3s.log || { cat $W/r3s.log; fail "stream.item_shard = on did not shard"; }
grep -q "scored sharded" $W/r3.log && fail "stream.item_shard = off sharded"
urows=(prequential/full/static prequential/full/adapter prequential/full/no_kl prequential/full/adapter@pq)
for run in 2 3 1t2 3s; do
  $PY $chk equal $W/r1/stream.h5 $W/r$run/stream.h5 "${urows[@]}" || fail "per-user rows at $(desc ${run%s}) (sharded: $run) differ from 1 rank"
done
$PY - $W/r2/stream.h5 $W/r2/dataset.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
from scipy import stats
f = h5py.File(sys.argv[1], "r"); d = h5py.File(sys.argv[2], "r")
drift = d["synth/drift_user"][...].astype(bool) if "synth/drift_user" in d else None
assert drift is not None, "the synthetic dataset has no drift labels"
ef = int(f["stream"].attrs["eval_from"])
def per_user(v):
    x = f["stream/%s/ndcg10" % v][...][:, ef:].astype(np.float64)
    n = (~np.isnan(x)).sum(1)
    return np.where(n > 0, np.nansum(x, 1) / np.maximum(n, 1), np.nan)
s, a = per_user("static"), per_user("adapter")
ok = ~np.isnan(s) & ~np.isnan(a)
g = f["stream/adapter"].attrs
for k, m in enumerate([ok, ok & drift, ok & ~drift]):
    diff = a[m] - s[m]
    p = stats.wilcoxon(a[m], s[m], zero_method="wilcox", correction=False, method="auto" if m.sum() <= 50 else "approx").pvalue
    assert int(g["users_tested"][k]) == m.sum(), ("users", k, g["users_tested"][k], m.sum())
    assert abs(g["vs_static_diff"][k] - diff.mean()) < 1e-6, ("diff", k, g["vs_static_diff"][k], diff.mean())
    assert abs(g["vs_static_p"][k] - p) <= 1e-6 + 1e-4 * p, ("p", k, g["vs_static_p"][k], p)
dd, sd = g["vs_static_diff"][1], g["vs_static_diff"][2]
print("adapter - static, per-user NDCG@10: drifting %+.4f (p Holm %.2g, %d users), stable %+.4f (p Holm %.2g, %d users)"
      % (dd, g["vs_static_p_holm"][1], g["users_tested"][1], sd, g["vs_static_p_holm"][2], g["users_tested"][2]))
assert dd > 0 and g["vs_static_p_holm"][1] < 0.01, "the adapter does not beat static on the drifting users"
assert not (sd < 0 and g["vs_static_p_holm"][2] < 0.05), "the adapter loses on the stable users"
PYEOF
# adapter@pq: codebooks retrained on each window's served latents; within 1% of the float adapter's
# NDCG@10 with the top 20 re-ranked (the target for PQ); with pq.rerank above the catalogue
# (400 items) it is the exact scorer: every per-user row bitwise the adapter's (that run with OPQ,
# pq.opq = 3: its relative error at most plain PQ's in every window)
mkdir -p $W/pqx; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/pqx/
$DM_MPIRUN -n 2 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/pqx --set 'stream.variants=[adapter,adapter@pq]' "${pq[@]}" \
  --set pq.rerank=400 --set pq.opq=3 < /dev/null > $W/pqx.log 2>&1 || { cat $W/pqx.log; fail "adapter@pq with pq.rerank 400"; }
$PY - $W/r1/stream.h5 $W/pqx/stream.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f, g = (h5py.File(p, "r") for p in sys.argv[1:])
ch, off = f["columns/chars"][...].tobytes(), f["columns/offsets"][...]
cols = [ch[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
h, n = cols.index("hit@10"), cols.index("ndcg@10")
a, q = ([x[h], x[n]] for x in (f["stream/%s" % v].attrs["overall"] for v in ("adapter", "adapter@pq")))
err = f["stream/adapter@pq/rel_err"][...]
W = len(err)
assert f["stream/adapter@pq"].attrs["pq_m"] == 8 and f["stream/adapter@pq"].attrs["pq_k"] == 16
assert np.all((err > 0) & (err < 0.5)), err
print("adapter@pq (m 8, k 16, rerank 20): overall hit@10 %.4f ndcg@10 %.4f; float adapter %.4f %.4f; relative error %.3f..%.3f over %d windows"
      % (q[0], q[1], a[0], a[1], err.min(), err.max(), W))
assert q[1] >= 0.99 * a[1], "adapter@pq ndcg@10 %.4f is more than 1%% below the adapter's %.4f" % (q[1], a[1])
x, y = g["prequential/full/adapter"][...], g["prequential/full/adapter@pq"][...]
assert x.tobytes() == y.tobytes(), "pq.rerank above the catalogue: adapter@pq rows differ from the adapter's"
assert g["stream/adapter"].attrs["overall"].tobytes() == g["stream/adapter@pq"].attrs["overall"].tobytes()
eo = g["stream/adapter@pq/rel_err"][...]
assert np.all(eo <= err * (1 + 1e-3)), ("OPQ's relative error above plain PQ's", eo, err)
print("adapter@pq with pq.rerank 400: every per-user row bitwise the adapter's; with OPQ (3 rounds) relative error %.3f..%.3f per window"
      % (eo.min(), eo.max()))
PYEOF
# residual stages (pq.stages = 2): stage 0 is the one-stage codebook of the run above (same seed),
# so the relative error falls in every window; with pq.rerank above the catalogue the rows are
# bitwise the adapter's
mkdir -p $W/pqs; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/pqs/
$DM_MPIRUN -n 2 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/pqs --set 'stream.variants=[adapter,adapter@pq]' "${pq[@]}" \
  --set pq.rerank=400 --set pq.stages=2 < /dev/null > $W/pqs.log 2>&1 || { cat $W/pqs.log; fail "adapter@pq with pq.stages 2"; }
$PY - $W/r1/stream.h5 $W/pqs/stream.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f, g = (h5py.File(p, "r") for p in sys.argv[1:])
assert g["stream/adapter@pq"].attrs["pq_stages"] == 2 and f["stream/adapter@pq"].attrs["pq_stages"] == 1
err, es = f["stream/adapter@pq/rel_err"][...], g["stream/adapter@pq/rel_err"][...]
assert np.all(es < err), ("two stages' relative error not below one stage's", es, err)
x, y = g["prequential/full/adapter"][...], g["prequential/full/adapter@pq"][...]
assert x.tobytes() == y.tobytes(), "pq.stages 2, pq.rerank above the catalogue: adapter@pq rows differ from the adapter's"
print("adapter@pq with 2 residual stages: relative error %.3f..%.3f per window (one stage %.3f..%.3f); full re-ranking bitwise the adapter's"
      % (es.min(), es.max(), err.min(), err.max()))
PYEOF

# pq.metric = "query" at 3 ranks: the codes in the metric of the window's served user latents (this
# rank's share of the second moment, bitwise any sharding: tests/mpi/test_pq_train), the top 20
# re-ranked; NDCG@10 within 1% of the float adapter's
mkdir -p $W/pqm; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/pqm/
$DM_MPIRUN -n 3 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/pqm --set 'stream.variants=[adapter,adapter@pq]' "${pq[@]}" \
  --set pq.metric=query < /dev/null > $W/pqm.log 2>&1 || { cat $W/pqm.log; fail "adapter@pq with pq.metric=query at 3 ranks"; }
$PY - $W/r1/stream.h5 $W/pqm/stream.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f, g = (h5py.File(p, "r") for p in sys.argv[1:])
ch, off = g["columns/chars"][...].tobytes(), g["columns/offsets"][...]
cols = [ch[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
n = cols.index("ndcg@10")
a, q, p = g["stream/adapter"].attrs["overall"][n], g["stream/adapter@pq"].attrs["overall"][n], f["stream/adapter@pq"].attrs["overall"][n]
assert g["prequential/full/adapter"][...].tobytes() == f["prequential/full/adapter"][...].tobytes(), "the float adapter's rows changed"
print("adapter@pq in the queries' metric (m 8, k 16, rerank 20, 3 ranks): overall ndcg@10 %.4f; plain PQ %.4f; float adapter %.4f" % (q, p, a))
assert q >= 0.99 * a, "adapter@pq in the metric: ndcg@10 %.4f is more than 1%% below the adapter's %.4f" % (q, a)
PYEOF
# dynmm report tables the prequential protocol (split "prequential": all, drifting and stable users)
# against the static aligner, with the stage's per-user means
$B report $W/r2 --set report.out=$W/report --set stats.bootstrap=0 --set report.gnuplot= > $W/report.log 2>&1 || { cat $W/report.log; fail "report of a stream run"; }
for t in prequential_full prequential_full-drifting prequential_full-stable; do [ -s $W/report/$t.md ] || fail "report: no table $t"; done
want=$($PY -c "import h5py; a = h5py.File('$W/r2/stream.h5', 'r')['stream/adapter'].attrs; print('%.4f' % a['user_ndcg10'][1])")
grep "^| adapter |" $W/report/prequential_full-drifting.md | grep -qE "\| \**$want\**†" || { cat $W/report/prequential_full-drifting.md; fail "report: drifting users' adapter NDCG@10 is not $want with a significance mark"; }
grep -q "than static aligner" $W/report/prequential_full-drifting.md || fail "report: the prequential tables are not compared with the static aligner"
# error paths
mkdir -p $W/bad; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/bad/
$DM_MPIRUN -n 2 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/bad --set split.protocol=loo < /dev/null > $W/bad1.log 2>&1 &&
  fail "stream accepted split.protocol = loo"
grep -q 'split.protocol = "loo": the streaming protocol needs base models trained before the stream' $W/bad1.log || { cat $W/bad1.log; fail "no message for split.protocol"; }
$DM_MPIRUN -n 3 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/bad --set 'stream.variants=[static,adaptr]' < /dev/null > $W/bad2.log 2>&1 &&
  fail "stream accepted an unknown variant"
grep -q "unknown variant 'adaptr'" $W/bad2.log || { cat $W/bad2.log; fail "no message for the unknown variant"; }
$DM_MPIRUN -n 2 $B stream configs/quickstart.cfg "${common[@]}" --set run.dir=$W/bad --set 'stream.variants=[static,adapter@pq]' < /dev/null > $W/bad3.log 2>&1 &&
  fail "stream accepted adapter@pq without adapter"
grep -q "'adapter@pq' quantises the latents the adapter serves, but 'adapter' is not listed" $W/bad3.log || { cat $W/bad3.log; fail "no message for adapter@pq alone"; }
[ ! -e $W/bad/stream.h5 ] && [ -z "$(ls $W/bad | grep -v -e '^dataset.h5$' -e '^cf.h5$' -e '^align.h5$')" ] || { ls $W/bad; fail "output left after an error"; }
echo ok
