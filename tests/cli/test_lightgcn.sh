#!/usr/bin/env bash
# LightGCN through the model registry and the generic trainer (src/lightgcn/lightgcn.h):
#  - train-cf trains it data parallel over the BPR triples: the weights after the same steps agree
#    at 1, 2 and 3 ranks (the gradient allreduce sums in another order: within lightgcn.lr/20, tests/reference/tolerance.py), and so do
#    eval's metric rows (a user may change only where candidates tie within that rounding)
#  - eval scores what was stored: NumPy's propagation of the saved ego embeddings over the graph of
#    dataset.h5's training pairs (RecBole's normalisation) ranks each test item as eval's
#    full-ranking NDCG@10 rows say
#  - it learns: test NDCG@10 (full ranking) above popularity's, and eval stores its rows with the
#    registry's label
#  - eval of the model without it in cf.h5 is refused with a hint
set -u
. tests/cli/model_lib.sh
model_setup lightgcn
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,lightgcn]'
        --set 'eval.models=[pop,lightgcn]' --set lightgcn.epochs=10 --set lightgcn.eval_every=5 --set lightgcn.batch=512
        --set lightgcn.lr=0.005 --set lightgcn.dim=32)
model_ranks lightgcn LightGCN 0.02
$PY - $W/r2/dataset.h5 $W/r2/cf.h5 $W/r2/results.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from check_cf import recomputed
with h5py.File(sys.argv[1], "r") as f:
    off, item, role = f["users/offsets"][...], f["inter/item"][...], f["split/loo"][...]
w = h5py.File(sys.argv[2], "r")["lightgcn/weights"]
E0 = np.concatenate([w["user"][...], w["item"][...]]).astype(np.float64)
nu = len(off) - 1
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
recomputed(sys.argv[1], sys.argv[3], "lightgcn", "LightGCN", lambda u, hist: F[nu:] @ F[u], 0.05)
EOF
# eval of lightgcn without it in cf.h5 is refused with a hint
model_missing lightgcn LightGCN
echo ok
