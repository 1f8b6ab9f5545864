#!/usr/bin/env bash
# `dynmm prompt` with the item-head LLM recommender (prompt.models llm_head) end to end on a small
# synthetic catalogue through a tiny in-suite LM:
#   - untrained (prompt.head_epochs=0) it ranks as the aligner whose latents it reads: its per-user
#     rows equal the aligner's on the same users, under the sampled sets and in full ranking (top N),
#     and so do those of its LM-free twin latent_head (both with the CF model's item space, the
#     default prompt.head_cf);
#   - latent_head trained: its LM weights W stay exactly zero (x = 0), its residual weights move, the
#     loss falls;
#   - trained, the softmax loss falls, the validation curve starts at the untrained head and the
#     weights kept are those of its best epoch: a run stopped after that many epochs ends with the
#     same weights, bitwise (same rank count, same summation order);
#   - early stopping: with patience 1 training ends after the first epoch without a better NDCG@10;
#   - SIGTERM to the ranks mid-training writes a checkpoint; the rerun resumes to the uninterrupted
#     weights, curve and validation curve;
#   - the weights after the same steps agree at 1 and 3 ranks within float allreduce rounding;
#   - prompt.early_stop = uni19 for llm and llm_explain: the validation curve starts at the untrained
#     projectors and the weights kept are the best epoch's (= a run of that many epochs, bitwise);
#   - the heads' other examples: prompt.head_positions = 3 (the example count against dataset.h5's
#     split) and prompt.head_train_split = valid (its count; the same weights at 1, 2 and 3 ranks;
#     other weights than the training split's), and their refused combinations;
#   - a model listed twice, an unknown model and an early_stop protocol outside prompt.protocols are
#     refused naming them.
set -u
. tests/cli/llm_lib.sh
llm_setup llmhead
small=("${llm_small[@]}"
       --set prompt.batch=8 --set prompt.eval_users=60 --set prompt.valid_users=80 --set prompt.head_lr=0.001 --set prompt.warmup=5
       --set 'prompt.protocols=[uni19,top20]' --set prompt.latency_tokens=[4] --set prompt.latency_batch=2 --set 'prompt.models=[llm_head]'
       --set eval.splits=[test])
$DM_MPIRUN -n 2 $B run "${small[@]}" --set run.dir=$W/base --set prompt.head_epochs=0 --set 'run.stages=[synth,train-cf,align,lm,prompt]' \
  --set 'prompt.models=[llm_head,latent_head]' \
  < /dev/null > $W/base.log 2>&1 || { cat $W/base.log; fail "the untrained run"; }
grep -E "llm_head|align " $W/base.log
copy() { mkdir -p $W/$1; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/base/lm.h5 $W/$1/; }
for d in a b c p1 p3 ia ib l; do copy $d; done
# without the residual the untrained head scores every item 0, so training beats it and the kept
# epoch is a trained one (with it, noise on 80 validation users can keep the untrained head)
ep=(--set prompt.head_epochs=6 --set prompt.patience=10 --set prompt.head_residual=false)
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${ep[@]}" --set run.dir=$W/a < /dev/null > $W/a.log 2>&1 || { cat $W/a.log; fail "trained run"; }
grep -E "llm_head (untrained|epoch)|kept" $W/a.log
best=$($PY -c "import h5py; print(int(h5py.File('$W/a/prompt.h5','r')['prompt/llm_head/valid'].attrs['best_epoch']))")
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set prompt.head_epochs=$best --set prompt.patience=10 --set prompt.head_residual=false --set run.dir=$W/b < /dev/null > $W/b.log 2>&1 \
  || { cat $W/b.log; fail "run of $best epochs"; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set prompt.head_epochs=6 --set prompt.patience=1 --set run.dir=$W/c < /dev/null > $W/c.log 2>&1 \
  || { cat $W/c.log; fail "run with patience 1"; }
$PY - $W $best <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W, best = sys.argv[1], int(sys.argv[2])
base = h5py.File(W + "/base/prompt.h5", "r")
# untrained: the aligner's rows, user for user (the head's query is h_u exactly; only the BLAS
# kernel differs, so a user may change only where two items' scores tie within float rounding)
for proto in ("uni19", "top20"):
  for m in ("llm_head", "latent_head"):
    a, h = base["test/%s/align" % proto][...], base["test/%s/%s" % (proto, m)][...]
    ok = ~np.isnan(a[:, 0])
    assert ok.sum() >= 40 and (np.isnan(h[:, 0]) == ~ok).all(), "%s: users scored differ" % proto
    same = (np.abs(a[ok] - h[ok]) < 1e-12).all(axis=1).mean()
    assert same >= 0.95, "%s: untrained %s rows equal the aligner's for only %.1f%% of users" % (proto, m, 100 * same)
    print("ok: untrained %s = aligner on %s (%d users, %.1f%% of rows identical)" % (m, proto, ok.sum(), 100 * same))
a = h5py.File(W + "/a/prompt.h5", "r")
cv, va = a["prompt/llm_head/curve"][...], a["prompt/llm_head/valid"][...]
assert cv.shape == (6, 6) and va.shape == (7,), (cv.shape, va.shape)
assert cv[-1, 1] < cv[0, 1], "the softmax loss did not fall: %s" % cv[:, 1]
assert best == int(np.nanargmax(va)), "best_epoch %d but the validation curve %s" % (best, va)
b = h5py.File(W + "/b/prompt.h5", "r")
wa, wb = a["prompt/llm_head/weights"][...], b["prompt/llm_head/weights"][...]
assert (wa == wb).all(), "the kept weights differ from a run of %d epochs by %g" % (best, np.abs(wa - wb).max())
assert best > 0, "the untrained head (all scores 0) was kept: %s" % va
assert (b["prompt/llm_head/valid"][...] == va[:best + 1]).all()
print("ok: losses %s, validation ndcg@10 %s, best epoch %d kept (= a run of %d epochs, bitwise)" % (np.round(cv[:, 1], 4), np.round(va, 4), best, best))
c = h5py.File(W + "/c/prompt.h5", "r")["prompt/llm_head/valid"][...]
run = np.where(~np.isnan(c))[0]
last = run[-1]
assert last == len(c) - 1 or c[last] <= np.nanmax(c[:last]), "patience 1: stopped after epoch %d though it improved: %s" % (last, c)
for e in range(1, last):
    assert c[e] > np.nanmax(c[:e]), "patience 1: went on after epoch %d without a better NDCG@10: %s" % (e, c)
print("ok: patience 1 stopped after epoch %d of 6: %s" % (last, np.round(c, 4)))
PYEOF
# latent_head trained: the head is the slab's end, per space (aligner: align.dim 16; SASRec: sasrec.hidden
# 16) W (16, 32 = lm.width), b (16), a (1)
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set prompt.head_epochs=3 --set 'prompt.models=[latent_head]' --set run.dir=$W/l < /dev/null > $W/l.log 2>&1 \
  || { cat $W/l.log; fail "latent_head run"; }
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1] + "/l/prompt.h5", "r")
w, cv = f["prompt/latent_head/weights"][...].ravel(), f["prompt/latent_head/curve"][...]
n = 16 * 32 + 16 + 1
wz, bz, az = w[-2 * n:-2 * n + 512], w[-2 * n + 512:-n - 1], w[-n - 1]
we, be, ae = w[-n:-n + 512], w[-n + 512:-1], w[-1]
assert (wz == 0).all() and (we == 0).all(), "latent_head: W moved without the LM (%g, %g)" % (abs(wz).max(), abs(we).max())
assert cv[-1, 1] < cv[0, 1], "latent_head: the loss did not fall: %s" % cv[:, 1]
va = f["prompt/latent_head/valid"]
if va.attrs["best_epoch"] > 0:
    assert az != 1 or ae != 0, "latent_head kept a trained epoch but its residual weights did not move"
print("ok: latent_head W = 0, a_z %.4f, a_e %.4f, |b_z| %.4f, |b_e| %.4f; loss %s; validation %s" %
      (az, ae, np.linalg.norm(bz), np.linalg.norm(be), np.round(cv[:, 1], 4), np.round(va[...], 4)))
PYEOF
# the same steps at 1 and 3 ranks (2 ranks is run a)
for np in 1 3; do
  $DM_MPIRUN -n $np $B prompt "${small[@]}" "${ep[@]}" --set run.dir=$W/p$np < /dev/null > $W/p$np.log 2>&1 || { cat $W/p$np.log; fail "$np ranks"; }
done
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from tolerance import adam_tol
W = sys.argv[1]
a = h5py.File(W + "/a/prompt.h5", "r")
for n in (1, 3):
    f = h5py.File("%s/p%d/prompt.h5" % (W, n), "r")
    # the same epoch kept (else the comparison is of different epochs: say so)
    ba, bn = a["prompt/llm_head/valid"].attrs["best_epoch"], f["prompt/llm_head/valid"].attrs["best_epoch"]
    assert ba == bn, "best epoch %d at 2 ranks, %d at %d ranks" % (ba, bn, n)
    d = np.abs(a["prompt/llm_head/weights"][...] - f["prompt/llm_head/weights"][...]).max()
    tol, lr = adam_tol(a, "prompt.head_lr")
    assert d < tol, "llm_head weights at %d ranks differ from 2 ranks by %g > prompt.head_lr/20 = %g" % (n, d, tol)
    dv = np.nanmax(np.abs(a["prompt/llm_head/valid"][...] - f["prompt/llm_head/valid"][...]))
    assert dv < 0.02, "validation curves at %d and 2 ranks differ by %g" % (n, dv)
print("ok: llm_head weights the same at 1, 2 and 3 ranks (within prompt.head_lr/20 = %g)" % tol)
PYEOF
# SIGTERM to the ranks mid-training, resume
long=(--set prompt.head_epochs=30 --set prompt.patience=100)
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ia < /dev/null > $W/ia.log 2>&1 || { cat $W/ia.log; fail "long run"; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ib < /dev/null > $W/ib.log 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "llm_head epoch 2 " $W/ib.log 2>/dev/null && break; sleep 0.05; done
pkill -TERM -f "^$B prompt .*run.dir=$W/ib"
wait $pid && fail "the run finished before SIGTERM reached it"
grep -q "interrupted by a signal" $W/ib.log && [ -s $W/ib/ckpt_prompt_llm_head.h5 ] || { cat $W/ib.log; fail "no checkpoint on SIGTERM"; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ib < /dev/null > $W/ib2.log 2>&1 || { cat $W/ib2.log; fail "resumed run"; }
grep -q "resuming from" $W/ib2.log || { cat $W/ib2.log; fail "the rerun did not resume"; }
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
a, b = (h5py.File(W + "/%s/prompt.h5" % d, "r") for d in ("ia", "ib"))
for k in ("weights", "valid"):
    x, y = a["prompt/llm_head/" + k][...], b["prompt/llm_head/" + k][...]
    assert ((x == y) | (np.isnan(x) & np.isnan(y))).all(), "resumed %s differ" % k
# the resumed epoch's loss is the checkpoint's global sum plus the rest: another summation order
ca, cb = a["prompt/llm_head/curve"][:, :5], b["prompt/llm_head/curve"][:, :5]
assert np.allclose(ca, cb, rtol=1e-12, atol=0), "resumed curve differs by %g" % np.abs(ca - cb).max()
print("ok: resumed after SIGTERM to the uninterrupted weights, curve and validation curve")
PYEOF
# prompt.early_stop for the likelihood models (llm_explain: its evidence reads the validation
# split's latents while validating): the curve starts at the untrained projectors, the kept weights
# are those of the best epoch (= a run of that many epochs without early stopping, bitwise)
es=(--set 'prompt.models=[llm,llm_explain]' --set prompt.train_users=48 --set prompt.valid_users=40 --set prompt.patience=10)
copy e
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${es[@]}" --set prompt.epochs=3 --set prompt.early_stop=uni19 --set run.dir=$W/e < /dev/null > $W/e.log 2>&1 \
  || { cat $W/e.log; fail "early_stop run"; }
grep -E "(llm|llm_explain) (untrained|epoch .* valid)|kept" $W/e.log
for m in llm llm_explain; do   # a run of as many epochs as each model kept, without early stopping
  b=$($PY -c "import h5py; print(int(h5py.File('$W/e/prompt.h5','r')['prompt/$m/valid'].attrs['best_epoch']))")
  [ -d $W/f$b ] && continue
  copy f$b
  $DM_MPIRUN -n 2 $B prompt "${small[@]}" "${es[@]}" --set prompt.epochs=$b --set run.dir=$W/f$b < /dev/null > $W/f$b.log 2>&1 \
    || { cat $W/f$b.log; fail "run of $b epochs"; }
done
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
e = h5py.File(W + "/e/prompt.h5", "r")
for m in ("llm", "llm_explain"):
    va = e["prompt/%s/valid" % m]
    pr = va.attrs["protocol"]; pr = pr.decode() if isinstance(pr, bytes) else pr
    assert va.shape == (4,) and pr == "uni19", (va.shape, pr)
    v, best = va[...], int(va.attrs["best_epoch"])
    assert not np.isnan(v).any() and (v > 0).all() and (v <= 1).all(), "%s: validation curve %s" % (m, v)
    assert best == int(np.argmax(v)), "%s: best_epoch %d but the curve %s" % (m, best, v)
    f = h5py.File("%s/f%d/prompt.h5" % (W, best), "r")
    we, wf = e["prompt/%s/weights" % m][...], f["prompt/%s/weights" % m][...]
    assert (we == wf).all(), "%s: the kept weights differ from a run of %d epochs by %g" % (m, best, np.abs(we - wf).max())
    assert "valid" not in f["prompt/%s" % m], "%s: a validation curve without prompt.early_stop" % m
    print("ok: %s early-stopped on uni19: validation ndcg@10 %s, epoch %d kept (= a run of %d epochs, bitwise)" % (m, np.round(v, 4), best, best))
PYEOF
# the heads' other examples (latent_head, 2 epochs): prompt.head_positions = 3, the last 3 training
# positions of every user; prompt.head_train_split = valid, the validation targets of the users
# outside the validation sample. Their counts against dataset.h5's split; the valid-split weights
# the same at 1 and 3 ranks as at 2 (the examples are shared out), and unlike the training split's.
hx=(--set 'prompt.models=[latent_head]' --set prompt.head_epochs=2 --set prompt.patience=10 --set prompt.head_residual=false) # a trained epoch kept
for d in x0 xp xv1 xv2 xv3; do copy $d; done
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${hx[@]}" --set run.dir=$W/x0 < /dev/null > $W/x0.log 2>&1 || { cat $W/x0.log; fail "latent_head, training split"; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${hx[@]}" --set prompt.head_positions=3 --set run.dir=$W/xp < /dev/null > $W/xp.log 2>&1 \
  || { cat $W/xp.log; fail "latent_head, 3 positions"; }
for np in 1 2 3; do
  $DM_MPIRUN -n $np $B prompt "${small[@]}" "${hx[@]}" --set prompt.head_train_split=valid --set run.dir=$W/xv$np < /dev/null > $W/xv$np.log 2>&1 \
    || { cat $W/xv$np.log; fail "latent_head, validation split, $np ranks"; }
done
grep -h "item heads:\|latent_head: .* training" $W/xp.log $W/xv2.log
$PY - $W <<'PYEOF' || exit 1
import sys, re, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from tolerance import adam_tol
W = sys.argv[1]
d = h5py.File(W + "/base/dataset.h5", "r")
off, role = d["users/offsets"][...], d["split/loo"][...]
ntr = np.array([(role[off[u]:off[u + 1]] == 0).sum() for u in range(len(off) - 1)])
nva = np.array([(role[off[u]:off[u + 1]] == 1).sum() for u in range(len(off) - 1)])
log = open(W + "/xp.log").read()
wp = int(np.minimum(3, ntr - 1)[ntr >= 2].sum()), int((ntr >= 2).sum())
got = tuple(int(x) for x in re.search(r"item heads: (\d+) training examples, the last 3 positions of (\d+) users", log).groups())
assert got == wp, "3 positions: %s examples and users, expected %s" % (got, wp)
assert "latent_head: %d training examples, %d per epoch" % (wp[0], wp[0]) in log, "3 positions: the epoch is not every example"
log = open(W + "/xv2.log").read()
nv = int(re.search(r"latent_head untrained \([^)]*\): valid ndcg@10 [0-9.]+ on (\d+) users", log).group(1))
assert nv == 80, "validation users: %d" % nv
want = int(nva.sum()) - nv, int((nva > 0).sum()) - nv   # one validation target per user (leave-one-out)
got = tuple(int(x) for x in re.search(r"item heads: (\d+) training examples, the validation targets of (\d+) users outside the 80 validation users", log).groups())
assert got == want, "validation split: %s examples and users, expected %s" % (got, want)
w = {k: h5py.File("%s/%s/prompt.h5" % (W, k), "r") for k in ("x0", "xp", "xv1", "xv2", "xv3")}
cv = w["xv2"]["prompt/latent_head/curve"][...]
assert cv[-1, 1] < cv[0, 1], "validation split: the loss did not fall: %s" % cv[:, 1]
for k in w:
    assert w[k]["prompt/latent_head/valid"].attrs["best_epoch"] > 0, "%s: the untrained head (all scores 0) was kept" % k
wt = lambda k: w[k]["prompt/latent_head/weights"][...]
tol, lr = adam_tol(w["xv2"], "prompt.head_lr")
for k in ("xv1", "xv3"):
    dd = np.abs(wt(k) - wt("xv2")).max()
    assert dd < tol, "validation split: weights at %s ranks differ from 2 ranks by %g > %g" % (k[-1], dd, tol)
for k in ("xp", "xv2"):
    assert np.abs(wt(k) - wt("x0")).max() > 10 * tol, "%s: the same weights as the training split's" % k
print("ok: 3 positions %d examples; validation split %d examples, the same weights at 1, 2, 3 ranks (within %g), loss %s" %
      (wp[0], want[0], tol, np.round(cv[:, 1], 4)))
PYEOF
# the validation split's examples read the users' validation latents: with the weights frozen
# (prompt.head_lr and head_mix_lr 0) latent_head scores as the aligner, h_valid . z_base, so its
# first epoch's loss is the mean softmax cross-entropy of those scores over the validation targets
# of every user but the one validation user (prompt.valid_users 1)
copy xz
$B prompt "${small[@]}" "${hx[@]}" --set prompt.head_train_split=valid --set prompt.head_residual=true --set prompt.head_lr=0 --set prompt.head_mix_lr=0 \
  --set prompt.head_epochs=1 --set prompt.valid_users=1 --set run.dir=$W/xz < /dev/null > $W/xz.log 2>&1 || { cat $W/xz.log; fail "frozen latent_head"; }
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
d, a = h5py.File(W + "/base/dataset.h5", "r"), h5py.File(W + "/base/align.h5", "r")
off, role, item = d["users/offsets"][...], d["split/loo"][...], d["inter/item"][...]
h, z = a["align/h_valid"][...].astype(np.float64), a["align/z_base"][...].astype(np.float64)
L = []
for u in range(len(off) - 1):
    for j in range(off[u], off[u + 1]):
        if role[j] == 1:
            s = z @ h[u]
            m = s.max()
            L.append(m + np.log(np.exp(s - m).sum()) - s[item[j]])
L = np.array(L)
M = h5py.File(W + "/xz/prompt.h5", "r")["prompt/latent_head/curve"][0, 1]
cand = (L.sum() - L) / (len(L) - 1)      # the mean without each user in turn
err = np.abs(cand - M).min()
assert err < 1e-5 * max(1.0, abs(M)), "frozen latent_head: loss %.7f, h_valid . z_base gives %.7f to %.7f (closest %.2g away)" % (M, cand.min(), cand.max(), err)
print("ok: validation-split loss %.6f = the aligner's h_valid . z_base cross-entropy without the validation user (within %.1g)" % (M, err))
PYEOF
$B prompt "${small[@]}" --set run.dir=$W/a --set prompt.head_train_split=valid --set prompt.head_positions=2 > $W/e4.log 2>&1 \
  && fail "prompt.head_positions with the validation split was accepted"
grep -q 'prompt.head_positions = 2 counts positions of the training split; with prompt.head_train_split = "valid" expected 1' $W/e4.log \
  || { cat $W/e4.log; fail "head_positions with valid: message"; }
$B prompt "${small[@]}" --set run.dir=$W/a --set prompt.head_train_split=valid --set prompt.valid_users=100000 --set 'prompt.models=[latent_head]' > $W/e5.log 2>&1 \
  && fail "the validation split with every validation user in the sample was accepted"
grep -q 'prompt.head_train_split = "valid": no validation target outside the [0-9]* validation users of prompt.valid_users' $W/e5.log \
  || { cat $W/e5.log; fail "no validation examples: message"; }
# refused settings
$B prompt "${small[@]}" --set run.dir=$W/a --set prompt.early_stop=uni99 > $W/e3.log 2>&1 && fail "prompt.early_stop outside prompt.protocols was accepted"
grep -q 'prompt.early_stop = "uni99": expected "none" or one of the sampled protocols of prompt.protocols' $W/e3.log || { cat $W/e3.log; fail "early_stop: message"; }
$B prompt "${small[@]}" --set run.dir=$W/a --set 'prompt.models=[llm_head,llm_head]' > $W/e1.log 2>&1 && fail "a model listed twice was accepted"
grep -q "prompt.models: 'llm_head' is listed twice" $W/e1.log || { cat $W/e1.log; fail "listed twice: message"; }
$B prompt "${small[@]}" --set run.dir=$W/a --set 'prompt.models=[llm_hed]' > $W/e2.log 2>&1 && fail "an unknown model was accepted"
grep -q "unknown model 'llm_hed'; expected llm_head, latent_head, llm, llm_explain or allmrec, optionally with @without_<modalities>" $W/e2.log || { cat $W/e2.log; fail "unknown model: message"; }
echo ok
