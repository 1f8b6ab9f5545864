#!/usr/bin/env bash
# `dynmm export`, `dynmm info` on results files, and analysis/dynmm_results.py:
#  - a small run on TSV data whose ids are strings in no particular order (so a dense index is never
#    mistaken for an original id), under leave-one-out and the temporal split (users with several
#    or no held-out items), a streaming run (stream.h5's prequential means) and the LLM recommenders'
#    run (prompt.h5: latent_head and llm beside SASRec and the aligner, sampled and top-N protocols)
#  - every line of the export is checked against the HDF5 rows read here with h5py, independently
#    of the exporter and of the reader: the user's original id, the original ids of the user's
#    held-out items in that split (from dataset.h5's split, in stored order), the value bitwise (the
#    text reads back as the stored double), and exactly the non-NaN cells, no more
#  - --metrics and a .tsv --out; two ranks write the same bytes as one; --out - is the table alone
#  - analysis/dynmm_results.py: read_file (the HDF5 files) gives the same rows as read_export (the
#    table), and its means equal the 'mean' attribute eval stores; wide() pairs users across models
#  - `dynmm info` prints each entry's users and means (the stored 'mean' attribute, 4 decimals, itself the
#    mean of the rows) for results.h5 and prompt.h5 (LLM recommenders beside SASRec and the aligner)
#  - refused: a results file of another dataset (naming both), an unknown metric (listing the
#    file's), a file that holds no per-user metrics, a directory without results
set -u
B=$DM_BUILD/dynmm; PY=/usr/bin/python3; ROOT=$PWD
W=$DM_TMP/export; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }

# 70 users x 6..13 interactions over 45 items; ids are strings, users listed in shuffled order
$PY - "$W/inter.tsv" <<'EOF'
import random, sys
r = random.Random(7)
users = ["cust-%04d" % k for k in r.sample(range(10000), 70)]
items = ["SKU_%05d" % k for k in r.sample(range(100000), 45)]
lines = []
for k, u in enumerate(users):
    for j in range(r.randrange(6, 14)):
        lines.append("%s\t%s\t%d" % (u, r.choice(items), 1000 * j + k))
r.shuffle(lines)
open(sys.argv[1], "w").write("user\titem\ttime\n" + "\n".join(lines) + "\n")
EOF
data=(--set data.format=tsv --set data.inter="$W/inter.tsv" --set data.user_col=user --set data.item_col=item --set data.time_col=time
      --set data.kcore_user=0 --set data.kcore_item=0)
small=(--set 'run.stages=[ingest,train-cf,eval]' --set 'cf.models=[pop,ease]' --set 'eval.models=[pop,ease]'
       --set 'eval.splits=[valid,test]' --set 'eval.protocols=[full,uni5]')
for split in loo temporal; do
  $DM_MPIRUN -n 2 $B run "${data[@]}" "${small[@]}" --set split.protocol=$split --set run.dir="$W/$split" < /dev/null > "$W/$split.log" 2>&1 ||
    { tail -20 "$W/$split.log"; fail "the $split run"; }
done
$DM_MPIRUN -n 2 $B run --set run.dir="$W/stream" --set 'run.stages=[synth,train-cf,align,stream]' --set synth.users=200 --set synth.items=100 \
  --set split.protocol=stream --set sasrec.epochs=1 --set sasrec.eval_every=1 --set sasrec.hidden=16 --set 'cf.models=[sasrec]' \
  --set align.epochs=1 --set align.hidden=16 --set align.dim=8 --set window.count=3 --set 'stream.variants=[static,adapter]' \
  --set adapter.steps=5 --set adapter.hidden=16 < /dev/null > "$W/stream.log" 2>&1 || { tail -20 "$W/stream.log"; fail "the stream run"; }
# prompt.h5: the LLM recommenders' rows (an untrained latent_head and llm) beside SASRec's and the aligner's
$DM_MPIRUN -n 2 $B run --set run.dir="$W/prompt" --set 'run.stages=[synth,train-cf,align,lm,prompt]' --set synth.users=120 \
  --set synth.items=60 --set sasrec.epochs=1 --set sasrec.eval_every=1 --set sasrec.hidden=16 --set sasrec.maxlen=12 --set 'cf.models=[sasrec]' \
  --set align.epochs=1 --set align.hidden=16 --set align.dim=8 --set lm.steps=10 --set lm.warmup=2 --set lm.vocab=400 \
  --set lm.layers=1 --set lm.width=32 --set lm.heads=2 --set lm.seq_len=32 --set lm.batch=4 --set prompt.user_tokens=2 \
  --set prompt.history=3 --set prompt.title_tokens=6 --set prompt.hidden=16 --set 'prompt.models=[latent_head,llm]' \
  --set prompt.epochs=0 --set prompt.head_epochs=0 --set 'prompt.protocols=[uni19,top20]' --set prompt.eval_users=40 \
  --set 'prompt.latency_tokens=[]' < /dev/null > "$W/prompt.log" 2>&1 || { tail -20 "$W/prompt.log"; fail "the prompt run"; }

# every run exported beside its files; the loo run also to one TSV with two metrics, at 1 and 2 ranks
for r in loo temporal stream prompt; do
  $B export "$W/$r" > "$W/export_$r.log" 2>&1 || { cat "$W/export_$r.log"; fail "dynmm export $W/$r"; }
done
[ -s "$W/loo/results.csv" ] && [ -s "$W/temporal/results.csv" ] && [ -s "$W/stream/stream.csv" ] && [ -s "$W/prompt/prompt.csv" ] || fail "export wrote no table beside the files"
grep -q "results.h5: [0-9]* lines from 8 split/protocol/model entries -> $W/loo/results.csv" "$W/export_loo.log" ||
  { cat "$W/export_loo.log"; fail "export does not say what it wrote"; }
$B export "$W/loo/results.h5" --metrics ndcg@10,mrr --out "$W/two.tsv" > /dev/null || fail "export --metrics --out .tsv"
$DM_MPIRUN -n 2 $B export "$W/loo/results.h5" --metrics ndcg@10,mrr --out "$W/two_np2.tsv" > /dev/null 2>&1 || fail "export at 2 ranks"
cmp -s "$W/two.tsv" "$W/two_np2.tsv" || fail "2 ranks wrote another table than 1"
$B export "$W/loo" --out - > "$W/stdout.csv" || fail "export --out -"
cmp -s "$W/stdout.csv" "$W/loo/results.csv" || fail "--out - is not the table alone"

# the export against the HDF5 rows, read here with h5py
$PY - "$W" <<'EOF' || exit 1
import csv, math, sys, h5py, numpy as np
W = sys.argv[1]
def strings(g):
    c = g["chars"][...].tobytes(); o = g["offsets"][...]
    return [c[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]
def check(run, source, table, sep=",", metrics=None, split_name=None):
    h = h5py.File("%s/%s/%s.h5" % (W, run, source), "r"); d = h5py.File("%s/%s/dataset.h5" % (W, run), "r")
    users, items, cols = strings(d["users/id"]), strings(d["items/id"]), strings(h["columns"])
    off, item = d["users/offsets"][...], d["inter/item"][...]
    roles = d["split/" + split_name][...] if split_name else None
    want = {}
    def visit(name, obj):
        p = name.split("/")
        if isinstance(obj, h5py.Dataset) and len(p) == 3 and p[0] in ("valid", "test", "prequential"):
            x = obj[...]
            assert x.shape == (len(users), len(cols)), (name, x.shape)
            for u in range(len(users)):
                held = ""
                if p[0] != "prequential":
                    sl = slice(off[u], off[u + 1]); role = 1 if p[0] == "valid" else 2
                    held = " ".join(items[i] for i in item[sl][roles[sl] == role])
                for j, c in enumerate(cols):
                    if (metrics is None or c in metrics) and not math.isnan(x[u, j]):
                        want[(p[2], p[0], p[1], users[u], c)] = (held, x[u, j])
    h.visititems(visit)
    got = {}
    with open(table, newline="") as f:
        r = csv.reader(f, delimiter=sep)
        assert next(r) == ["run", "source", "model", "split", "protocol", "user", "items", "metric", "value"], table
        for row in r:
            run_, src, model, split, proto, user, held, metric, value = row
            assert run_ == "%s/%s" % (W, run) and src == source, row
            key = (model, split, proto, user, metric)
            assert key not in got, ("twice", key)
            got[key] = (held, float(value))
    assert set(got) == set(want), ("lines missing", sorted(set(want) - set(got))[:3], "extra", sorted(set(got) - set(want))[:3])
    for k, (held, v) in want.items():
        assert got[k][0] == held, ("held-out items", k, got[k][0], held)
        assert got[k][1] == v, ("value not bitwise", k, got[k][1], v)
    return len(want), users
n, users = check("loo", "results", W + "/loo/results.csv", split_name="loo")
assert len(users) == 70 and all(u.startswith("cust-") for u in users), ("original ids expected", users[:5])
with open(W + "/loo/results.csv") as f:
    rows = list(csv.DictReader(f))
assert all(len(r["items"].split()) == 1 for r in rows), "leave-one-out: one held-out item per user"
assert {r["model"] for r in rows} == {"pop", "ease"} and {r["protocol"] for r in rows} == {"full", "uni5"}
n2, _ = check("loo", "results", W + "/two.tsv", sep="\t", metrics={"ndcg@10", "mrr"}, split_name="loo")
n3, _ = check("temporal", "results", W + "/temporal/results.csv", split_name="temporal")
with open(W + "/temporal/results.csv") as f:
    multi = max(len(r["items"].split()) for r in csv.DictReader(f))
assert multi > 1, "temporal split: expected users with several held-out items"
n4, _ = check("stream", "stream", W + "/stream/stream.csv")
n5, _ = check("prompt", "prompt", W + "/prompt/prompt.csv", split_name="loo")
with open(W + "/prompt/prompt.csv") as f:
    rows = list(csv.DictReader(f))
got = {(r["model"], r["split"], r["protocol"]) for r in rows}
want = {(m, s, p) for m in ("latent_head", "llm", "align", "sasrec") for s in ("valid", "test") for p in ("uni19", "top20")}
assert got == want, ("prompt.h5 entries exported", sorted(got ^ want))
print("ok: every line of the export is the HDF5 cell with the original ids: loo %d lines (%d in the 2-metric TSV), temporal %d "
      "(up to %d held-out items per user), stream %d, prompt %d" % (n, n2, n3, multi, n4, n5))
EOF

# the reader: the files and the table give the same rows; its means are eval's
PYTHONPATH=$ROOT/analysis $PY - "$W" <<'EOF' || exit 1
import sys, h5py
import dynmm_results as dr
W = sys.argv[1]
for run, src in (("loo", "results"), ("temporal", "results"), ("stream", "stream"), ("prompt", "prompt")):
    a = dr.read_file("%s/%s/%s.h5" % (W, run, src))
    b = dr.read_export("%s/%s/%s.csv" % (W, run, src))
    key = lambda r: tuple(r[k] for k in dr.COLUMNS)
    assert sorted(map(key, a)) == sorted(map(key, b)), "%s: read_file and read_export differ" % run
assert dr.read_run(W + "/loo") and len(dr.read_run(W + "/loo")) == len(dr.read_export(W + "/loo/results.csv"))
rows = dr.read_export(W + "/loo/results.csv")
h = h5py.File(W + "/loo/results.h5", "r")
cols = [c.decode() for c in [h["columns/chars"][...].tobytes()[a:b] for a, b in zip(h["columns/offsets"][:-1], h["columns/offsets"][1:])]]
worst = 0.0
for split in ("valid", "test"):
    for proto in ("full", "uni5"):
        for model in ("pop", "ease"):
            mean = h["%s/%s/%s" % (split, proto, model)].attrs["mean"]
            for j, c in enumerate(cols):
                m = dr.mean(rows, model=model, split=split, protocol=proto, metric=c)
                worst = max(worst, abs(m - mean[j]))
assert worst < 1e-12, "reader means differ from eval's by %g" % worst
t = dr.wide(rows, split="test", protocol="full", metric="ndcg@10")
assert set(t) == {"pop", "ease"} and set(t["pop"]) == set(t["ease"]) and len(t["pop"]) == int(h["test/full/pop"].attrs["users"])
print("ok: reader rows from the HDF5 files = rows from the export; means within %.1e of eval's; %d paired users" % (worst, len(t["pop"])))
EOF

# dynmm info: users and means per entry, as eval (and the prompt stage) stored them
for f in loo/results prompt/prompt; do
  $B info "$W/$f.h5" > "$W/info.log" 2>&1 || { cat "$W/info.log"; fail "dynmm info $f.h5"; }
  $PY - "$W/$f.h5" "$W/info.log" <<'EOF' || exit 1
import sys, h5py, numpy as np
h = h5py.File(sys.argv[1], "r"); lines = open(sys.argv[2]).read().split("\n")
c = h["columns/chars"][...].tobytes(); o = h["columns/offsets"][...]
cols = [c[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]
entries = []
h.visititems(lambda name, obj: entries.append(name) if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("valid", "test") else None)
assert len(entries) >= 8, entries
for e in entries:
    a = h[e].attrs
    x = h[e][...]; ok = ~np.isnan(x).all(axis=1)
    assert ok.sum() == a["users"] and np.abs(np.nanmean(x[ok], axis=0) - a["mean"]).max() < 1e-12, e + ": stored mean is not the rows'"
    want = "%s %d %.4f %.4f %.4f" % (e.replace("/", " "), a["users"], a["mean"][cols.index("hit@10")],
                                      a["mean"][cols.index("ndcg@10")], a["mean"][cols.index("mrr")])
    assert any(" ".join(l.split()) == want for l in lines), "info lacks: " + want
print("ok: dynmm info on %s shows users, Hit@10, NDCG@10 and MRR of the %d entries" % (sys.argv[1].split("/")[-1], len(entries)))
EOF
done
$B info "$W/stream/stream.h5" | grep -q "prequential full-drifting  *adapter" || fail "info on stream.h5: no prequential rows"

# refused inputs
expect_err() { # message, args...
  local want=$1; shift
  $B "$@" > "$W/err.log" 2>&1 && { cat "$W/err.log"; fail "accepted: dynmm $*"; }
  grep -qF -- "$want" "$W/err.log" || { cat "$W/err.log"; fail "dynmm $*: expected '$want'"; }
}
expect_err "was made from another dataset" export "$W/loo/results.h5" --dataset "$W/stream/dataset.h5" --out "$W/x.csv"
expect_err "has no metric 'ndcg@11'" export "$W/loo/results.h5" --metrics ndcg@11 --out "$W/x.csv"
grep -q "its metrics: hit@1" "$W/err.log" || fail "an unknown metric does not list the file's"
expect_err "not a file of per-user metrics" export "$W/loo/cf.h5" --out "$W/x.csv"
expect_err "holds none of results.h5, prompt.h5, stream.h5" export "$W"
[ ! -e "$W/x.csv" ] && [ ! -e "$W/x.csv.part" ] || fail "a refused export left a file behind"
echo ok
