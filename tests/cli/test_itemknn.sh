#!/usr/bin/env bash
# ItemKNN through the model registry (stages/itemknn.h, src/itemknn/itemknn.h):
#  - train-cf fits it with the item rows sharded over the ranks: cf.h5's /itemknn rows are bitwise
#    the same at 1, 2 and 3 ranks (integer counts, one rounding per similarity), and so are eval's
#    per-user rows (a user's scores depend on its history alone)
#  - the stored rows equal a NumPy recomputation from dataset.h5's training split (neighbours exactly,
#    similarities within one float rounding)
#  - it beats popularity on the synthetic data's full-ranking test NDCG@10, and eval stores its rows
#    with the registry's label
#  - eval of itemknn without it in cf.h5 is refused with a hint
set -u
. tests/cli/model_lib.sh
model_setup itemknn
common=(--set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf,eval]' --set 'cf.models=[pop,itemknn]'
        --set 'eval.models=[pop,itemknn]' --set itemknn.k=40 --set itemknn.shrink=2)
for np in 1 2 3; do
  $DM_MPIRUN -n $np $B run "${common[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; fail "itemknn at $np ranks"; }
done
grep -E "itemknn" $W/r3.log | head -8
for np in 2 3; do
  $PY $chk equal $W/r1/cf.h5 $W/r$np/cf.h5 itemknn || fail "ItemKNN rows at $np ranks"
  $PY $chk equal $W/r1/results.h5 $W/r$np/results.h5 test/full/itemknn valid/full/itemknn test/uni99/itemknn || fail "ItemKNN metric rows at $np ranks"
done
$PY - $W/r2/dataset.h5 $W/r2/cf.h5 <<'EOF2' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from check_cf import train_matrix
X = train_matrix(sys.argv[1])
n = X.shape[1]
C = X.T @ X
norm = np.sqrt(np.diag(C))
with h5py.File(sys.argv[2], "r") as f:
    nbr, sim = f["itemknn/nbr"][...], f["itemknn/sim"][...].astype(np.float64)
    k, shrink = int(f["itemknn"].attrs["k"]), float(f["itemknn"].attrs["shrink"])
K = min(k, n - 1)
assert nbr.shape == (n, K), nbr.shape
worst = 0.0
for i in range(n):
    js = [j for j in np.nonzero(C[i])[0] if j != i]
    s = {j: C[i, j] / (norm[i] * norm[j] + shrink + 1e-6) for j in js}
    keep = sorted(js, key=lambda j: (-s[j], j))[:K]
    want = np.full(K, -1)
    want[:len(keep)] = keep
    assert (nbr[i] == want).all(), "row %d: neighbours %s, NumPy %s" % (i, nbr[i][:8], want[:8])
    for q, j in enumerate(keep):
        worst = max(worst, abs(sim[i, q] - s[j]) / s[j])
assert worst <= 2.0 ** -24, "similarity off by %.3g relative" % worst
print("ok: /itemknn rows of %d items (K %d, shrink %g) equal NumPy's; similarities within %.3g relative" % (n, K, shrink, worst))
EOF2
$PY $chk beats $W/r2/results.h5 itemknn ItemKNN 0.05 || exit 1
# eval asks for itemknn, cf.h5 has only pop
$B run --set synth.users=600 --set synth.items=300 --set 'run.stages=[synth,train-cf]' --set 'cf.models=[pop]' --set run.dir=$W/nopop > $W/no.log 2>&1 || { cat $W/no.log; fail "pop only"; }
$B eval --set run.dir=$W/nopop --set synth.users=600 --set synth.items=300 --set 'cf.models=[pop]' --set 'eval.models=[pop,itemknn]' > $W/bad.log 2>&1 && fail "eval of an untrained itemknn accepted"
grep -q "has no /itemknn/sim" $W/bad.log && grep -q "hint: add 'itemknn' to cf.models" $W/bad.log || { cat $W/bad.log; fail "no message for a missing itemknn"; }
echo ok
