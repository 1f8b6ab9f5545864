#!/usr/bin/env bash
# `dynmm prompt` (llm and llm_explain side by side) and `dynmm explain` end to end on a small
# synthetic catalogue through a tiny in-suite LM:
#   - both LLM recommenders are scored on the same users (their per-user rows pair up), their
#     training curves and the side-by-side latency are stored (with llm_explain in the
#     per-candidate layout timed beside them, explain.latency_per_candidate);
#   - every rationale matches one of the configured templates and each slot value is, independently
#     re-derived here, the title of an evidence item, the name of an evidence attribute of the
#     slot's type, or the history count of the attribute it follows; every evidence element checks
#     out against the data (neighbours took the item in training and are not the user, history items
#     are the user's, attributes belong to the item); so does the user evidence of the prompt
#     (neighbours took one of the user's items, items are the user's, attributes are held by the
#     user's items with the right counts, the modality is one some of them have); the stored
#     evidence and user evidence equal the JSON's;
#   - the explanations (items, rationales, evidence; its weights within 1e-5) and per-user metrics
#     are the same at 1, 2 and 3 ranks; the template shares respect the per-user cap;
#   - free-form rationales (explain.rationale = free) at 1 and 3 ranks: every piece is a connective
#     or an evidence value of its line, every catalogue name in the text lies inside an evidence
#     value, the same at 1 and 3 ranks;
#   - the per-candidate layout (explain.user_tokens = 0, explain.item_tokens = explain.tokens)
#     stays reachable: trained at 1 and 3 ranks to the same parameters, explained without user
#     evidence, its deletion control masking explain.tokens random prompt tokens;
#   - a prompt.h5 without llm_explain and an unknown user id are refused with messages naming them.
set -u
PY=/usr/bin/python3; B=$DM_BUILD/dynmm
W=$DM_TMP/explain; rm -rf $W; mkdir -p $W
TPL='Because you bought {item}, this fits your taste.|It is a {brand} {category}, like {n} of your items.|A {category} from {brand}.'
small=(--set synth.users=400 --set synth.items=200 --set synth.clusters=6
       --set sasrec.epochs=3 --set sasrec.eval_every=3 --set sasrec.hidden=16 --set sasrec.maxlen=20 --set cf.models=[sasrec]
       --set align.epochs=3 --set align.hidden=32 --set align.dim=16 --set align.batch=64
       --set lm.steps=40 --set lm.log_every=20 --set lm.warmup=10 --set lm.vocab=600 --set lm.layers=2 --set lm.width=32
       --set lm.heads=2 --set lm.seq_len=48 --set lm.batch=8
       --set prompt.user_tokens=4 --set prompt.history=3 --set prompt.title_tokens=6 --set prompt.hidden=16
       --set prompt.train_users=48 --set prompt.epochs=2 --set prompt.batch=8 --set prompt.eval_users=40
       --set prompt.protocols=[uni19] --set prompt.latency_tokens=[4] --set prompt.latency_batch=2 --set prompt.negatives=3
       --set explain.tokens=4 --set explain.hidden=16 --set explain.width=8 --set explain.k_users=3 --set explain.k_items=3
       --set explain.k_attrs=3 --set explain.users=12 --set explain.top_k=3 --set explain.candidates=8
       --set explain.random_masks=2 --set "explain.templates=$TPL" --set eval.splits=[test]
       --set explain.latency_per_candidate=4)
$DM_MPIRUN -n 2 $B run "${small[@]}" --set run.dir=$W/base --set 'run.stages=[synth,train-cf,align,lm,prompt]' < /dev/null > $W/base.log 2>&1 \
  || { cat $W/base.log; exit 1; }
grep -E "llm_explain epoch|latency|uni19" $W/base.log
# the projectors and the evidence encoder after N steps: the same parameters at 1, 2 and 3 ranks
for np in 1 3; do
  mkdir -p $W/p$np; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/base/lm.h5 $W/p$np/
  $DM_MPIRUN -n $np $B prompt "${small[@]}" --set run.dir=$W/p$np < /dev/null > $W/p$np.log 2>&1 || { cat $W/p$np.log; exit 1; }
done
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
sys.path.insert(0, "tests/reference")
from tolerance import adam_tol
W = sys.argv[1]
ref = h5py.File(W + "/base/prompt.h5", "r")
for np_ in (1, 3):
    f = h5py.File("%s/p%d/prompt.h5" % (W, np_), "r")
    for m in ("llm", "llm_explain"):
        a, b = ref["prompt/%s/weights" % m][...], f["prompt/%s/weights" % m][...]
        d = np.abs(a - b).max()
        tol, lr = adam_tol(ref, "prompt.lr")
        assert a.shape == b.shape and d < tol, "%s: parameters at %d ranks differ from 2 ranks by %g > lr/20 = %g" % (m, np_, d, tol)
        print("%s at %d ranks: parameters within %.2g of lr of 2 ranks'" % (m, np_, d / lr))
        assert np.abs(a).max() > 0
print("prompt: llm and llm_explain parameters after %d steps the same at 1, 2 and 3 ranks" % (2 * 6))
PYEOF
# checkpoints: a run interrupted by SIGUSR1 mid-training resumes to the parameters of an uninterrupted run
long=(--set prompt.epochs=80 --set 'prompt.models=["llm"]' --set 'prompt.protocols=["uni19"]')
for d in ia ib; do mkdir -p $W/$d; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/base/lm.h5 $W/$d/; done
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ia < /dev/null > $W/ia.log 2>&1 || { cat $W/ia.log; exit 1; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ib < /dev/null > $W/ib.log 2>&1 &
pid=$!
for i in $(seq 400); do grep -q "llm epoch 2 " $W/ib.log 2>/dev/null && break; sleep 0.05; done
kill -USR1 $pid 2>/dev/null
if wait $pid; then echo "FAIL: the prompt run finished before the signal reached it (log: $W/ib.log)"; exit 1; fi
grep -q "interrupted by a signal" $W/ib.log && [ -s $W/ib/ckpt_prompt_llm.h5 ] || { cat $W/ib.log; echo "FAIL: no checkpoint on SIGUSR1"; exit 1; }
$DM_MPIRUN -n 2 $B prompt "${small[@]}" "${long[@]}" --set run.dir=$W/ib < /dev/null > $W/ib2.log 2>&1 || { cat $W/ib2.log; exit 1; }
grep -q "resuming from" $W/ib2.log || { cat $W/ib2.log; echo "FAIL: the rerun did not resume"; exit 1; }
for d in ia ib; do [ ! -e $W/$d/ckpt_prompt_llm.h5 ] || { echo "FAIL: $d: ckpt_prompt_llm.h5 left after the stage finished"; exit 1; }; done
$PY - $W <<'PYEOF' || exit 1
import sys, h5py, numpy as np
W = sys.argv[1]
a = h5py.File(W + "/ia/prompt.h5", "r")["prompt/llm/weights"][...]
b = h5py.File(W + "/ib/prompt.h5", "r")["prompt/llm/weights"][...]
d = np.abs(a - b).max()
assert d < 1e-6, "resumed parameters differ from the uninterrupted run by %g" % d
# the resumed epoch's losses include the steps before the checkpoint (its seconds are wall times)
ca = h5py.File(W + "/ia/prompt.h5", "r")["prompt/llm/curve"][...]
cb = h5py.File(W + "/ib/prompt.h5", "r")["prompt/llm/curve"][...]
dc = np.abs(ca[:, :5] - cb[:, :5]).max()
assert dc < 1e-6, "resumed training curve differs from the uninterrupted run by %g" % dc
print("prompt: interrupted at %s, resumed to the uninterrupted parameters (max diff %g)" % (
    open(W + "/ib.log").read().split("interrupted by a signal at ")[1].split(";")[0], d))
PYEOF
for np in 1 2 3; do
  mkdir -p $W/r$np; cp $W/base/*.h5 $W/r$np/; cp -r $W/base/lm $W/r$np/ 2>/dev/null
  $DM_MPIRUN -n $np $B explain "${small[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; exit 1; }
done
cat $W/r3.log
$PY - $W "$TPL" <<'PYEOF' || exit 1
import sys, json, re, h5py, numpy as np
W, tpl = sys.argv[1], sys.argv[2]
# ---- prompt.h5: both models on the same users ----
p = h5py.File(W + "/base/prompt.h5", "r")
a, b = p["test/uni19/llm"][...], p["test/uni19/llm_explain"][...]
ma, mb = ~np.isnan(a[:, 0]), ~np.isnan(b[:, 0])
assert ma.sum() == 40 and (ma == mb).all(), "llm and llm_explain are not scored on the same 40 users"
assert p["prompt/llm_explain/curve"].shape == (2, 6) and p["prompt/llm/curve"].shape == (2, 6)
c = p["prompt/llm_explain/curve"][...]
assert (c[:, 3] > 0).all() and (c[:, 4] > 0).all(), "llm_explain trained without faithfulness/explanation terms: %s" % c
assert (p["prompt/llm/curve"][:, 3:5] == 0).all()
lat = p["prompt/latency"]
cols = lat.attrs["columns"]
cols = cols.decode() if isinstance(cols, bytes) else cols
assert lat.shape == (1, 7) and (lat[0, 1:] > 0).all(), "latency %s" % lat[...]
assert "llm_explain@per_candidate median" in cols, cols
assert p["prompt/llm_explain"].attrs["evidence_tokens"] == 0 and p["prompt/llm_explain"].attrs["user_evidence_tokens"] == 4
# ---- the data ----
d = h5py.File(W + "/base/dataset.h5", "r")
def strtab(g):
    ch, off = d[g + "/chars"][...].tobytes(), d[g + "/offsets"][...]
    return [ch[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
uid, iid, titles = strtab("users/id"), strtab("items/id"), strtab("items/title")
aname, akind = strtab("attrs/name"), d["attrs/kind"][...]
uoff, item, split = d["users/offsets"][...], d["inter/item"][...], d["split/loo"][...]
aoff, attr = d["items/attr_offsets"][...], d["items/attr"][...]
U = {s: k for k, s in enumerate(uid)}; I = {s: k for k, s in enumerate(iid)}
took = {}
for u in range(len(uid)):
    for j in range(uoff[u], uoff[u + 1]):
        if split[j] == 0: took.setdefault(int(item[j]), set()).add(u)
kinds = {"brand": 0, "category": 1, "price": 2}
nmodal = [0]; nuser = [0]
parts = [re.split(r"(\{[a-z]+\})", t) for t in tpl.split("|")]
def check(line):
    u, i = U[line["user"]], I[line["item"]]
    hist = set(int(item[j]) for j in range(uoff[u], uoff[u + 1]) if split[j] < 2)
    ev = line["evidence"]
    for e in ev:
        if e["kind"] == "user":
            v = U[e["id"]]; assert v != u and v in took.get(i, ()), "neighbour %s did not take %s in training" % (e["id"], line["item"])
        elif e["kind"] == "item":
            j = I[e["id"]]; assert j != i and j in hist, "evidence item %s is not in the user's history" % e["id"]
            assert e["title"] == titles[j]
        elif e["kind"] == "attr":
            a = aname.index(e["name"]) if aname.count(e["name"]) == 1 else None
            ok = [k for k in attr[aoff[i]:aoff[i + 1]] if aname[k] == e["name"] and akind[k] == kinds.get(e["type"], 3)]
            assert ok, "attribute %s is not an attribute of item %s" % (e["name"], line["item"])
            n = sum(1 for j in hist if j != i and ok[0] in attr[aoff[j]:aoff[j + 1]])
            assert e["count"] == n, "attribute %s: count %d, the user's history has %d" % (e["name"], e["count"], n)
        elif e["kind"] == "modal":
            assert e["modality"] in ("cf", "text", "visual", "audio"), e
            assert d["modal"].get(e["modality"]) is None or d["modal/%s/present" % e["modality"]][i], \
                "modality %s is not present for item %s" % (e["modality"], line["item"])
    assert sum(e["kind"] == "modal" for e in ev) <= 1
    nmodal[0] += sum(e["kind"] == "modal" for e in ev)
    # the user evidence: about the user alone, checked against the history the prompt is built from
    tr = hist
    ue = line["user_evidence"]
    assert [e["kind"] for e in ue] == sorted((e["kind"] for e in ue), key=["user", "item", "attr", "modal"].index)
    for e in ue:
        if e["kind"] == "user":
            v = U[e["id"]]; assert v != u and any(v in took.get(j, ()) for j in tr), \
                "user evidence: %s took none of %s's items" % (e["id"], line["user"])
        elif e["kind"] == "item":
            assert I[e["id"]] in tr and e["title"] == titles[I[e["id"]]], "user evidence: item %s is not the user's" % e["id"]
        elif e["kind"] == "attr":
            ok = [k for k in range(len(aname)) if aname[k] == e["name"] and akind[k] == kinds.get(e["type"], 3)]
            n = max(sum(1 for j in tr if k in attr[aoff[j]:aoff[j + 1]]) for k in ok) if ok else 0
            assert n > 0 and e["count"] == n, "user evidence: attribute %s held by %d of the user's items, count %d" % (e["name"], n, e["count"])
        else:
            assert d["modal"].get(e["modality"]) is None or any(d["modal/%s/present" % e["modality"]][j] for j in tr)
    nuser[0] += len(ue)
    text = line["rationale"]
    if line["template"] < 0:
        assert text == ""; return 0
    pt = parts[line["template"]]
    rx = "".join("(.+?)" if re.fullmatch(r"\{[a-z]+\}", s) else re.escape(s) for s in pt)
    m = re.fullmatch(rx, text)
    assert m, "rationale %r does not follow template %d" % (text, line["template"])
    slots = [s for s in pt if re.fullmatch(r"\{[a-z]+\}", s)]
    last_attr = None
    for s, v in zip(slots, m.groups()):
        if s == "{item}":
            assert v in [e["title"] for e in ev if e["kind"] == "item"], "item %r is not in the evidence" % v
        elif s == "{n}":
            assert last_attr is not None and int(v) == last_attr["count"] and int(v) > 0, "count %r is not the evidence's" % v
        else:
            cand = [e for e in ev if e["kind"] == "attr" and e["type"] == s[1:-1] and e["name"] == v]
            assert cand, "%s value %r is not in the evidence" % (s, v)
            last_attr = cand[0]
    return len(slots)
lines = {}
for np_ in (1, 2, 3):
    L = [json.loads(x) for x in open("%s/r%d/explain.jsonl" % (W, np_))]
    assert len(L) == 12 * 3, "%d explanations, expected 36" % len(L)
    lines[np_] = sorted(L, key=lambda x: (x["user"], x["rank"]))
nslots = sum(check(x) for x in lines[1])
assert nslots > 0, "no rationale filled a slot"
assert nuser[0] >= 36 * 6, "%d user evidence elements in 36 explanations" % nuser[0]
assert nmodal[0] == len(lines[1]), "%d of %d explanations name the agreeing modality" % (nmodal[0], len(lines[1]))
for np_ in (2, 3):
    for x, y in zip(lines[1], lines[np_]):
        # the same items, rationales and evidence; the evidence weights (float sums, printed to 6
        # digits) within 1e-5: a weight on a printing boundary may show its last bits
        strip = lambda ev: [{k: v for k, v in e.items() if k != "weight"} for e in ev]
        assert x["item"] == y["item"] and x["rationale"] == y["rationale"] and strip(x["evidence"]) == strip(y["evidence"]) \
            and strip(x["user_evidence"]) == strip(y["user_evidence"]), "explanations differ between 1 and %d ranks: %s vs %s" % (np_, x, y)
        dw = max(abs(e["weight"] - f["weight"]) for e, f in zip(x["evidence"], y["evidence"]))
        assert dw <= 1e-5, "evidence weights differ between 1 and %d ranks by %g: %s vs %s" % (np_, dw, x, y)
        assert abs(x["score"] - y["score"]) < 1e-4
# ---- explain.h5: metrics per user, identical across ranks; stored evidence = the JSON's ----
e1 = h5py.File(W + "/r1/explain.h5", "r")
r1 = e1["explain/users"][...]
for np_ in (2, 3):
    r = h5py.File("%s/r%d/explain.h5" % (W, np_), "r")["explain/users"][...]
    assert np.allclose(r1, r, atol=1e-4, equal_nan=True), "per-user explanation metrics differ at %d ranks" % np_
rows = ~np.isnan(r1[:, 0])
assert rows.sum() == 12
cols = e1["explain/users"].attrs["columns"]
cols = (cols.decode() if isinstance(cols, bytes) else cols).split(", ")
m = dict(zip(cols, np.nanmean(r1[rows], axis=0)))
assert 0 <= m["fmr"] <= 1 and 0 <= m["evidence_precision"] <= 1 and np.isfinite(m["drop"])
items, kind, ids = e1["explain/items"][...], e1["explain/evidence/kind"][...], e1["explain/evidence/id"][...]
for k, x in enumerate(sorted(lines[1], key=lambda x: (U[x["user"]], x["rank"]))):
    row = [r for r in range(len(items)) if items[r, 0] == U[x["user"]] and items[r, 2] == x["rank"]]
    assert len(row) == 1
    n = int((kind[row[0]] >= 0).sum())
    assert n == len(x["evidence"]), "stored evidence has %d elements, the JSON %d" % (n, len(x["evidence"]))
# the stored user evidence: one row per explained user, in the order of /explain/items' users
ukind, uid_ = e1["explain/user_evidence/kind"][...], e1["explain/user_evidence/id"][...]
users = list(dict.fromkeys(int(r[0]) for r in items))
assert ukind.shape[0] == len(users) == 12
for q, u in enumerate(users):
    x = next(y for y in lines[1] if U[y["user"]] == u)
    ue = x["user_evidence"]
    assert int((ukind[q] >= 0).sum()) == len(ue), "stored user evidence of user %d: %d elements, the JSON %d" % (u, (ukind[q] >= 0).sum(), len(ue))
    ids = [U[e["id"]] if e["kind"] == "user" else I[e["id"]] if e["kind"] == "item" else None for e in ue]
    assert all(i is None or i == int(uid_[q, k]) for k, i in enumerate(ids)), "stored user evidence ids differ from the JSON's"
print("explain: 36 explanations, %d slots checked against the evidence and the data, %d user evidence elements against the "
      "history; the same at 1, 2 and 3 ranks; FMR %.2f, precision %.2f, drop %.3f vs random %.3f" % (nslots, nuser[0], m["fmr"],
      m["evidence_precision"], m["drop"], m["drop_random"]))
PYEOF
# free-form rationales (explain.rationale = free) at 1 and 3 ranks: every piece of the text is a
# connective of explain.free_words or an evidence value of the line, every catalogue title or
# attribute name in the text lies inside an evidence value, the same at 1 and 3 ranks
FW='Recommended You It A because you bought liked and people who them also chose it is a like of your items shoppers with taste this from brand before . , ;'
for np in 1 3; do
  mkdir -p $W/f$np; cp $W/base/*.h5 $W/f$np/
  $DM_MPIRUN -n $np $B explain "${small[@]}" --set run.dir=$W/f$np --set explain.rationale=free --set "explain.free_words=$FW" \
    --set explain.free_max_tokens=24 < /dev/null > $W/f$np.log 2>&1 || { cat $W/f$np.log; exit 1; }
done
grep "rationales" $W/f1.log
$PY - $W "$FW" <<'PYEOF' || exit 1
import sys, json, h5py
W, FW = sys.argv[1], sys.argv[2]
d = h5py.File(W + "/base/dataset.h5", "r")
def strtab(g):
    ch, off = d[g + "/chars"][...].tobytes(), d[g + "/offsets"][...]
    return [ch[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
titles, anames = strtab("items/title"), strtab("attrs/name")
catalogue = set(x for x in titles + anames if x)
lower = set(x.lower() for x in catalogue)
words = [w for w in FW.split() if w.lower() not in lower]
pieces_w = [w if w in ".,;" else " " + w for w in words]
L = {np_: sorted((json.loads(x) for x in open("%s/f%d/explain.jsonl" % (W, np_))), key=lambda x: (x["user"], x["rank"])) for np_ in (1, 3)}
assert len(L[1]) == 36 and [(x["item"], x["rationale"]) for x in L[1]] == [(x["item"], x["rationale"]) for x in L[3]], \
    "free-form rationales differ between 1 and 3 ranks"
written = nvals = 0
for x in L[1]:
    text = x["rationale"]
    if x["template"] == -1:
        assert text == "", x; continue
    assert x["template"] == -2, "free-form line with template %d" % x["template"]
    ev = x["evidence"]
    vals = [e["title"] for e in ev if e["kind"] == "item" and e["title"]] + \
           [e["name"] for e in ev if e["kind"] == "attr" and e["type"] in ("brand", "category", "price")]
    pieces = [(p, 0) for p in pieces_w] + [(" " + v, 1) for v in vals]
    t = " " + text if not text.startswith((".", ",", ";")) else text
    # a segmentation into connectives and evidence values (dynamic programming from the end)
    n = len(t); ok = [False] * (n + 1); ok[n] = True
    for i in range(n - 1, -1, -1):
        ok[i] = any(t.startswith(p, i) and ok[i + len(p)] for p, _ in pieces)
    assert ok[0], "rationale %r is not connectives and evidence values of its line" % text
    # every catalogue name in the text lies inside an occurrence of an evidence value
    spans = []
    for v in vals:
        i = text.find(v)
        while i >= 0:
            spans.append((i, i + len(v))); i = text.find(v, i + 1)
    for c in catalogue:
        i = text.find(c)
        while i >= 0:
            assert any(a <= i and i + len(c) <= b for a, b in spans), "%r names %r outside its evidence" % (text, c)
            i = text.find(c, i + 1)
    assert any(v in text for v in vals), "a free-form rationale without an evidence value: %r" % text
    written += 1; nvals += sum(v in text for v in set(vals))
items = h5py.File(W + "/f1/explain.h5", "r")["explain/items"][...]
assert set(items[:, 3]) <= {-2, -1}, set(items[:, 3])
assert written > 0
print("explain (free-form): %d of 36 rationales written, %d evidence values named, every catalogue name inside one; "
      "the same at 1 and 3 ranks; e.g. %r" % (written, nvals, next(x["rationale"] for x in L[1] if x["rationale"])))
PYEOF
# template shares: no template writes more than floor(0.5 x 3) = 1 of a user's 3 rationales
# unless no other qualifies (the log counts the items over the caps)
$PY - $W "$TPL" <<'PYEOF' || exit 1
import sys, json, collections
W = sys.argv[1]
L = [json.loads(x) for x in open(W + "/r1/explain.jsonl")]
by = collections.defaultdict(list)
for x in L: by[x["user"]].append(x["template"])
over = int(open(W + "/r1.log").read().split("over the caps")[0].rsplit(",", 1)[1].split()[0])
excess = sum(max(0, c - 1) for ts in by.values() for t, c in collections.Counter(ts).items() if t >= 0)
assert excess == over, "%d rationales beyond the per-user caps, the log says %d" % (excess, over)
shares = collections.Counter(x["template"] for x in L)
print("template shares over %d rationales: %s; %d beyond the caps (demanded)" % (len(L), dict(sorted(shares.items())), over))
PYEOF
# the per-candidate layout (every evidence token before every candidate, no user evidence tokens):
# trained at 1 and 3 ranks to the same parameters, explained with explain.tokens random tokens as
# the deletion control and no user evidence in the JSON lines
pcl=(--set explain.user_tokens=0 --set explain.item_tokens=4 --set 'prompt.models=["llm_explain"]' --set explain.users=4)
for np in 1 3; do
  mkdir -p $W/pc$np; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/base/lm.h5 $W/pc$np/
  $DM_MPIRUN -n $np $B prompt "${small[@]}" "${pcl[@]}" --set run.dir=$W/pc$np < /dev/null > $W/pc$np.log 2>&1 || { cat $W/pc$np.log; exit 1; }
done
$B explain "${small[@]}" "${pcl[@]}" --set run.dir=$W/pc1 < /dev/null > $W/pce.log 2>&1 || { cat $W/pce.log; exit 1; }
grep -q "masking 4 random prompt tokens" $W/pce.log || { cat $W/pce.log; echo "FAIL: the per-candidate layout's control is not explain.tokens random tokens"; exit 1; }
$PY - $W <<'PYEOF' || exit 1
import sys, json, h5py, numpy as np
W = sys.argv[1]
a = h5py.File(W + "/pc1/prompt.h5", "r")
b = h5py.File(W + "/pc3/prompt.h5", "r")
x, y = a["prompt/llm_explain/weights"][...], b["prompt/llm_explain/weights"][...]
assert x.shape == y.shape and np.abs(x - y).max() < 1e-4, "per-candidate layout: parameters differ between 1 and 3 ranks"
assert a["prompt/llm_explain"].attrs["evidence_tokens"] == 4 and a["prompt/llm_explain"].attrs["user_evidence_tokens"] == 0
assert x.size < h5py.File(W + "/base/prompt.h5", "r")["prompt/llm_explain/weights"].size, "no user evidence encoder expected"
L = [json.loads(l) for l in open(W + "/pc1/explain.jsonl")]
assert len(L) == 12 and all("user_evidence" not in l and l["evidence"] for l in L)
print("per-candidate layout: %d parameters the same at 1 and 3 ranks (max diff %.2g), 12 explanations without user evidence"
      % (x.size, np.abs(x - y).max()))
PYEOF
# a prompt.h5 without the llm_explain model
mkdir -p $W/noexp; cp $W/base/*.h5 $W/noexp/
$B prompt "${small[@]}" --set run.dir=$W/noexp --set prompt.models=[llm] --set prompt.epochs=0 < /dev/null > $W/noexp.log 2>&1 || { cat $W/noexp.log; exit 1; }
if $B explain "${small[@]}" --set run.dir=$W/noexp --set prompt.models=[llm] < /dev/null > $W/noexp2.log 2>&1; then echo "FAIL: explain ran without llm_explain"; exit 1; fi
grep -q "has no llm_explain model" $W/noexp2.log || { cat $W/noexp2.log; echo "FAIL: the error does not say what is missing"; exit 1; }
grep -m1 "error" $W/noexp2.log
if $DM_MPIRUN -n 2 $B explain "${small[@]}" --set run.dir=$W/r2 --set 'explain.user_ids=["nobody"]' < /dev/null > $W/bad.log 2>&1; then
  echo "FAIL: an unknown user id was accepted"; exit 1; fi
grep -q "explain.user_ids: user 'nobody' is not in the dataset" $W/bad.log || { cat $W/bad.log; echo "FAIL: the error does not name the user"; exit 1; }
grep -m1 "error" $W/bad.log
# JSON lines to stdout for given users, nothing else on stdout
u=$(head -1 $W/r1/explain.jsonl | $PY -c 'import sys, json; print(json.loads(sys.stdin.readline())["user"])')
$B explain "${small[@]}" --set run.dir=$W/r1 --set "explain.user_ids=[\"$u\"]" --set explain.output=- < /dev/null > $W/one.jsonl 2> $W/one.err \
  || { cat $W/one.err; exit 1; }
$PY -c "
import json, sys
L = [json.loads(x) for x in open('$W/one.jsonl')]
assert len(L) == 3 and all(x['user'] == '$u' for x in L), L
" || { cat $W/one.jsonl; echo "FAIL: stdout is not the user's JSON lines"; exit 1; }
echo ok
