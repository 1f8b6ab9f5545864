#!/usr/bin/env bash
# The headline comparison's models in `dynmm prompt`: the A-LLMRec-style baseline (allmrec) and the
# modality ablations MODEL@without_<m>, end to end on a small synthetic catalogue (cf, text, visual;
# no audio) through a tiny in-suite LM:
#   - latent_head@without_audio, on a catalogue without audio, reads z_base bitwise: its rows equal
#     latent_head's, user for user, and the log says no item was recomputed;
#   - untrained, latent_head@without_text ranks as the aligner with text taken from every item, which
#     `dynmm eval`'s stress experiment scores by another path (align@without_text): the rows agree
#     on the prompt stage's users (two BLAS kernels: ties may break apart in a few), and they differ
#     from the intact latent_head's;
#   - allmrec has one user token (prompt.allmrec_tokens) where llm has prompt.user_tokens (its weights
#     are smaller by exactly (L - 1) x (the LM width) x (prompt.hidden + 1)), reads the aligner
#     without visual and audio (stored as an attribute), and trains the same alone at 1 rank as in a
#     list of five models at 2 ranks (within float allreduce rounding);
#   - `dynmm report` tables the ablations on the prompt stage's users against the intact model
#     (test_uni19-llm_without), beside eval's stress table (test_uni19_without);
#   - bad model names are refused naming prompt.models and what was expected.
set -u
. tests/cli/llm_lib.sh
llm_setup allmrec
small=("${llm_small[@]}" --set synth.audio_dim=0
       --set prompt.batch=8 --set prompt.eval_users=60 --set prompt.valid_users=40 --set prompt.train_users=32 --set prompt.epochs=1
       --set prompt.head_epochs=0 --set 'prompt.protocols=[uni19]' --set prompt.latency_tokens=[4] --set prompt.latency_batch=2
       --set 'eval.models=[sasrec,align]' --set 'eval.protocols=[uni19]' --set eval.splits=[test]
       --set stress.enabled=true --set 'stress.rates=[100]' --set stress.pairs=false --set 'stress.snr_db=[]' --set stress.shuffle=false)
models='prompt.models=[latent_head,latent_head@without_audio,latent_head@without_text,allmrec,llm]'
$DM_MPIRUN -n 2 $B run "${small[@]}" --set run.dir=$W/a --set "$models" --set 'run.stages=[synth,train-cf,align,lm,prompt,eval]' \
  < /dev/null > $W/a.log 2>&1 || { cat $W/a.log; fail "the run with five LLM recommenders"; }
grep -E "reads the aligner|stress:" $W/a.log
grep -q "latent_head@without_audio reads the aligner's item latents without audio: 0 of 200 items recomputed (no item has them" $W/a.log \
  || fail "no word that the catalogue has no audio"
mkdir -p $W/b && cp $W/a/dataset.h5 $W/a/cf.h5 $W/a/align.h5 $W/a/lm.h5 $W/b/
$DM_MPIRUN -n 1 $B prompt "${small[@]}" --set run.dir=$W/b --set 'prompt.models=[allmrec]' < /dev/null > $W/b.log 2>&1 \
  || { cat $W/b.log; fail "allmrec alone at 1 rank"; }
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from tolerance import adam_tol
W = sys.argv[1]
p, r = h5py.File(W + "/a/prompt.h5", "r"), h5py.File(W + "/a/results.h5", "r")
lh, la, lt = (p["test/uni19/" + m][...] for m in ("latent_head", "latent_head@without_audio", "latent_head@without_text"))
ok = ~np.isnan(lh[:, 0])
assert ok.sum() >= 40, "only %d users scored" % ok.sum()
assert ((lh == la) | (np.isnan(lh) & np.isnan(la))).all(), "latent_head@without_audio differs from latent_head without any audio"
print("ok: latent_head@without_audio = latent_head bitwise on %d users (the catalogue has no audio)" % ok.sum())
st = r["test/uni19/align@without_text"][...]
assert (~np.isnan(st[ok, 0])).all(), "the stress rows lack users the prompt stage scored"
same = (np.abs(st[ok] - lt[ok]) < 1e-12).all(axis=1).mean()
assert same >= 0.95, "untrained latent_head@without_text = align@without_text for only %.1f%% of users" % (100 * same)
diff = (np.abs(lh[ok] - lt[ok]) > 1e-12).any(axis=1).mean()
assert diff > 0.2, "without text only %.1f%% of users' rows change" % (100 * diff)
print("ok: untrained latent_head@without_text = eval's align@without_text on %.1f%% of %d users; %.1f%% differ from the intact head" %
      (100 * same, ok.sum(), 100 * diff))
g = p["prompt"]
assert g["allmrec"].attrs["user_tokens"] == 1 and g["llm"].attrs["user_tokens"] == 4, (g["allmrec"].attrs["user_tokens"], g["llm"].attrs["user_tokens"])
wm = lambda m: (lambda v: v.decode() if isinstance(v, bytes) else str(v))(m.attrs["without_modalities"])
assert wm(g["allmrec"]) == "visual+audio" and wm(g["latent_head@without_text"]) == "text", (wm(g["allmrec"]), wm(g["latent_head@without_text"]))
assert "without_modalities" not in g["llm"].attrs
na, nl = g["allmrec/weights"].size, g["llm/weights"].size
assert nl - na == 3 * 32 * 17, "llm has %d weights, allmrec %d: expected a difference of 3 x 32 x 17" % (nl, na)
ca = g["allmrec/curve"][...]
assert np.isfinite(ca).all() and ca[0, 1] > 0, ca
b = h5py.File(W + "/b/prompt.h5", "r")["prompt/allmrec/weights"][...]
dw = np.abs(b - g["allmrec/weights"][...]).max()
tol, lr = adam_tol(p, "prompt.lr")
assert dw < tol, "allmrec alone at 1 rank and in the list at 2 ranks differ by %g > lr/20 = %g" % (dw, tol)
print("ok: allmrec 1 user token (%d weights, llm %d), without visual+audio; alone at 1 rank = in the list at 2 ranks within %.1e" % (na, nl, dw))
PYEOF
# the report: the ablations make a table of their own on the prompt stage's users, each against the
# intact model (the stress variants of eval keep theirs, in the full protocol)
$B report $W/a > $W/report.log 2>&1 || { cat $W/report.log; fail "dynmm report"; }
t=$W/a/report/test_uni19-llm_without.csv
[ -s $t ] || { cat $W/report.log; fail "no table test_uni19-llm_without"; }
$PY - $t $W/a/report/test_uni19-llm_without_tests.csv <<'PYEOF' || exit 1
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
models = list(dict.fromkeys(r["model"] for r in rows))
want = ["latent_head", "latent_head@without_audio", "latent_head@without_text"]
assert models == want and {r["protocol"] for r in rows} == {"uni19-llm"}, "table rows %s, expected %s" % (models, want)
tests = list(csv.DictReader(open(sys.argv[2])))
base = {t.get("baseline") for t in tests}
assert base == {"latent_head"}, "tested against %s, expected latent_head" % base
print("ok: report table test_uni19-llm_without: %s, tested against latent_head" % ", ".join(want))
PYEOF
grep -q "table  test_uni19_without " $W/report.log || fail "the stress table test_uni19_without is gone: $(grep table $W/report.log)"
# bad names
bad() {
  $B prompt "${small[@]}" --set run.dir=$W/b --set "prompt.models=[$1]" < /dev/null > $W/bad.log 2>&1 && fail "'$1' accepted"
  grep -q -- "$2" $W/bad.log || { cat $W/bad.log; fail "'$1': expected '$2'"; }
}
bad 'llm_head@without_smell' "prompt.models.*'smell' is not a modality; expected modalities cf, text, visual, audio joined by '+'"
bad 'llm_head@with_text' "prompt.models.*the only variant is @without_<modalities>, e.g. llm_head@without_text"
bad 'llm_explain@without_text' "llm_explain's evidence reads the intact aligner"
bad 'llm_head@without_text+text' "'text' is repeated"
bad 'allmrek' "unknown model 'allmrek'; expected llm_head, latent_head, llm, llm_explain or allmrec"
bad 'llm,llm_head,latent_head,allmrec,llm_explain,llm@without_cf,llm@without_text,llm@without_visual,llm@without_audio' "give one to 8 of"
echo "ok: bad model names refused with the key and what was expected"
echo "PASS"
