#!/usr/bin/env bash
# The paper's model as one path: the adapter's dynamic latents feed the LLM recommender
# (prompt.latents = "stream"), on a small synthetic catalogue with planted drift, 2 ranks:
#   - stream.h5's /serve holds the latents the stream stage scored its last window with: recomputed
#     from them (h . z, the user's history excluded, every item of the window a target), each
#     user's NDCG@10 equals the stream stage's own value for the static aligner and the adapter
#     (float32 scores; ties may break apart in a few users); /serve_prev does the same for the
#     window before the last;
#   - the prompt stage's test split is that window: its users are the ones with an interaction in
#     it, and every model of prompt.models is scored twice on the same users and candidates, on the
#     dynamic latents (MODEL) and the static ones (MODEL@static); the untrained item head ranks
#     exactly as the latents it reads, so latent_head = adapter and latent_head@static = align
#     user for user (two summation orders: a few ties may break apart), and the two differ;
#   - llm@static and llm share their projectors (one training) but not their rows (the dynamic
#     latents reach the LM through the soft tokens);
#   - the stage contract: a change of adapter.* or stream.* reruns stream and then prompt, of
#     prompt.* the prompt stage only, of align.* align, stream and prompt; the others are skipped as
#     current; `dynmm report` tables the static variants against the dynamic models
#     (test_uni19-llm_static, and per model test_uni19-llm_static-llm: llm@static against llm);
#   - prompt.train_latents = "stream" (a rerun of the prompt stage only): the projectors train on the
#     window before the last, its users with an interaction there and one before it (counted here
#     from dataset.h5), on the latents served there; the weights differ from those trained on the
#     base latents; stream_static (the same window on the static latents) trains the same users to
#     other weights;
#   - stage_hash is the sha256 of the stored stage_hash_input; stream's holds its revision tag;
#   - errors: prompt.latents = "stream" on a leave-one-out split, an unknown variant, a variant the
#     stream stage did not run, prompt.train_latents = "stream" without prompt.latents = "stream" or
#     without /serve_prev in stream.h5: named, and no prompt.h5 is left behind.
set -u
PY=/usr/bin/python3; B=$DM_BUILD/dynmm
export OMP_WAIT_POLICY=passive
W=$DM_TMP/stream_prompt; rm -rf $W; mkdir -p $W
fail() { echo "FAIL: $*"; exit 1; }
small=(--set synth.users=600 --set synth.items=200 --set synth.clusters=6 --set split.protocol=stream --set window.count=5
       --set sasrec.epochs=4 --set sasrec.eval_every=4 --set sasrec.hidden=16 --set sasrec.maxlen=20 --set cf.models=[sasrec]
       --set align.epochs=4 --set align.hidden=32 --set align.dim=16 --set align.batch=64
       --set 'stream.variants=[static,adapter,no_stab]' --set adapter.steps=30 --set adapter.hidden=32
       --set lm.steps=40 --set lm.log_every=20 --set lm.warmup=10 --set lm.vocab=600 --set lm.layers=2 --set lm.width=32
       --set lm.heads=2 --set lm.seq_len=48 --set lm.batch=8
       --set prompt.user_tokens=4 --set prompt.history=3 --set prompt.title_tokens=6 --set prompt.hidden=16
       --set prompt.batch=8 --set prompt.eval_users=80 --set prompt.valid_users=40 --set prompt.train_users=32 --set prompt.epochs=1
       --set prompt.head_epochs=0 --set 'prompt.protocols=[uni19]' --set prompt.latency_tokens=[4] --set prompt.latency_batch=2
       --set eval.splits=[test] --set prompt.latents=stream --set 'prompt.models=[latent_head,llm]')
stages='run.stages=[synth,train-cf,align,stream,lm,prompt]'
$DM_MPIRUN -n 2 $B run "${small[@]}" --set run.dir=$W/a --set "$stages" < /dev/null > $W/a.log 2>&1 || { cat $W/a.log; fail "the streaming run into the LLM recommender"; }
grep -E "prompt: test = streaming window|test +uni19" $W/a.log
grep -q "prompt: test = streaming window 4 (" $W/a.log || fail "no word of the window the test split is"
$PY - $W/a <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
s, p, d = (h5py.File(W + "/" + f, "r") for f in ("stream.h5", "prompt.h5", "dataset.h5"))
win = int(s["serve"].attrs["window"]); assert win == 4, win
off, item, wid = d["users/offsets"][...], d["inter/item"][...], d["window/id"][...]
nu = len(off) - 1
def ndcg(h, z, win=win):
    sc = (h.astype(np.float64) @ z.astype(np.float64).T).astype(np.float32)
    out = np.full(nu, np.nan)
    for u in range(nu):
        sl = slice(off[u], off[u + 1])
        tg = np.unique(item[sl][wid[sl] == win])
        if not len(tg): continue
        hist = item[sl][wid[sl] < win]
        comp = np.ones(z.shape[0], bool); comp[hist] = False; comp[tg] = True
        ranks = [1 + int((sc[u][comp] > sc[u, t]).sum()) for t in tg]
        dcg = sum(1 / np.log2(1 + r) for r in ranks if r <= 10)
        out[u] = dcg / sum(1 / np.log2(1 + i) for i in range(1, min(len(tg), 10) + 1))
    return out
zb = h5py.File(W + "/align.h5", "r")["align/z_base"][...]
for v, h, z in (("static", s["serve/static/h"][...], zb), ("adapter", s["serve/adapter/h"][...], s["serve/adapter/z"][...])):
    ref = ndcg(h, z); got = s["stream/%s/ndcg10" % v][:, win].astype(np.float64)
    ok = ~np.isnan(ref)
    assert np.array_equal(ok, ~np.isnan(got)), v + ": the scored users differ"
    same = (np.abs(ref[ok] - got[ok]) < 1e-5).mean()
    print("ok: /serve/%s reproduces the stream stage's last-window NDCG@10 (%.4f) for %.1f%% of %d users" % (v, got[ok].mean(), 100 * same, ok.sum()))
    assert same >= 0.97, "%s: only %.1f%% of users agree" % (v, 100 * same)
pw = int(s["serve_prev"].attrs["window"]); assert pw == win - 1, pw
for v, h, z in (("static", s["serve_prev/static/h"][...], zb), ("adapter", s["serve_prev/adapter/h"][...], s["serve_prev/adapter/z"][...])):
    ref = ndcg(h, z, pw); got = s["stream/%s/ndcg10" % v][:, pw].astype(np.float64)
    ok = ~np.isnan(ref)
    assert np.array_equal(ok, ~np.isnan(got)), v + ": the scored users of /serve_prev differ"
    same = (np.abs(ref[ok] - got[ok]) < 1e-5).mean()
    print("ok: /serve_prev/%s reproduces the stream stage's NDCG@10 of window %d (%.4f) for %.1f%% of %d users" % (v, pw, got[ok].mean(), 100 * same, ok.sum()))
    assert same >= 0.97, "%s: only %.1f%% of users agree" % (v, 100 * same)
assert np.abs(s["serve_prev/adapter/z"][...] - s["serve/adapter/z"][...]).max() > 1e-5, "the two windows serve the same items"
assert np.abs(s["serve/adapter/z"][...] - zb).max() > 1e-4, "the adapter's served items equal z_base"
assert np.abs(s["serve/no_stab/z"][...] - s["serve/adapter/z"][...]).max() > 0, "no_stab serves the adapter's latents"
# the prompt stage's test split is the window, both passes on the same users
has = np.array([(wid[off[u]:off[u + 1]] == win).any() for u in range(nu)])
g = p["test/uni19"]
rows = {m: g[m][...] for m in ("latent_head", "latent_head@static", "llm", "llm@static", "align", "adapter", "sasrec")}
sc = ~np.isnan(rows["align"][:, 0])
assert sc.sum() >= 50 and not (sc & ~has).any(), "scored users outside the window: %d" % (sc & ~has).sum()
for m, r in rows.items():
    assert np.array_equal(~np.isnan(r[:, 0]), sc), m + ": other users than align's"
def agree(a, b): return (np.abs(rows[a][sc] - rows[b][sc]) < 1e-9).all(axis=1).mean()
for a, b in (("latent_head", "adapter"), ("latent_head@static", "align")):
    print("ok: untrained %s = %s on %.1f%% of %d users" % (a, b, 100 * agree(a, b), sc.sum()))
    assert agree(a, b) >= 0.95, (a, b)
assert agree("adapter", "align") < 0.9, "the adapter's rows barely differ from the static aligner's"
# the soft tokens of the dynamic latents reach the LM (this tiny LM ranks mostly by title likelihood)
assert agree("llm", "llm@static") < 1, "llm reads the same latents as llm@static"
print("ok: llm and llm@static differ for %.1f%% of the users" % (100 - 100 * agree("llm", "llm@static")))
assert "llm@static" not in p["prompt"], "llm@static has weights of its own"
cols = [p["columns/chars"][...].tobytes()[a:b].decode() for a, b in zip(p["columns/offsets"][:-1], p["columns/offsets"][1:])]
n10 = cols.index("ndcg@10")
print("ok: NDCG@10 on the window (uni19): align %.4f, adapter %.4f, llm@static %.4f, llm %.4f" %
      tuple(np.nanmean(rows[m][:, n10]) for m in ("align", "adapter", "llm@static", "llm")))
PYEOF
# the contract: the adapter's settings reach the prompt stage through stream.h5
# rerun KEY=VALUE (cumulative): exactly the stages of RUN run, the others are skipped as current
rerun() { # log name, stages expected to run, --set assignments ...
  local log=$1 want=$2 st; shift 2
  for a in "$@"; do later+=(--set "$a"); done
  $DM_MPIRUN -n 2 $B run "${small[@]}" --set run.dir=$W/a --set "$stages" "${later[@]}" < /dev/null > $W/$log.log 2>&1 || { cat $W/$log.log; fail "rerun $log"; }
  for st in synth train-cf align stream lm prompt; do
    case " $want " in
      *" $st "*) grep -q "$st: .* is current, skipped" $W/$log.log && fail "$st skipped as current after $*";;
      *) grep -q "$st: .* is current, skipped" $W/$log.log || fail "$st was not skipped as current after $*";;
    esac
  done
  echo "ok: $* reruns $want, nothing else"
}
later=()
rerun a2 "stream prompt" adapter.steps=20
rerun a3 "stream prompt" stream.eval_from=2
rerun a4 "prompt" prompt.lr=0.002
rerun a5 "align stream prompt" align.epochs=3
cp $W/a/prompt.h5 $W/p_base.h5
rerun a6 "prompt" prompt.train_latents=stream
grep -E "projectors train on streaming window" $W/a6.log
$PY - $W/a $W/p_base.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
p, b, d = h5py.File(W + "/prompt.h5", "r"), h5py.File(sys.argv[2], "r"), h5py.File(W + "/dataset.h5", "r")
off, wid = d["users/offsets"][...], d["window/id"][...]
a = p["prompt"].attrs
tl = a["train_latents"]; tl = tl.decode() if isinstance(tl, bytes) else tl
assert tl == "stream", tl
assert int(a["train_window"]) == 3, a["train_window"]
n = sum(1 for u in range(len(off) - 1) if (wid[off[u]:off[u + 1]] == 3).any() and (wid[off[u]:off[u + 1]] < 3).any())
assert int(a["train_users"]) == n, (int(a["train_users"]), n)
assert int(b["prompt"].attrs["train_users"]) != n, "the base training has the same users"
wl, wb = p["prompt/llm/weights"][...], b["prompt/llm/weights"][...]
assert wl.shape == wb.shape and np.abs(wl - wb).max() > 1e-6, "the weights equal those trained on the base latents"
print("ok: prompt.train_latents = stream trains on window 3: %d users (base: %d), other weights (max |diff| %.3g)" %
      (n, int(b["prompt"].attrs["train_users"]), np.abs(wl - wb).max()))
PYEOF
grep -q "the projectors train on streaming window 3 (.*) on the adapter latents" $W/a6.log || fail "no word of the training window"
cp $W/a/prompt.h5 $W/p_stream.h5
rerun a7 "prompt" prompt.train_latents=stream_static
grep -q "the projectors train on streaming window 3 (.*) on the static latents" $W/a7.log || fail "no word of the static latents"
$PY - $W/a/prompt.h5 $W/p_stream.h5 <<'PYEOF' || exit 1
import sys, h5py, numpy as np
p, q = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert int(p["prompt"].attrs["train_users"]) == int(q["prompt"].attrs["train_users"]), "another set of training users"
d = np.abs(p["prompt/llm/weights"][...] - q["prompt/llm/weights"][...]).max()
assert d > 1e-6, "stream_static trains the weights stream does"
print("ok: stream_static trains on the same users, other weights than stream (max |diff| %.3g)" % d)
PYEOF
$B report $W/a > $W/report.log 2>&1 || { cat $W/report.log; fail "report"; }
grep -q "^| llm static |" $W/a/report/test_uni19-llm_static.md || fail "no table of the static variants"
grep -q "^| llm static |" $W/a/report/test_uni19-llm_static-llm.md && ! grep -q "latent_head" $W/a/report/test_uni19-llm_static-llm.md ||
  { cat $W/a/report/test_uni19-llm_static-llm.md; fail "no table of llm@static against llm alone"; }
grep -q "worse than llm of the same configuration" $W/a/report/test_uni19-llm_static-llm.md || fail "llm@static is not tested against llm"
echo "ok: report tables test_uni19-llm_static (all) and test_uni19-llm_static-llm (llm@static against llm)"
# errors
mkdir -p $W/e && cp $W/a/dataset.h5 $W/a/cf.h5 $W/a/align.h5 $W/a/lm.h5 $W/a/stream.h5 $W/e/
expect() { # expect LOG MESSAGE
  grep -qF -- "$2" $1 || { cat $1; fail "expected: $2"; }
  [ -e $W/e/prompt.h5 ] && fail "prompt.h5 left behind"; echo "ok: refused: $2"; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.stream_variant=no_ema < /dev/null > $W/e1.log 2>&1 && fail "a variant the stream stage did not run was accepted"
expect $W/e1.log "/serve/no_ema/h"
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.stream_variant=static < /dev/null > $W/e2.log 2>&1 && fail "static accepted as an adapter variant"
expect $W/e2.log 'prompt.stream_variant = "static": not an adapter variant'
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set split.protocol=loo < /dev/null > $W/e3.log 2>&1 && fail "prompt.latents = stream on a loo split was accepted"
expect $W/e3.log 'needs split.protocol = "stream"'
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.latents=align --set prompt.train_latents=stream < /dev/null > $W/e4.log 2>&1 &&
  fail "prompt.train_latents = stream without prompt.latents = stream was accepted"
expect $W/e4.log 'prompt.train_latents = "stream" trains on the latents of the streaming window before the last, which needs prompt.latents = "stream"'
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.train_latents=stream --set prompt.head_train_split=valid < /dev/null > $W/e6.log 2>&1 &&
  fail "prompt.head_train_split = valid with prompt.train_latents = stream was accepted"
expect $W/e6.log 'prompt.head_train_split: with prompt.train_latents = "stream" the heads train on each user'"'"'s first interaction of one streaming window; expected "train"'
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.train_latents=stream_static --set prompt.head_positions=4 < /dev/null > $W/e7.log 2>&1 &&
  fail "prompt.head_positions = 4 with prompt.train_latents = stream_static was accepted"
expect $W/e7.log 'prompt.head_positions: with prompt.train_latents = "stream_static" the heads train on each user'"'"'s first interaction of one streaming window; expected 1'
$PY -c 'import h5py, sys; f = h5py.File(sys.argv[1], "a"); del f["serve_prev"]' $W/e/stream.h5
$DM_MPIRUN -n 2 $B prompt "${small[@]}" --set run.dir=$W/e --set prompt.train_latents=stream < /dev/null > $W/e5.log 2>&1 &&
  fail "prompt.train_latents = stream without /serve_prev was accepted"
expect $W/e5.log "has no latents of window 3, the one before the last (/serve_prev is missing)"
# stage_hash is the sha256 of stage_hash_input: stream's holds its revision tag (serve_prev, so that a
# stream.h5 of a version without /serve_prev is not current), its inputs' hashes and its settings;
# align.h5's has no revision
$PY - $W/a <<'PYEOF' || fail "stage_hash_input"
import sys, hashlib, h5py
for name, rev in (("stream.h5", 'revision = "serve_prev";'), ("align.h5", None), ("prompt.h5", None)):
    a = h5py.File(sys.argv[1] + "/" + name, "r").attrs
    t = a["stage_hash_input"]
    t = t.decode() if isinstance(t, bytes) else t
    h = a["stage_hash"]
    h = h.decode() if isinstance(h, bytes) else h
    assert hashlib.sha256(t.encode()).hexdigest() == h, (name, "stage_hash is not the sha256 of stage_hash_input")
    lines = t.splitlines()
    assert (rev in lines) if rev else not any(l.startswith("revision") for l in lines), (name, [l for l in lines if "revision" in l])
    assert 'stage = "%s";' % a["stage"] in lines or 'stage = "%s";' % a["stage"].decode() in lines, name
print("ok: stage_hash = sha256(stage_hash_input) for stream.h5 (with its revision tag), align.h5 and prompt.h5")
PYEOF
echo "PASS"
