#!/usr/bin/env bash
# The align stage on a small synthetic set with all four modalities:
#  - 1, 2 and 3 ranks give the same aligner parameters after the same steps (within align.lr/20, tests/reference/tolerance.py), with
#    InfoNCE negatives gathered across ranks
#  - latents and eval rows agree; the aligned model beats popularity (it learned something)
#  - align.nce_rows = positives: the same at 1 and 3 ranks
#  - align.select_protocol = uni99: the validation on 1+99 candidates equals eval's; a bad one refused
#  - a long epoch logs its progress every DM_PROGRESS_SECONDS
#  - LSA text: with imported text features removed, the text modality comes from the item titles
set -u
PY=/usr/bin/python3; chk=tests/reference/check_cf.py; B=$DM_BUILD/dynmm
W=$DM_TMP/align; rm -rf $W; mkdir -p $W/base
common=(--set synth.users=500 --set synth.items=200 --set synth.clusters=6 --set sasrec.epochs=4 --set sasrec.eval_every=4
        --set sasrec.hidden=16 --set sasrec.maxlen=20 --set 'cf.models=[pop,sasrec]' --set align.epochs=12 --set align.batch=64
        --set align.hidden=32 --set align.dim=16 --set 'eval.models=[pop,sasrec,align]' --set 'eval.protocols=[full,uni99]')
$DM_MPIRUN -n 1 $B run "${common[@]}" --set 'run.stages=[synth,train-cf]' --set run.dir=$W/base < /dev/null > $W/base.log 2>&1 || { cat $W/base.log; exit 1; }
for np in 1 2 3; do
  mkdir -p $W/r$np; cp $W/base/dataset.h5 $W/base/cf.h5 $W/r$np/
  $DM_MPIRUN -n $np $B run "${common[@]}" --set 'run.stages=[align,eval]' --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; echo "FAIL: align at $np ranks"; exit 1; }
done
grep -E "align:|epoch|wrote" $W/r1.log
for np in 2 3; do
  $PY $chk trained $W/r1/align.h5 $W/r$np/align.h5 align.lr align/weights || { echo "FAIL: aligner weights at $np ranks"; exit 1; }
  $PY $chk close $W/r1/align.h5 $W/r$np/align.h5 1e-4 align/z_base align/h_test || exit 1
done
# align.nce_rows = positives (sampled negatives kept out of InfoNCE): again the same at 1 and 3 ranks,
# and not the same model as with every row in InfoNCE
for np in 1 3; do
  mkdir -p $W/p$np; cp $W/base/dataset.h5 $W/base/cf.h5 $W/p$np/
  $DM_MPIRUN -n $np $B run "${common[@]}" --set align.nce_rows=positives --set 'run.stages=[align]' --set run.dir=$W/p$np < /dev/null > $W/p$np.log 2>&1 || { cat $W/p$np.log; echo "FAIL: align nce_rows=positives at $np ranks"; exit 1; }
done
$PY $chk trained $W/p1/align.h5 $W/p3/align.h5 align.lr align/weights || { echo "FAIL: nce_rows=positives weights at 3 ranks"; exit 1; }
$PY $chk close $W/r1/align.h5 $W/p1/align.h5 1e-3 align/weights > /dev/null 2>&1 && { echo "FAIL: nce_rows=positives changed nothing"; exit 1; }
pop=$(awk '$1=="test" && $2=="full" && $3=="pop" {print $5}' $W/r1.log); al=$(awk '$1=="test" && $2=="full" && $3=="align" {print $5}' $W/r1.log)
echo "test full ndcg@10: pop $pop, align $al"
awk -v a=$al -v p=$pop 'BEGIN{exit !(a > p)}' || { echo "FAIL: the aligner does not beat popularity"; exit 1; }
# align.select_protocol = uni99: each epoch's validation scores the 1+99 candidates alone; the kept
# epoch's value is eval's valid uni99 ndcg@10 of the written latents (the same latents and kernel)
mkdir -p $W/sel; cp $W/base/dataset.h5 $W/base/cf.h5 $W/sel/
$DM_MPIRUN -n 2 $B run "${common[@]}" --set align.select_protocol=uni99 --set 'run.stages=[align,eval]' --set 'eval.splits=[valid]' \
  --set 'eval.models=[align]' --set 'eval.protocols=[uni99]' --set eval.ties=expected --set run.dir=$W/sel < /dev/null > $W/sel.log 2>&1 ||
  { cat $W/sel.log; echo "FAIL: align.select_protocol uni99"; exit 1; }
$PY - $W/sel/align.h5 $W/sel/results.h5 <<'PYEOF' || { grep -E "epoch|uni99" $W/sel.log; exit 1; }
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
cv = f["align/curve"][...]
cols = f["align/curve"].attrs["columns"]
cols = cols.decode() if isinstance(cols, bytes) else cols
r = h5py.File(sys.argv[2], "r")
ch, off = r["columns/chars"][...].tobytes(), r["columns/offsets"][...]
names = [ch[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
ev = r["valid/uni99/align"].attrs["mean"][names.index("ndcg@10")]
best = np.nanmax(cv[:, 6])
assert "valid ndcg@10 (uni99)" in cols, cols
assert 0.1 < best < 1, cv[:, 6]  # trained (a random ranking of 1+99 gives about 0.045)
assert abs(best - ev) <= 1e-9, "kept epoch's 1+99 validation %.9f, eval's %.9f" % (best, ev)
print("ok: the aligner's best 1+99 validation %.6f = eval's valid uni99 ndcg@10 %.6f" % (best, ev))
PYEOF
$B align "${common[@]}" --set run.dir=$W/sel --set align.select_protocol=pop > $W/selbad.log 2>&1 && { echo "FAIL: align.select_protocol 'pop' accepted"; exit 1; }
grep -q "align.select_protocol: unknown protocol 'pop'" $W/selbad.log || { cat $W/selbad.log; echo "FAIL: the bad protocol's message"; exit 1; }
# progress lines inside a long epoch (DM_PROGRESS_SECONDS shortens the minute to a microsecond, less than
# any step takes: a line after every step but the last): steps rising, short of N
DM_PROGRESS_SECONDS=1e-6 $DM_MPIRUN -x DM_PROGRESS_SECONDS -n 2 $B align "${common[@]}" --set run.dir=$W/sel --set align.batch=8 \
  --set align.epochs=1 < /dev/null > $W/progress.log 2>&1 || { cat $W/progress.log; echo "FAIL: align with progress lines"; exit 1; }
N=$(sed -n 's/.*global batch 8 x (1 + [0-9]*), \([0-9]*\) steps\/epoch.*/\1/p' $W/progress.log)
awk -v N="$N" '/align epoch +1  step [0-9]+ of [0-9]+ \([0-9]+%\)  [0-9.]+ ms\/step  epoch eta [0-9]+m[0-9][0-9]s/ {
    k = $5; n++; if ($7 != N || k <= last || k >= N) bad = 1; last = k }
  END { if (N < 2 || n < 1 || bad) { print "FAIL: progress lines (" n ", of " N " steps, bad " bad ")"; exit 1 } print "ok: " n " progress lines over " N " steps" }' $W/progress.log ||
  { grep "align epoch\|steps/epoch" $W/progress.log; exit 1; }
# LSA text encoder: without imported text the aligner's text input is the LSA of the synthetic titles
mkdir -p $W/lsa
$DM_MPIRUN -n 2 $B run "${common[@]}" --set synth.text_dim=0 --set 'run.stages=[synth,train-cf,align]' --set run.dir=$W/lsa < /dev/null > $W/lsa.log 2>&1 || { cat $W/lsa.log; exit 1; }
grep "text: LSA" $W/lsa.log || { echo "FAIL: no LSA text features"; exit 1; }
$PY - $W/lsa/align.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
x = f["align/inputs/text/x"][...]; p = f["align/inputs/text/present"][...]
src = f["align/inputs/text"].attrs["source"]
src = src.decode() if isinstance(src, bytes) else src
s = f["align"].attrs["lsa_singular_values"]
assert src.startswith("LSA"), src
assert p.mean() > 0.9, "most synthetic items have titles"
assert np.all(np.diff(s) <= 1e-12), "singular values descend"
# U S columns are orthogonal: the Gram matrix of the LSA features is diag(s^2)
g = x.astype(np.float64).T @ x
off = np.abs(g - np.diag(np.diag(g))).max() / np.abs(np.diag(g)).max()
assert off < 1e-3, "LSA columns not orthogonal: %g" % off
assert np.allclose(np.sqrt(np.diag(g)), s[: x.shape[1]], rtol=1e-3), "column norms equal the singular values"
print("lsa: %d items x %d, singular values %.3f .. %.3f, columns orthogonal (%.1e)" % (x.shape[0], x.shape[1], s[0], s[-1], off))
PYEOF
echo ok
