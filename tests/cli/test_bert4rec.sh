#!/usr/bin/env bash
# BERT4Rec through the model registry and the generic trainer (src/bert4rec/bert4rec.h):
#  - train-cf trains it data parallel: the weights after the same steps agree at 1, 2 and 3 ranks
#    (cloze and dropout masks are keyed by global position; each rank's share of the gradient comes
#    from sgemm calls of other shapes and the allreduce sums in another order, so the weights agree
#    within rounding amplified by Adam: it scales each weight's step by that weight's own gradient
#    size, so a feed-forward unit whose gradients are tiny, a GELU in its flat range, moves in
#    lr-sized steps partly driven by rounding. Measured after 60 steps of lr 0.005: at most 7e-6,
#    on such a unit; bert4rec.lr/20 allowed, tests/reference/tolerance.py), and eval's metric rows agree (a user may change only where
#    candidates tie within that rounding)
#  - eval scores what was stored: NumPy's transformer over the saved weights, each user's latest
#    maxlen - 1 train + valid items with [mask] appended, ranks the test item as eval's full-ranking
#    NDCG@10 rows say
#  - it learns: test NDCG@10 (full ranking) above popularity's, stored with the registry's label
#  - a head count that does not divide the dimension is refused naming the key, before any stage runs
#  - eval of the model without it in cf.h5 is refused with a hint
set -u
. tests/cli/model_lib.sh
model_setup bert4rec
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,bert4rec]'
        --set 'eval.models=[pop,bert4rec]' --set bert4rec.epochs=10 --set bert4rec.eval_every=5 --set bert4rec.batch=96
        --set bert4rec.dim=32 --set bert4rec.maxlen=20 --set bert4rec.lr=0.005 --set bert4rec.dropout=0.1 --set bert4rec.mask_prob=0.3)
model_ranks bert4rec BERT4Rec 0.02
$PY - $W/r2/dataset.h5 $W/r2/cf.h5 $W/r2/results.h5 <<'EOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from check_cf import recomputed
w = {k: v[...].astype(np.float64) for k, v in h5py.File(sys.argv[2], "r")["bert4rec/weights"].items()}
E, n_items, C, T, L, H = w["emb"], len(w["outb"]), w["emb"].shape[1], 20, w["qkvw"].shape[0], 2
F = w["fc1b"].shape[1]
ln = lambda x, a, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * a + b
gelu = lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
def scores(u, hist):
    """the latest T - 1 items with [mask] appended; the logits at [mask]"""
    seq = np.append(hist[-(T - 1):], n_items)
    x, hs = ln(E[seq] + w["pos"][:len(seq)], w["lnew"], w["lneb"]), C // H
    for l in range(L):
        qkv = x @ w["qkvw"][l].reshape(3 * C, C).T + w["qkvb"][l]
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        a = np.concatenate([softmax(q[:, h * hs:(h + 1) * hs] @ k[:, h * hs:(h + 1) * hs].T / np.sqrt(hs)) @ v[:, h * hs:(h + 1) * hs]
                            for h in range(H)], axis=1)
        y = ln(x + a @ w["ow"][l].reshape(C, C).T + w["ob"][l], w["ln1w"][l], w["ln1b"][l])
        ff = gelu(y @ w["fc1w"][l].reshape(F, C).T + w["fc1b"][l]) @ w["fc2w"][l].reshape(C, F).T + w["fc2b"][l]
        x = ln(y + ff, w["ln2w"][l], w["ln2b"][l])
    z = ln(gelu(w["hw"] @ x[-1] + w["hb"]), w["lnhw"], w["lnhb"])
    return E[:n_items] @ z + w["outb"]
recomputed(sys.argv[1], sys.argv[3], "bert4rec", "BERT4Rec", scores, 0.05)
EOF
# a head count that does not divide the dimension: refused naming the key, before any stage runs
$B run "${common[@]}" --set bert4rec.heads=3 --set run.dir=$W/bad > $W/bad.log 2>&1 && fail "bert4rec.heads = 3 with dim 32 succeeded"
grep -q "bert4rec.heads = 3 does not divide bert4rec.dim = 32" $W/bad.log || { cat $W/bad.log; fail "no message for bert4rec.heads"; }
[ -e $W/bad ] && fail "a stage ran for a model that cannot be built"
model_missing bert4rec BERT4Rec
echo ok
