#!/usr/bin/env bash
# GRU4Rec through the model registry and the generic trainer (src/gru4rec/gru4rec.h):
#  - train-cf trains it data parallel: the weights after the same steps agree at 1, 2 and 3 ranks
#    (the gradient allreduce sums in another order: within gru4rec.lr/20 after 60 Adam steps,
#    tests/reference/tolerance.py; measured ~1e-6), and so do eval's metric rows (a user may change only where candidates tie within that rounding)
#  - eval scores what was stored: NumPy's GRU over the saved weights and each user's train + valid
#    history ranks the test item as eval's full-ranking NDCG@10 rows say
#  - it learns: test NDCG@10 (full ranking) above popularity's, and eval stores its rows with the
#    registry's label
#  - eval of the model without it in cf.h5 is refused with a hint
set -u
. tests/cli/model_lib.sh
model_setup gru4rec
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,gru4rec]'
        --set 'eval.models=[pop,gru4rec]' --set gru4rec.epochs=10 --set gru4rec.eval_every=5 --set gru4rec.batch=96
        --set gru4rec.emb=32 --set gru4rec.hidden=32 --set gru4rec.maxlen=20 --set gru4rec.lr=0.005 --set gru4rec.dropout=0.2)
model_ranks gru4rec GRU4Rec 0.02
$PY - $W/r2/dataset.h5 $W/r2/cf.h5 $W/r2/results.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from check_cf import recomputed
w = {k: v[...].astype(np.float64) for k, v in h5py.File(sys.argv[2], "r")["gru4rec/weights"].items()}
E, T, L = w["emb"], 20, sum(1 for n in w if n.startswith("w_ih_l"))
sig = lambda x: 1 / (1 + np.exp(-x))
def state(seq):
    x = E[seq]
    for l in range(L):
        Wi, Wh = w["w_ih_l%d" % l], w["w_hh_l%d" % l]
        H = Wh.shape[1]
        h, out = np.zeros(H), []
        for t in range(len(seq)):
            a, b = Wi @ x[t], Wh @ h
            r, z = sig(a[:H] + b[:H]), sig(a[H:2 * H] + b[H:2 * H])
            n = np.tanh(a[2 * H:] + r * b[2 * H:])
            h = (1 - z) * n + z * h
            out.append(h)
        x = np.array(out)
    return w["dense_w"] @ x[-1] + w["dense_b"]
recomputed(sys.argv[1], sys.argv[3], "gru4rec", "GRU4Rec", lambda u, hist: E @ state(hist[-T:]), 0.05)
EOF
# eval of gru4rec without it in cf.h5 is refused with a hint
model_missing gru4rec GRU4Rec
echo ok
