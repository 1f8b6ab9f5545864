#!/usr/bin/env bash
# The prompt and explain stages on a Llama checkpoint (lm.arch), end to end on a tiny synthetic
# catalogue: a random Hugging Face Llama (grouped-query attention, untied head) with a
# SentencePiece-style tokenizer.json written by tests/reference/gen_llama_prompt.py;
#   - `dynmm run` through lm, prompt (llm and llm_explain, trained) and explain at 1 and 2 ranks;
#     lm.h5 says arch llama, and the per-user rows of both models are the same at 1 and 2 ranks;
#   - the stored MRR of llm under top20 equals a PyTorch reference of the same Llama recomputed
#     from the stored projector weights, the aligner's latents and the prompt layout;
#   - lm.arch = "gpt2" on the Llama directory is refused naming lm.arch and its config.json;
#     lm.arch = "llama" without lm.checkpoint is refused before the first stage;
#   - lm.precision = "bf16" on the Llama runs its products in bfloat16 (MRR as f32's within bf16's
#     noise); without AVX512_BF16 (DM_NO_BF16) it says once that it runs f32 and gives f32's rows;
#     lm.train_precision = "f32" trains exactly as f32 (weights bit for bit) and scores in bf16.
set -u
PY=/usr/bin/python3; B=$DM_BUILD/dynmm
W=$DM_TMP/llama_prompt; rm -rf $W; mkdir -p $W
$PY tests/reference/gen_llama_prompt.py $W > $W/gen.log 2>&1 || { cat $W/gen.log; exit 1; }
LM=$W/llama_prompt/lm
small=(--set synth.users=60 --set synth.items=40 --set synth.clusters=4
       --set sasrec.epochs=1 --set sasrec.eval_every=1 --set sasrec.hidden=16 --set sasrec.maxlen=12 --set cf.models=[sasrec]
       --set align.epochs=1 --set align.hidden=16 --set align.dim=8 --set align.batch=32
       --set lm.checkpoint=$LM --set lm.arch=llama
       --set prompt.user_tokens=3 --set prompt.history=3 --set prompt.title_tokens=8 --set prompt.hidden=16
       --set prompt.train_users=12 --set prompt.epochs=1 --set prompt.batch=4 --set prompt.eval_users=1000
       --set 'prompt.models=[llm,llm_explain]' --set 'prompt.protocols=[top20]' --set 'prompt.latency_tokens=[]'
       --set prompt.negatives=3
       --set explain.tokens=2 --set explain.hidden=8 --set explain.width=4 --set explain.k_users=2 --set explain.k_items=2
       --set explain.k_attrs=2 --set explain.rationale_tokens=16 --set explain.users=3 --set explain.top_k=2
       --set explain.candidates=4 --set explain.random_masks=1 --set eval.splits=[test]
       --set 'run.stages=[synth,train-cf,align,lm,prompt,explain]')
for np in 1 2; do
  $DM_MPIRUN -n $np $B run "${small[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; exit 1; }
done
grep -E "lm: loaded|prompt: LM" $W/r2.log
grep -q "llama, 2 key/value heads" $W/r2.log || { cat $W/r2.log; echo "FAIL: the lm stage did not load the Llama"; exit 1; }
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from tolerance import adam_tol
W = sys.argv[1]
a, b = (h5py.File("%s/r%d/prompt.h5" % (W, n), "r") for n in (1, 2))
arch = h5py.File(W + "/r2/lm.h5", "r").attrs["arch"]
assert (arch.decode() if isinstance(arch, bytes) else arch) == "llama", "lm.h5 arch %r" % arch
for m in ("llm", "llm_explain"):
    x, y = a["test/top20/" + m][...], b["test/top20/" + m][...]
    ok = ~np.isnan(x[:, -1])
    assert ok.sum() >= 10 and np.array_equal(ok, ~np.isnan(y[:, -1])), "%s: users scored differ" % m
    d = np.abs(x[ok] - y[ok]).max()
    assert d < 1e-6, "%s: per-user rows differ between 1 and 2 ranks by %g" % (m, d)
    w1, w2 = a["prompt/%s/weights" % m][...], b["prompt/%s/weights" % m][...]
    tol, lr = adam_tol(a, "prompt.lr")
    assert np.abs(w1 - w2).max() < tol, "%s: trained weights differ between 1 and 2 ranks by more than lr/20 = %g" % (m, tol)
    print("%s on the Llama: %d users, MRR %.4f, the same rows at 1 and 2 ranks" % (m, ok.sum(), x[ok, -1].mean()))
e = h5py.File(W + "/r2/explain.h5", "r")
print("explain on the Llama: datasets", sorted(e["explain"].keys())[:6])
PYEOF
[ -s $W/r2/explain.jsonl ] || { echo "FAIL: no explanations on the Llama"; exit 1; }
$PY tests/reference/gen_llama_prompt.py --check $W/r2 top20 || exit 1
# the wrong architecture, and a Llama without a checkpoint
mkdir -p $W/bad; cp $W/r1/dataset.h5 $W/bad/
$B lm "${small[@]}" --set run.dir=$W/bad --set lm.arch=gpt2 < /dev/null > $W/bad.log 2>&1 && { echo "FAIL: lm.arch=gpt2 accepted a Llama"; exit 1; }
grep -q "lm.arch = \"gpt2\" but '$LM/config.json' is a llama checkpoint" $W/bad.log || { cat $W/bad.log; echo "FAIL: the mismatch names neither lm.arch nor the file"; exit 1; }
$B run "${small[@]}" --set run.dir=$W/bad2 --set lm.checkpoint= < /dev/null > $W/bad2.log 2>&1 && { echo "FAIL: lm.arch=llama without a checkpoint accepted"; exit 1; }
grep -q "lm.arch.* = \"llama\" but lm.checkpoint is empty" $W/bad2.log && ! grep -q "^\[1/" $W/bad2.log || { cat $W/bad2.log; echo "FAIL: lm.arch=llama without a checkpoint not refused up front"; exit 1; }
echo "refused: $(grep -m1 "lm.arch" $W/bad.log)"
# bf16 on the Llama: the products run on bfloat16 copies of its weights where the CPU has
# AVX512_BF16 (the same users' MRR as f32 within bf16's noise: its scores move by ~1e-2); with
# DM_NO_BF16 set the log says once that it runs f32, and the rows are those of f32 bit for bit
cp -r $W/r1 $W/bf; cp -r $W/r1 $W/bf0; rm -f $W/bf/prompt.h5 $W/bf0/prompt.h5
$B prompt "${small[@]}" --set run.dir=$W/bf --set lm.precision=bf16 < /dev/null > $W/bf.log 2>&1 || { cat $W/bf.log; exit 1; }
if grep -q avx512_bf16 /proc/cpuinfo; then
  grep -q "runs in f32" $W/bf.log && { cat $W/bf.log; echo "FAIL: the Llama fell back to f32 on a CPU with AVX512_BF16"; exit 1; }
  $PY - $W/r1/prompt.h5 $W/bf/prompt.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for m in ("llm", "llm_explain"):
    x, y = a["test/top20/" + m][...], b["test/top20/" + m][...]
    ok = ~np.isnan(x[:, -1])
    assert np.array_equal(ok, ~np.isnan(y[:, -1])), m + ": users differ"
    d = abs(x[ok, -1].mean() - y[ok, -1].mean())
    assert d < 0.03, "%s: MRR %.4f in bf16 against %.4f in f32" % (m, y[ok, -1].mean(), x[ok, -1].mean())
    print("%s on the Llama in bf16: MRR %.4f (f32 %.4f)" % (m, y[ok, -1].mean(), x[ok, -1].mean()))
PYEOF
  # lm.train_precision = f32 beside lm.precision = bf16: training runs in f32, so the trained
  # projector weights are f32's bit for bit (1 rank both) and differ from those trained in bf16
  cp -r $W/r1 $W/bft; rm -f $W/bft/prompt.h5
  $B prompt "${small[@]}" --set run.dir=$W/bft --set lm.precision=bf16 --set lm.train_precision=f32 < /dev/null > $W/bft.log 2>&1 || { cat $W/bft.log; exit 1; }
  grep -q "llm: trains with the LM in f32 (lm.train_precision), scores in bf16" $W/bft.log || { cat $W/bft.log; echo "FAIL: lm.train_precision not reported"; exit 1; }
  $PY - $W/r1/prompt.h5 $W/bf/prompt.h5 $W/bft/prompt.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f32, bf, bft = (h5py.File(p, "r") for p in sys.argv[1:4])
for m in ("llm", "llm_explain"):
    w, wb, wt = (f["prompt/%s/weights" % m][...] for f in (f32, bf, bft))
    assert np.array_equal(w, wt), "%s: trained in f32 under lm.precision=bf16, weights differ from f32's by %g" % (m, np.abs(w - wt).max())
    assert not np.array_equal(w, wb), m + ": bf16 training left the weights of f32 training (is bf16 on?)"
    x, y = f32["test/top20/" + m][...], bft["test/top20/" + m][...]
    ok = ~np.isnan(x[:, -1])
    d = abs(x[ok, -1].mean() - y[ok, -1].mean())
    assert d < 0.03, "%s: trained in f32, scored in bf16: MRR %.4f against %.4f" % (m, y[ok, -1].mean(), x[ok, -1].mean())
    print("%s trained in f32, scored in bf16: weights f32's bit for bit (bf16 training moves them by %.2g), MRR %.4f (f32 %.4f)"
          % (m, np.abs(w - wb).max(), y[ok, -1].mean(), x[ok, -1].mean()))
PYEOF
fi
DM_NO_BF16=1 $B prompt "${small[@]}" --set run.dir=$W/bf0 --set lm.precision=bf16 < /dev/null > $W/bf0.log 2>&1 || { cat $W/bf0.log; exit 1; }
n=$(grep -c "runs in f32" $W/bf0.log)
[ "$n" = 1 ] || { cat $W/bf0.log; echo "FAIL: the Llama's bf16 fallback said so $n times"; exit 1; }
$PY tests/reference/check_cf.py equal $W/r1/prompt.h5 $W/bf0/prompt.h5 test > /dev/null || { echo "FAIL: the f32 fallback's rows differ from f32"; exit 1; }
echo "lm.precision = bf16 on the Llama with DM_NO_BF16: $(grep -m1 "runs in f32" $W/bf0.log | sed 's/^ *//'); rows equal to f32"
echo "PASS"
