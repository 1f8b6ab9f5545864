#!/usr/bin/env bash
# `dynmm lm`: pretraining the in-suite GPT-2 on the synthetic catalogue's text gives the same loss
# curve at 1, 2 and 3 ranks (same global batch of 12 sequences), validation perplexity falls; the saved Hugging Face
# layout loads back through lm.checkpoint; a broken checkpoint is refused with a clear message.
# lm.corpus "histories" adds one document per training interaction after each user's first (the
# count NumPy finds in dataset.h5's leave-one-out roles and titles; the documents' words and the
# absence of validation and test items are unit-tested in test_llmhead); an unknown kind is refused
# naming the key.
set -u
PY=/usr/bin/python3; B=$DM_BUILD/dynmm
W=$DM_TMP/lm; rm -rf $W; mkdir -p $W
small=(--set lm.steps=60 --set lm.log_every=20 --set lm.warmup=20 --set lm.vocab=1024 --set lm.layers=2 --set lm.width=64
       --set lm.heads=4 --set lm.seq_len=48 --set lm.batch=12 --set synth.users=300 --set synth.items=200)
$B synth "${small[@]}" --set run.dir=$W/base -q < /dev/null || exit 1
for np in 1 2 3; do
  mkdir -p $W/r$np; cp $W/base/dataset.h5 $W/r$np/
  $DM_MPIRUN -n $np $B lm "${small[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; exit 1; }
done
cat $W/r2.log
$PY - $W/r1/lm.h5 $W/r2/lm.h5 $W/r3/lm.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
a, b, c = (h5py.File(p, "r") for p in sys.argv[1:4])
ca = a["curve"][...]
# the gradient allreduce sums in another order at each rank count (float rounding ~1e-7 relative per
# step), which 60 Adam steps amplify: the losses (~5-7 nats) agree to 1e-4
d = 0.0
for np_, x in ((2, b), (3, c)):
    dd = np.abs(ca[:, 1:3] - x["curve"][...][:, 1:3]).max()
    assert dd < 1e-4, "train/validation loss curves differ between 1 and %d ranks by %g" % (np_, dd)
    d = max(d, dd)
v0, v1 = float(a.attrs["val_loss_initial"]), float(a.attrs["val_loss_final"])
assert v1 < v0 - 1.0, "validation loss did not fall: %.3f -> %.3f" % (v0, v1)
assert np.all(np.diff(ca[:, 2]) < 0), "validation loss not falling steadily: %s" % ca[:, 2]
print("lm: same curve at 1, 2 and 3 ranks (max diff %.2g); validation perplexity %.1f -> %.1f" % (d, np.exp(v0), np.exp(v1)))
PYEOF
for f in config.json model.safetensors vocab.json merges.txt; do [ -s $W/r1/lm/$f ] || { echo "FAIL: $f not saved"; exit 1; }; done
$B lm --set run.dir=$W/r1 --set lm.checkpoint=$W/r1/lm < /dev/null > $W/load.log 2>&1 || { cat $W/load.log; exit 1; }
grep -q "loaded $W/r1/lm: 2 layers, 4 heads, width 64" $W/load.log || { cat $W/load.log; echo "FAIL: the saved model did not load back"; exit 1; }
mkdir -p $W/broken; cp $W/r1/lm/vocab.json $W/r1/lm/merges.txt $W/r1/lm/config.json $W/broken/
head -c 1000 $W/r1/lm/model.safetensors > $W/broken/model.safetensors
if $B lm --set run.dir=$W/r1 --set lm.checkpoint=$W/broken < /dev/null > $W/broken.log 2>&1; then echo "FAIL: a truncated checkpoint was accepted"; exit 1; fi
grep -q "model.safetensors" $W/broken.log || { cat $W/broken.log; echo "FAIL: the error does not name the file"; exit 1; }
grep "error" $W/broken.log
# the users' training histories as documents (histories alone: no catalogue documents)
mkdir -p $W/h; cp $W/base/dataset.h5 $W/h/
$DM_MPIRUN -n 2 $B lm "${small[@]}" --set run.dir=$W/h --set 'lm.corpus=["histories"]' --set lm.val_frac=0.1 < /dev/null > $W/h.log 2>&1 || { cat $W/h.log; exit 1; }
docs=$(sed -n 's/.*lm: corpus of \([0-9]*\) training and \([0-9]*\) validation documents.*/\1 \2/p' $W/h.log)
$PY - $W/base/dataset.h5 $docs <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
off, item, role = f["users/offsets"][...], f["inter/item"][...], f["split/loo"][...]
toff = f["items/title/offsets"][...]
titled = np.diff(toff) > 0
want = 0
for u in range(len(off) - 1):
    seq = item[off[u]:off[u + 1]][role[off[u]:off[u + 1]] == 0]   # DM_TRAIN
    want += int(titled[seq[1:]].sum())
got = int(sys.argv[2]) + int(sys.argv[3])
assert want > 1000 and got == want, "history documents: %d, expected %d (one per titled training interaction after a user's first)" % (got, want)
print("lm: %d history documents (%s training, %s validation), as dataset.h5's training roles give" % (got, sys.argv[2], sys.argv[3]))
PYEOF
# the split and the prompt's words make the LM only with histories: the stage hash follows them then
mkdir -p $W/h2 $W/n2; cp $W/base/dataset.h5 $W/h2/; cp $W/base/dataset.h5 $W/n2/
$B lm "${small[@]}" --set run.dir=$W/h2 --set 'lm.corpus=["histories"]' --set lm.val_frac=0.1 --set split.protocol=temporal < /dev/null > $W/h2.log 2>&1 || { cat $W/h2.log; exit 1; }
$B lm "${small[@]}" --set run.dir=$W/n2 --set split.protocol=temporal --set prompt.query=" Then:" < /dev/null > $W/n2.log 2>&1 || { cat $W/n2.log; exit 1; }
$PY - $W/h/lm.h5 $W/h2/lm.h5 $W/r2/lm.h5 $W/n2/lm.h5 <<'PYEOF' || exit 1
import sys, h5py
h = [h5py.File(p, "r").attrs["stage_hash"] for p in sys.argv[1:5]]
assert h[0] != h[1], "with histories, another split.protocol left the lm stage hash unchanged"
assert h[2] == h[3], "without histories, split.protocol and prompt.query changed the lm stage hash"
print("lm: the stage hash follows split.protocol with histories, and not without")
PYEOF
if $B lm "${small[@]}" --set run.dir=$W/h --set 'lm.corpus=["titles","history"]' < /dev/null > $W/badcorpus.log 2>&1; then echo "FAIL: lm.corpus 'history' was accepted"; exit 1; fi
grep -q "lm.corpus.*unknown corpus 'history'; expected titles, brands, categories, templates or histories" $W/badcorpus.log \
  || { cat $W/badcorpus.log; echo "FAIL: the unknown corpus error does not name the key and the kinds"; exit 1; }
# `dynmm run` checks it before its first stage: nothing is made
if $B run "${small[@]}" --set run.dir=$W/badrun --set 'run.stages=["synth","lm"]' --set 'lm.corpus=["history"]' < /dev/null > $W/badrun.log 2>&1; then echo "FAIL: run with lm.corpus 'history' succeeded"; exit 1; fi
grep -q "unknown corpus 'history'" $W/badrun.log && [ ! -e $W/badrun/dataset.h5 ] || { cat $W/badrun.log; echo "FAIL: the run did not stop before its first stage"; exit 1; }
echo ok
