#!/usr/bin/env bash
# Regressions of a probe of faults on valid but unusual data:
#  - users with more interactions than there are items (repeat purchases are kept by default,
#    data.dedup = "none"): the sampled candidate sets are drawn from the user's whole history without
#    overrunning the catalogue-sized buffer it once had (a heap overflow, "malloc(): invalid size"),
#    exclude every item the user touched, and are the same at 1, 2 and 3 ranks
set -u
B=$DM_BUILD/dynmm; PY=/usr/bin/python3
W=$DM_TMP/probe; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
# 3 users x 12 interactions over 5 of 8 items (items 5, 6, 7 belong to a fourth user)
{ for u in 0 1 2; do for k in $(seq 0 11); do printf '%d\t%d\t%d\n' $u $((k % 5)) $k; done; done
  for k in 0 1 2 3 4 5; do printf '3\t%d\t%d\n' $((5 + k % 3)) $k; done; } > "$W/rep.tsv"
for np in 1 2 3; do
  $DM_MPIRUN -n $np $B run --set run.dir=$W/r$np --set data.format=tsv --set data.inter=$W/rep.tsv --set data.time_col=2 \
    --set 'run.stages=[ingest,train-cf,eval]' --set 'cf.models=[pop]' --set 'eval.models=[pop]' --set 'eval.protocols=[full,uni2]' \
    --set data.kcore_user=0 --set data.kcore_item=0 < /dev/null > "$W/r$np.log" 2>&1 || { cat "$W/r$np.log"; fail "repeat purchases at $np ranks"; }
done
$PY - "$W" <<'EOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
d = h5py.File(W + "/r1/dataset.h5", "r")
off, item = d["users/offsets"][...], d["inter/item"][...]
assert int(d.attrs["n_items"]) == 8 and (np.diff(off)[:3] == 12).all(), "the repeats were not kept"
c = [h5py.File(W + "/r%d/results.h5" % n, "r")["candidates/uni2"][...] for n in (1, 2, 3)]
assert all(np.array_equal(c[0], x) for x in c[1:]), "candidate sets differ between rank counts"
for u in range(len(off) - 1):
    touched = set(item[off[u]:off[u + 1]].tolist())
    row = c[0][u]
    if (row < 0).all():
        continue
    assert not touched & set(row.tolist()), ("user", u, "negatives", row, "touched", touched)
print("ok: users with 12 interactions over 8 items get 2 untouched negatives, the same at 1, 2, 3 ranks")
EOF
echo ok
