#!/usr/bin/env bash
# The pq stage and the <model>@pq models of eval (stages/stage_pq.c, stages/pq_model.h) on a small
# synthetic run (synth, train-cf, align, pq, eval):
#  - pq.h5 (codebooks and codes of the aligner's and SASRec's items) is bitwise the same at 1, 2 and
#    3 ranks, and every stored code is the nearest centroid of its sub-vector (NumPy, float64, up to
#    float-rounding near ties)
#  - eval's <model>@pq rows are bitwise the same at 1 and 3 ranks
#  - align@pq's per-user full-ranking rows are those of the decoded latents' dot products: each MRR
#    lies within the rank interval NumPy finds with the items whose decoded score is within the float
#    tolerance of the target's counted as either side
#  - with pq.rerank >= the catalogue, align@pq's and sasrec@pq's rows equal align's and sasrec's
#    exactly; with a partial re-ranking the means are printed
#  - the recall@10 pq.h5 reports equals NumPy's recomputation from the stored codes
#  - 4-bit codes (pq.k = 16, eval's fast scan): rows bitwise at 1 and 3 ranks, the exact rows with
#    pq.rerank above the catalogue, half a byte a code in the stage's count
#  - OPQ (pq.opq): pq.h5 with its rotation and eval's rows bitwise at 1 and 3 ranks, the rotation
#    orthogonal, every code nearest to the rotated latent, the error at most plain PQ's, the stored
#    recall NumPy's, the exact rows with pq.rerank above the catalogue (byte and 4-bit codes)
#  - the queries' metric (pq.metric = "query", with and without OPQ): pq.h5 and rows bitwise at 1
#    and 3 ranks, rotation query_rotation^T = I, codes nearest to x rotation, the squared score error
#    over the test users below plain PQ's, the stored recall NumPy's, the exact rows with full
#    re-ranking
#  - residual stages (pq.stages = 2, 4-bit codes, in the metric with OPQ): pq.h5 and rows bitwise at 1
#    and 3 ranks, the shapes, every stage's code nearest to its residual, error and recall NumPy's,
#    the exact rows with full re-ranking
#  - refusals: pq.m not dividing the latent dimension, pq.k above 256, pq.stages 0, a model pq cannot quantise,
#    eval of sasrec@pq when pq.h5 holds only the aligner
set -u
PY=/usr/bin/python3; chk=tests/reference/check_cf.py; B=$DM_BUILD/dynmm
export OMP_WAIT_POLICY=passive
W=$DM_TMP/pq; rm -rf $W; mkdir -p $W
fail() { echo "FAIL: $*"; exit 1; }
common=(--set synth.users=500 --set synth.items=200 --set synth.clusters=6 --set sasrec.epochs=4 --set sasrec.eval_every=4
        --set sasrec.hidden=16 --set sasrec.maxlen=20 --set 'cf.models=[sasrec]' --set align.epochs=6 --set align.batch=64
        --set align.hidden=32 --set align.dim=16 --set 'pq.models=[align,sasrec]' --set pq.m=4 --set pq.k=32
        --set 'eval.models=[align,align@pq,sasrec,sasrec@pq]' --set 'eval.protocols=[full,uni99]')
$DM_MPIRUN -n 1 $B run "${common[@]}" --set 'run.stages=[synth,train-cf,align,pq,eval]' --set run.dir=$W/r1 < /dev/null > $W/r1.log 2>&1 || { cat $W/r1.log; fail "pipeline at 1 rank"; }
grep -E "pq (align|sasrec)|@pq" $W/r1.log | head -12
for np in 2 3; do
  mkdir -p $W/r$np; cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/r$np/
  $DM_MPIRUN -n $np $B pq "${common[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; fail "pq at $np ranks"; }
  $PY $chk equal $W/r1/pq.h5 $W/r$np/pq.h5 align sasrec || fail "pq.h5 at $np ranks"
done
echo "ok: pq.h5 (codebooks, codes) bitwise the same at 1, 2 and 3 ranks"
# codebooks trained on pq.sample evenly spaced items: bitwise at 1 and 3 ranks, every item encoded
for np in 1 3; do
  mkdir -p $W/s$np; cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/s$np/
  $DM_MPIRUN -n $np $B pq "${common[@]}" --set pq.sample=120 --set run.dir=$W/s$np < /dev/null > $W/s$np.log 2>&1 || { cat $W/s$np.log; fail "pq.sample at $np ranks"; }
done
$PY $chk equal $W/s1/pq.h5 $W/s3/pq.h5 align sasrec || fail "pq.sample: pq.h5 at 3 ranks"
$PY - $W/s3/pq.h5 $W/r1/align.h5 <<'EOF2' || fail "pq.sample: codes"
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["align"]
e = h5py.File(sys.argv[2], "r")["align/z_base"][...].astype(np.float64)
M, K = int(g.attrs["m"]), int(g.attrs["k"])
cb, codes = g["codebook"][...].astype(np.float64).reshape(M, K, -1), g["codes"][...]
assert int(g.attrs["train_items"]) == 120 and codes.shape[0] == e.shape[0], (g.attrs["train_items"], codes.shape)
ds = cb.shape[2]
for m in range(M):
    d2 = ((e[:, None, m * ds:(m + 1) * ds] - cb[m][None]) ** 2).sum(-1)
    assert (d2[np.arange(len(e)), codes[:, m]] <= d2.min(1) * (1 + 1e-5) + 1e-12).all(), m
print("ok: pq.sample = 120 of %d items: bitwise at 1 and 3 ranks, every item's codes nearest" % len(e))
EOF2
cp $W/r1/results.h5 $W/adc.h5
# a user's ADC scores depend on its state and the codes alone: eval's rows bitwise at 3 ranks
$DM_MPIRUN -n 3 $B eval "${common[@]}" --set run.dir=$W/r3 < /dev/null > $W/eval3.log 2>&1 || { cat $W/eval3.log; fail "eval at 3 ranks"; }
$PY $chk equal $W/adc.h5 $W/r3/results.h5 test/full/align@pq valid/full/align@pq test/uni99/align@pq test/full/sasrec@pq || fail "align@pq rows at 3 ranks"
$B eval "${common[@]}" --set run.dir=$W/r1 --set pq.rerank=1000000 > $W/exact.log 2>&1 || { cat $W/exact.log; fail "eval with pq.rerank above the catalogue"; }
cp $W/r1/results.h5 $W/exact.h5
$B eval "${common[@]}" --set run.dir=$W/r1 --set pq.rerank=20 > $W/part.log 2>&1 || { cat $W/part.log; fail "eval with pq.rerank=20"; }
cp $W/r1/results.h5 $W/part.h5
$PY - $W/r1/dataset.h5 $W/r1/align.h5 $W/r1/cf.h5 $W/r1/pq.h5 $W/adc.h5 $W/exact.h5 $W/part.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
ds, al, cf, pq, adc, exact, part = sys.argv[1:]
with h5py.File(ds, "r") as f:
    off, item, roles = f["users/offsets"][...], f["inter/item"][...], f["split/loo"][...]
    n = int(f.attrs["n_items"])
src = {"align": (al, "align/z_base", "align/h_test"), "sasrec": (cf, "sasrec/e_cf", "sasrec/state_test")}
P = h5py.File(pq, "r")

def cols(f):
    return [f["columns/chars"][...].tobytes()[a:b].decode() for a, b in zip(f["columns/offsets"][:-1], f["columns/offsets"][1:])]

def decoded(model):
    g = P[model]
    M, K = int(g.attrs["m"]), int(g.attrs["k"])
    cb, codes = g["codebook"][...].astype(np.float64).reshape(M, K, -1), g["codes"][...].astype(np.int64)
    return cb, codes, np.concatenate([cb[m][codes[:, m]] for m in range(M)], axis=1)

for model, (path, it, st) in src.items():
    with h5py.File(path, "r") as f:
        e, H = f[it][...].astype(np.float64), f[st][...].astype(np.float64)
    cb, codes, xh = decoded(model)
    M, K, ds_ = cb.shape
    # every code is the nearest centroid (float64; a code within 1e-5 relative of the best is a near tie)
    bad = 0
    for m in range(M):
        d2 = ((e[:, None, m * ds_:(m + 1) * ds_] - cb[m][None]) ** 2).sum(-1)
        got = d2[np.arange(n), codes[:, m]]
        bad += int((got > d2.min(1) * (1 + 1e-5) + 1e-12).sum())
    assert bad == 0, "%s: %d codes are not the nearest centroid" % (model, bad)
    rel = ((e - xh) ** 2).sum() / (e ** 2).sum()
    assert abs(rel - P[model].attrs["rel_err"]) <= 1e-5 * max(rel, 1e-3), (rel, P[model].attrs["rel_err"])
    # recall@10 of the exact top 10 (pq.h5's sample: user t * n_users / S of the test states)
    S = min(len(H), 1000)
    hits = np.zeros(3)
    for t in range(S):
        q = H[t * len(H) // S]
        ex, ad = e @ q, xh @ q
        best = set(np.argsort(-ex, kind="stable")[:10])
        order = np.argsort(-ad, kind="stable")
        for r, R in enumerate([10, 100, 1000]):
            top = order[:R]
            hits[r] += len(best & set(top[np.argsort(-ex[top], kind="stable")[:10]]))
    rec = hits / (10.0 * S)
    stored = P[model].attrs["recall_at10"]
    assert np.abs(rec - stored).max() <= 0.01, "%s: recall %s, pq.h5 says %s" % (model, rec, stored)
    print("ok: %s: %d codes nearest, relative error %.4f, recall@10 ADC %.4f (rerank 100: %.4f), NumPy %s" % (model, n * M, rel, stored[0], stored[1], np.round(rec, 4)))

    # align@pq's rows against the decoded dot products: the MRR of each user within NumPy's interval
    with h5py.File(adc, "r") as f:
        c = cols(f)
        mrr = f["test/full/%s@pq" % model][:, c.index("mrr")]
    with h5py.File(exact, "r") as f:
        a, b = f["test/full/%s" % model][...], f["test/full/%s@pq" % model][...]
        assert np.array_equal(a, b, equal_nan=True), "%s@pq with pq.rerank >= n_items differs from %s" % (model, model)
        a, b = f["test/uni99/%s" % model][...], f["test/uni99/%s@pq" % model][...]
        assert np.array_equal(a, b, equal_nan=True), "uni99: %s@pq with full re-ranking differs" % model
    g = P[model]
    Mq = int(g.attrs["m"])
    worst = 0
    checked = 0
    for u in range(len(off) - 1):
        r = roles[off[u]:off[u + 1]]
        its = item[off[u]:off[u + 1]]
        if not (r == 2).any():
            continue
        tgt = its[r == 2][0]
        hist = set(its[r < 2]) - {tgt}
        q = H[u]
        s = xh @ q
        # float32 ADC: M table entries of ds products each; bound gamma_(ds+M) sum |q_j x^_j| per item
        tol = (ds_ + Mq) * 2.0 ** -24 / (1 - (ds_ + Mq) * 2.0 ** -24) * (np.abs(xh * q).sum(1))
        keep = np.ones(n, bool)
        keep[list(hist)] = False
        keep[tgt] = False
        sure_above = (keep & (s - tol > s[tgt] + tol[tgt])).sum()
        maybe_above = (keep & (s + tol >= s[tgt] - tol[tgt])).sum()
        lo, hi = 1.0 / (1 + maybe_above), 1.0 / (1 + sure_above)
        assert lo - 1e-12 <= mrr[u] <= hi + 1e-12, "user %d: MRR %.6f outside [%.6f, %.6f]" % (u, mrr[u], lo, hi)
        worst = max(worst, maybe_above - sure_above)
        checked += 1
    print("ok: %s@pq: %d users' full-ranking MRR within the decoded dot products' rank interval (widest %d items); rows with "
          "pq.rerank >= %d items equal %s's" % (model, checked, worst, n, model))
    with h5py.File(adc, "r") as f0, h5py.File(part, "r") as f1:
        k = cols(f0).index("ndcg@10")
        print("   test full NDCG@10: %s %.4f, %s@pq %.4f, with the top 20 re-ranked %.4f" % (
            model, np.nanmean(f0["test/full/%s" % model][:, k]), model, np.nanmean(f0["test/full/%s@pq" % model][:, k]),
            np.nanmean(f1["test/full/%s@pq" % model][:, k])))
EOF
# 4-bit codes (pq.k = 16, fast scan at eval): eval's rows bitwise at 1 and 3 ranks, and with
# pq.rerank above the catalogue equal to the exact scorers' rows; the log counts half a byte a code
mkdir -p $W/f1 $W/f3
for np in 1 3; do
  cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/f$np/
  $DM_MPIRUN -n $np $B run "${common[@]}" --set pq.m=8 --set pq.k=16 --set 'run.stages=[pq,eval]' --set run.dir=$W/f$np < /dev/null > $W/f$np.log 2>&1 ||
    { cat $W/f$np.log; fail "pq.k=16 at $np ranks"; }
done
grep -q "align@pq: 4-bit codes, scored by fast scan" $W/f3.log || { cat $W/f3.log; fail "eval did not say it scores 4-bit codes by fast scan"; }
grep -q "pq align: codes 0.00 MiB (4 bits a code, as eval scores them) vs float32 0.01 MiB (16x)" $W/f1.log || { grep "pq align" $W/f1.log; fail "4-bit codes not counted as such"; }
$PY $chk equal $W/f1/results.h5 $W/f3/results.h5 test/full/align@pq test/uni99/align@pq test/full/sasrec@pq || fail "4-bit align@pq rows at 3 ranks"
$B eval "${common[@]}" --set pq.m=8 --set pq.k=16 --set run.dir=$W/f1 --set pq.rerank=1000000 > $W/f1x.log 2>&1 || { cat $W/f1x.log; fail "4-bit eval with pq.rerank above the catalogue"; }
$PY - $W/f1/results.h5 $W/f3/results.h5 <<'EOF' || fail "4-bit codes"
import sys, h5py, numpy as np
x, fs = (h5py.File(p, "r") for p in sys.argv[1:3])
for m in ("align", "sasrec"):
    for proto in ("full", "uni99"):
        a, b = x["test/%s/%s@pq" % (proto, m)][...], x["test/%s/%s" % (proto, m)][...]
        assert np.array_equal(a, b, equal_nan=True), "%s@pq with full re-ranking differs from %s (%s)" % (m, m, proto)
ex, q = x["test/full/align"].attrs["mean"], fs["test/full/align@pq"].attrs["mean"]
print("ok: 4-bit codes: rows bitwise at 1 and 3 ranks; full re-ranking gives the exact rows; fast scan alone: "
      "full-ranking means %.4f against %.4f exact (first column)" % (q[0], ex[0]))
EOF

# OPQ (pq.opq rounds): pq.h5 (codebooks, codes, rotation) and eval's rows bitwise at 1 and 3 ranks;
# the rotation orthogonal; every code the nearest centroid of the rotated latent; the error at most
# plain PQ's; the stored recall = NumPy's from the rotated queries against the decoded codes; with
# pq.rerank above the catalogue the exact rows; byte codes and 4-bit codes (fast scan)
for k in 32 16; do
  mk=(--set pq.k=$k); [ $k = 16 ] && mk+=(--set pq.m=8)   # the shapes of the plain runs above (r1; f1)
  for np in 1 3; do
    mkdir -p $W/o$k.$np; cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/o$k.$np/
    $DM_MPIRUN -n $np $B run "${common[@]}" "${mk[@]}" --set pq.opq=5 --set 'run.stages=[pq,eval]' --set run.dir=$W/o$k.$np < /dev/null > $W/o$k.$np.log 2>&1 ||
      { cat $W/o$k.$np.log; fail "pq.opq=5, pq.k=$k at $np ranks"; }
  done
  grep -q "OPQ 5 rounds" $W/o$k.1.log || { grep "pq align" $W/o$k.1.log; fail "the log does not name the OPQ rounds"; }
  $PY $chk equal $W/o$k.1/pq.h5 $W/o$k.3/pq.h5 align sasrec || fail "OPQ pq.h5 at 3 ranks (pq.k=$k)"
  $PY $chk equal $W/o$k.1/results.h5 $W/o$k.3/results.h5 test/full/align@pq test/uni99/align@pq test/full/sasrec@pq || fail "OPQ rows at 3 ranks (pq.k=$k)"
  cp $W/o$k.1/results.h5 $W/o$k.adc.h5
  $B eval "${common[@]}" "${mk[@]}" --set pq.opq=5 --set run.dir=$W/o$k.1 --set pq.rerank=1000000 > $W/o$k.x.log 2>&1 || { cat $W/o$k.x.log; fail "OPQ eval with pq.rerank above the catalogue"; }
  plain=$W/r1/pq.h5; [ $k = 16 ] && plain=$W/f1/pq.h5
  $PY - $W/o$k.1/pq.h5 $plain $W/r1/align.h5 $W/r1/cf.h5 $W/o$k.1/results.h5 <<'EOF2' || fail "OPQ (pq.k=$k)"
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
import check_pq
P, Q = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
src = {"align": (sys.argv[3], "align/z_base", "align/h_test"), "sasrec": (sys.argv[4], "sasrec/e_cf", "sasrec/state_test")}
X = h5py.File(sys.argv[5], "r")
for model, (path, it, st) in src.items():
    g = P[model]
    with h5py.File(path, "r") as f:
        e, H = f[it][...].astype(np.float64), f[st][...].astype(np.float64)
    M, K, D = int(g.attrs["m"]), int(g.attrs["k"]), e.shape[1]
    assert int(g.attrs["opq"]) == 5 and "rotation" not in Q[model], (g.attrs["opq"], list(Q[model]))
    rot = g["rotation"][...].astype(np.float64)
    assert rot.shape == (D, D) and np.abs(rot @ rot.T - np.eye(D)).max() <= 4 * D * 2.0 ** -24, "rotation not orthogonal"
    cb, codes, yh = check_pq.decoded(g)
    y = e @ rot
    check_pq.nearest(y, cb, codes, model)
    rel, rel0 = float(g.attrs["rel_err"]), float(Q[model].attrs["rel_err"])
    assert abs(rel - ((y - yh) ** 2).sum() / (y ** 2).sum()) <= 1e-4 * rel and rel <= rel0 * (1 + 1e-3), (rel, rel0)
    rec, stored = check_pq.recall(g, e, H, yh, rot, model)
    check_pq.exact_rows(X, model, "with OPQ")
    print("ok: OPQ %s (k %d): relative error %.4f (plain %.4f), recall@10 ADC %.4f (plain %.4f), NumPy's %s; full re-ranking exact" % (
        model, K, rel, rel0, stored[0], Q[model].attrs["recall_at10"][0], np.round(rec, 4)))
EOF2
done
echo "ok: OPQ: pq.h5 and rows bitwise at 1 and 3 ranks, byte and 4-bit codes"

# the queries' metric (pq.metric = "query", with and without OPQ): pq.h5 (codebooks, codes, both
# matrices) and eval's rows bitwise at 1 and 3 ranks; rotation query_rotation^T = I (scores kept);
# every code the nearest centroid of x rotation; the expected squared score error over the test
# users below plain PQ's; the stored recall NumPy's from q query_rotation against the decoded codes;
# with pq.rerank above the catalogue the exact rows
for opq in 0 3; do
  for np in 1 3; do
    mkdir -p $W/q$opq.$np; cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/q$opq.$np/
    $DM_MPIRUN -n $np $B run "${common[@]}" --set pq.metric=query --set pq.opq=$opq --set 'run.stages=[pq,eval]' --set run.dir=$W/q$opq.$np < /dev/null > $W/q$opq.$np.log 2>&1 ||
      { cat $W/q$opq.$np.log; fail "pq.metric=query, pq.opq=$opq at $np ranks"; }
  done
  grep -q "in the metric of 500 validation states" $W/q$opq.1.log || { grep "pq align" $W/q$opq.1.log; fail "the log does not name the metric"; }
  $PY $chk equal $W/q$opq.1/pq.h5 $W/q$opq.3/pq.h5 align sasrec || fail "metric pq.h5 at 3 ranks (opq $opq)"
  $PY $chk equal $W/q$opq.1/results.h5 $W/q$opq.3/results.h5 test/full/align@pq test/uni99/align@pq test/full/sasrec@pq || fail "metric rows at 3 ranks (opq $opq)"
  $B eval "${common[@]}" --set pq.metric=query --set pq.opq=$opq --set run.dir=$W/q$opq.1 --set pq.rerank=1000000 > $W/q$opq.x.log 2>&1 ||
    { cat $W/q$opq.x.log; fail "metric eval with pq.rerank above the catalogue"; }
  $PY - $W/q$opq.1/pq.h5 $W/r1/pq.h5 $W/r1/align.h5 $W/r1/cf.h5 $W/q$opq.1/results.h5 <<'EOF2' || fail "the queries' metric (opq $opq)"
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
import check_pq
P, Q = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
src = {"align": (sys.argv[3], "align/z_base", "align/h_test"), "sasrec": (sys.argv[4], "sasrec/e_cf", "sasrec/state_test")}
X = h5py.File(sys.argv[5], "r")
for model, (path, it, st) in src.items():
    g, g0 = P[model], Q[model]
    with h5py.File(path, "r") as f:
        e, H = f[it][...].astype(np.float64), f[st][...].astype(np.float64)
    M, K, D = int(g.attrs["m"]), int(g.attrs["k"]), e.shape[1]
    assert g.attrs["metric"] in ("query", b"query") and 1 <= int(g.attrs["query_dirs"]) <= D, (g.attrs["metric"], g.attrs["query_dirs"])
    rot, qrot = g["rotation"][...].astype(np.float64), g["query_rotation"][...].astype(np.float64)
    # each entry of rot qrot^T is a sum of D products of float-rounded entries
    bound = 4 * D * 2.0 ** -24 * (np.abs(rot) @ np.abs(qrot).T)
    assert (np.abs(rot @ qrot.T - np.eye(D)) <= bound + 1e-12).all(), "rotation query_rotation^T is not I"
    cb, codes, yh = check_pq.decoded(g)
    check_pq.nearest(e @ rot, cb, codes, model)
    xh0 = check_pq.decoded(g0)[2]
    ex = H @ e.T
    err, err0 = ((ex - (H @ qrot) @ yh.T) ** 2).mean(), ((ex - H @ xh0.T) ** 2).mean()
    assert err < err0, "%s: squared score error %.4g, plain PQ %.4g" % (model, err, err0)
    rec, stored = check_pq.recall(g, e, H, yh, qrot, model)
    check_pq.exact_rows(X, model, "in the metric")
    print("ok: metric %s (opq %d): %d directions above the floor; squared score error %.4g (plain PQ %.4g); recall@10 ADC %.4f (plain %.4f), NumPy's %s; full re-ranking exact" % (
        model, int(g.attrs["opq"]), int(g.attrs["query_dirs"]), err, err0, stored[0], g0.attrs["recall_at10"][0], np.round(rec, 4)))
EOF2
done
echo "ok: the queries' metric: pq.h5 and rows bitwise at 1 and 3 ranks"

# residual stages (pq.stages = 2 of 16 centroids: 4-bit codes, fast scan; in the queries' metric with
# OPQ): pq.h5 and eval's rows bitwise at 1 and 3 ranks; codebook (m stages k, ds) and codes (n, m
# stages); every stage's code the nearest centroid of what the earlier stages left of x rotation;
# the stored error and recall NumPy's; the exact rows with full re-ranking; the log names the stages
# and counts half a byte a code
for np in 1 3; do
  mkdir -p $W/rq.$np; cp $W/r1/dataset.h5 $W/r1/cf.h5 $W/r1/align.h5 $W/rq.$np/
  $DM_MPIRUN -n $np $B run "${common[@]}" --set pq.k=16 --set pq.stages=2 --set pq.metric=query --set pq.opq=2 --set 'run.stages=[pq,eval]' \
    --set run.dir=$W/rq.$np < /dev/null > $W/rq.$np.log 2>&1 || { cat $W/rq.$np.log; fail "pq.stages=2 at $np ranks"; }
done
grep -q "pq align: 200 items x 16 -> 4 x 2 stages x 16 centroids" $W/rq.1.log || { grep "pq align" $W/rq.1.log; fail "the log does not name the stages"; }
grep -q "pq align: codes 0.00 MiB (4 bits a code, as eval scores them) vs float32 0.01 MiB (16x)" $W/rq.1.log || { grep "pq align" $W/rq.1.log; fail "2 x 4 four-bit codes not counted as 16x"; }
$PY $chk equal $W/rq.1/pq.h5 $W/rq.3/pq.h5 align sasrec || fail "pq.stages=2: pq.h5 at 3 ranks"
$PY $chk equal $W/rq.1/results.h5 $W/rq.3/results.h5 test/full/align@pq test/uni99/align@pq test/full/sasrec@pq || fail "pq.stages=2: rows at 3 ranks"
cp $W/rq.1/results.h5 $W/rq.adc.h5
$B eval "${common[@]}" --set pq.k=16 --set pq.stages=2 --set pq.metric=query --set pq.opq=2 --set run.dir=$W/rq.1 --set pq.rerank=1000000 > $W/rq.x.log 2>&1 ||
  { cat $W/rq.x.log; fail "pq.stages=2: eval with pq.rerank above the catalogue"; }
$PY - $W/rq.1/pq.h5 $W/r1/align.h5 $W/r1/cf.h5 $W/rq.1/results.h5 $W/rq.adc.h5 <<'EOF2' || fail "residual stages"
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
import check_pq
P = h5py.File(sys.argv[1], "r")
src = {"align": (sys.argv[2], "align/z_base", "align/h_test"), "sasrec": (sys.argv[3], "sasrec/e_cf", "sasrec/state_test")}
X, A = h5py.File(sys.argv[4], "r"), h5py.File(sys.argv[5], "r")
for model, (path, it, st) in src.items():
    g = P[model]
    with h5py.File(path, "r") as f:
        e, H = f[it][...].astype(np.float64), f[st][...].astype(np.float64)
    M, K, L, D = int(g.attrs["m"]), int(g.attrs["k"]), int(g.attrs["stages"]), e.shape[1]
    assert (M, K, L) == (4, 16, 2) and g["codebook"].shape == (M * L * K, D // M) and g["codes"].shape == (len(e), M * L), (
        M, K, L, g["codebook"].shape, g["codes"].shape)
    rot, qrot = g["rotation"][...].astype(np.float64), g["query_rotation"][...].astype(np.float64)
    cb, codes, yh = check_pq.decoded(g)
    y = e @ rot
    check_pq.nearest(y, cb, codes, model)
    rel = float(g.attrs["rel_err"])
    rel_np = ((y - yh) ** 2).sum() / (y ** 2).sum()
    assert abs(rel - rel_np) <= 1e-3 * rel_np, (rel, rel_np)
    rec, stored = check_pq.recall(g, e, H, yh, qrot, model)
    check_pq.exact_rows(X, model, "with 2 stages")
    print("ok: %s, 2 stages of 4 x 16 (4-bit codes): relative error %.4f (NumPy %.4f), recall@10 ADC %.4f, NumPy's %s, "
          "full-ranking mean (first column) by fast scan %.4f against %.4f exact; full re-ranking exact" % (
        model, rel, rel_np, stored[0], np.round(rec, 4), A["test/full/%s@pq" % model].attrs["mean"][0], X["test/full/%s" % model].attrs["mean"][0]))
EOF2
echo "ok: residual stages: pq.h5 and rows bitwise at 1 and 3 ranks"

# pq.rerank is eval's: `dynmm run` keeps pq.h5 and reruns eval; pq.m reruns pq
$B run "${common[@]}" --set 'run.stages=[pq,eval]' --set run.dir=$W/r1 --set pq.rerank=5 > $W/rerun.log 2>&1 || { cat $W/rerun.log; fail "run with pq.rerank=5"; }
grep -q "pq: .*pq.h5 is current, skipped" $W/rerun.log && grep -q "eval done in" $W/rerun.log || { cat $W/rerun.log; fail "pq.rerank retrained the codebooks or eval did not rerun"; }
$B run "${common[@]}" --set 'run.stages=[pq]' --set run.dir=$W/r1 --set pq.m=8 > $W/rerun_m.log 2>&1 || { cat $W/rerun_m.log; fail "run with pq.m=8"; }
grep -q "pq done in" $W/rerun_m.log || { cat $W/rerun_m.log; fail "pq.m did not rerun pq"; }
echo "ok: pq.rerank reruns eval only, pq.m reruns pq"
# refusals
$B pq "${common[@]}" --set run.dir=$W/r1 --set pq.m=5 > $W/bad_m.log 2>&1 && fail "pq.m=5 on 16 dimensions accepted"
grep -q "pq.m = 5 sub-spaces does not divide the latent dimension 16" $W/bad_m.log && grep -q "hint: align's latents" $W/bad_m.log || { cat $W/bad_m.log; fail "no message for pq.m"; }
$B pq "${common[@]}" --set run.dir=$W/r1 --set pq.k=300 > $W/bad_k.log 2>&1 && fail "pq.k=300 accepted"
grep -q "pq.k = 300 centroids per sub-space; at most 256 (a code is one byte)" $W/bad_k.log || { cat $W/bad_k.log; fail "no message for pq.k"; }
$B pq "${common[@]}" --set run.dir=$W/r1 --set 'pq.models=[align,ease]' > $W/bad_models.log 2>&1 && fail "pq.models=ease accepted"
grep -q "pq cannot quantise 'ease'" $W/bad_models.log && grep -q "hint: pq.models takes align, sasrec" $W/bad_models.log || { cat $W/bad_models.log; fail "no message for pq.models"; }
$B pq "${common[@]}" --set run.dir=$W/r1 --set 'pq.models=[align]' > $W/only.log 2>&1 || { cat $W/only.log; fail "pq of the aligner alone"; }
$B eval "${common[@]}" --set run.dir=$W/r1 --set 'pq.models=[align]' > $W/bad_eval.log 2>&1 && fail "eval of sasrec@pq without its codes accepted"
grep -q "eval.models has 'sasrec@pq' but .*pq.h5 has no /sasrec/codes" $W/bad_eval.log && grep -q "hint: add 'sasrec' to pq.models" $W/bad_eval.log || { cat $W/bad_eval.log; fail "no message for a missing sasrec@pq"; }
$B pq "${common[@]}" --set run.dir=$W/r1 --set pq.stages=0 > $W/bad_st.log 2>&1 && fail "pq.stages=0 accepted"
grep -q "pq.stages. = 0 is out of range \[1, 16\]" $W/bad_st.log || { cat $W/bad_st.log; fail "no message for pq.stages"; }
echo "ok: refusals (pq.m, pq.k, pq.stages, pq.models, sasrec@pq without its codes)"
echo ok
