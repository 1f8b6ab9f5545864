#!/usr/bin/env bash
# LightGCN through the model registry and the generic trainer (src/lightgcn/lightgcn.h):
#  - train-cf trains it data parallel over the BPR triples: the weights after the same steps agree
#    at 1, 2 and 3 ranks (the gradient allreduce sums in another order: within 1e-5), and so do
#    eval's metric rows (a user may change only where candidates tie within that rounding)
#  - eval scores what was stored: NumPy's propagation of the saved ego embeddings over the graph of
#    dataset.h5's training pairs (RecBole's normalisation) ranks each test item as eval's
#    full-ranking NDCG@10 rows say
#  - it learns: test NDCG@10 (full ranking) above popularity's, and eval stores its rows with the
#    registry's label
#  - eval of the model without it in cf.h5 is refused with a hint
set -u
PY=/usr/bin/python3; chk=tests/reference/check_cf.py; B=$DM_BUILD/dynmm
export OMP_WAIT_POLICY=passive
W=$DM_TMP/lightgcn; rm -rf $W; mkdir -p $W
fail() { echo "FAIL: $*"; exit 1; }
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,lightgcn]'
        --set 'eval.models=[pop,lightgcn]' --set lightgcn.epochs=10 --set lightgcn.eval_every=5 --set lightgcn.batch=512
        --set lightgcn.lr=0.005 --set lightgcn.dim=32)
for np in 1 2 3; do
  $DM_MPIRUN -n $np $B run "${common[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; fail "lightgcn at $np ranks"; }
done
grep -E "LightGCN|lightgcn " $W/r2.log | head -8
for np in 2 3; do
  $PY $chk close $W/r1/cf.h5 $W/r$np/cf.h5 1e-5 lightgcn/weights || fail "LightGCN weights at $np ranks"
  $PY $chk rows $W/r1/results.h5 $W/r$np/results.h5 1e-4 0.02 test/full/lightgcn valid/uni99/lightgcn || fail "LightGCN rows at $np ranks"
done
$PY - $W/r2/dataset.h5 $W/r2/cf.h5 $W/r2/results.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    off, item, role = f["users/offsets"][...], f["inter/item"][...], f["split/loo"][...]
w = h5py.File(sys.argv[2], "r")["lightgcn/weights"]
E0 = np.concatenate([w["user"][...], w["item"][...]]).astype(np.float64)
nu = len(off) - 1
f = h5py.File(sys.argv[3], "r")
cols = [f["columns/chars"][...].tobytes()[a:b].decode() for a, b in zip(f["columns/offsets"][:-1], f["columns/offsets"][1:])]
k = cols.index("ndcg@10")
g, p = f["test/full/lightgcn"], f["test/full/pop"]
lab = g.attrs["label"]
lab = lab.decode() if isinstance(lab, bytes) else lab
assert lab == "LightGCN", lab
# RecBole's get_norm_adj_mat over the distinct training pairs; 3 layers (the default)
pairs = {(u, int(item[j])) for u in range(nu) for j in range(off[u], off[u + 1]) if role[j] == 0}
r, c = np.array([a for a, _ in pairs]), np.array([nu + b for _, b in pairs])
deg = np.bincount(np.concatenate([r, c]), minlength=len(E0)) + 1e-7
val = 1 / np.sqrt(deg[r] * deg[c])
layers, cur = [E0], E0
for _ in range(3):
    nxt = np.zeros_like(cur)
    np.add.at(nxt, r, val[:, None] * cur[c])
    np.add.at(nxt, c, val[:, None] * cur[r])
    layers.append(nxt)
    cur = nxt
F = np.mean(layers, axis=0)
mine, agree = [], 0
for u in range(nu):
    rr, it = role[off[u]:off[u + 1]], item[off[u]:off[u + 1]]
    hist, tgt = it[rr < 2], it[rr == 2][0]
    s = F[nu:] @ F[u]
    s[hist] = -np.inf  # full ranking: every item but the history competes
    rank = 1 + np.sum(s > s[tgt])
    mine.append(1 / np.log2(rank + 1) if rank <= 10 else 0.0)
    agree += abs(mine[-1] - g[u, k]) < 1e-6
n = len(mine)
# float32 (C) against float64 (NumPy): a user changes only where its target ties another item within rounding
assert agree >= 0.99 * n, "NumPy's NDCG@10 agrees with eval's rows for %d of %d users" % (agree, n)
nl, npop = np.nanmean(g[:, k]), np.nanmean(p[:, k])
assert nl > npop + 0.05, "LightGCN NDCG@10 %.4f is not above popularity's %.4f" % (nl, npop)
print("ok: NumPy's propagation of the stored embeddings gives eval's NDCG@10 for %d of %d users; test NDCG@10 LightGCN %.4f vs popularity %.4f"
      % (agree, n, nl, npop))
EOF
# eval of lightgcn without it in cf.h5 is refused with a hint
cp -r $W/r1 $W/none && $PY -c "import h5py, sys; del h5py.File(sys.argv[1], 'r+')['lightgcn']" $W/none/cf.h5 || fail "cannot drop /lightgcn"
$B eval "${common[@]}" --set run.dir=$W/none > $W/none.log 2>&1 && fail "eval without /lightgcn succeeded"
grep -q "holds no LightGCN model" $W/none.log && grep -q "hint: add 'lightgcn' to cf.models" $W/none.log || { cat $W/none.log; fail "no message for a missing LightGCN"; }
echo ok
