#!/usr/bin/env bash
# Side information that reaches the aligner: an S3-Rec dataset (one user per line, items' attributes
# in *_item2attributes.json, no titles) and a RecBole one (.item with token, token_seq and float
# columns) give the aligner a text modality made from the attributes (lsa.fields); with the
# attributes left out of lsa.fields the log says so once and the text modality is absent. 2 ranks.
set -u
dir=$DM_TMP/attributes; rm -rf "$dir"; mkdir -p "$dir"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
small=(--set sasrec.epochs=1 --set sasrec.eval_every=1 --set sasrec.hidden=16 --set align.epochs=1 --set align.dim=8
       --set align.hidden=16 --set align.modalities=cf,text --set lsa.dim=4 --set lsa.max_df=0.9)
run() { # name, --set arguments...: ingest, train-cf, align at 2 ranks into $dir/<name>
  local name=$1; shift
  timeout 600 $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" run configs/quickstart.cfg --set run.dir="$dir/$name" \
    --set run.stages=ingest,train-cf,align "${small[@]}" "$@" > "$dir/$name.log" 2>&1 < /dev/null \
    || { fail "run $name: $(grep -m1 'error:' "$dir/$name.log")"; return 1; }
}
present() { # run name: items with a text row in align.h5
  /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); p="/align/inputs/text/present"; print(int(f[p][()].sum()) if p in f else 0)' "$dir/$1/align.h5"
}

# S3-Rec: 80 users over 40 items in 4 groups; each item has its group's attribute ids and one of its own
/usr/bin/python3 - "$dir" <<'EOF'
import json, random, sys
d = sys.argv[1]
r = random.Random(3)
with open(d + "/s3.txt", "w") as f:
    for u in range(1, 81):
        g = u % 4
        items = [str(1 + g * 10 + r.randrange(10)) for _ in range(8)]
        f.write(str(u) + " " + " ".join(items) + "\n")
attrs = {str(i): [100 + (i - 1) // 10, 200 + (i - 1) // 10, 300 + i % 3] for i in range(1, 41)}
json.dump(attrs, open(d + "/s3_item2attributes.json", "w"))
# RecBole: the same interactions, items with a class (token_seq), a year (float) and a studio (token)
with open(d + "/rb.inter", "w") as f:
    f.write("user_id:token\titem_id:token\ttimestamp:float\n")
    t = 0
    for line in open(d + "/s3.txt"):
        u, *items = line.split()
        for i in items:
            t += 1
            f.write("%s\t%s\t%d\n" % (u, i, t))
with open(d + "/rb.item", "w") as f:
    f.write("item_id:token\tclass:token_seq\trelease_year:float\tstudio:token\n")
    for i in range(1, 41):
        g = (i - 1) // 10
        f.write("%d\t%s\t%d\tstudio%d\n" % (i, ["Drama Crime", "Comedy", "Horror Thriller", "Western"][g], 1950 + 2 * i, g))
EOF

run s3 --set data.format=sasrec --set data.inter="$dir/s3.txt" --set data.meta="$dir/s3_item2attributes.json" && {
  grep -q 'text: LSA rank' "$dir/s3.log" || fail "S3-Rec attributes gave no LSA text features: $(grep 'text:' "$dir/s3.log")"
  n=$(present s3); [ "$n" = 40 ] || fail "S3-Rec: $n of 40 items have text features"
}
run s3_title --set data.format=sasrec --set data.inter="$dir/s3.txt" --set data.meta="$dir/s3_item2attributes.json" \
    --set 'lsa.fields=[title,brand,category]' && {
  n=$(grep -c 'other attributes of the items not used (lsa.fields)' "$dir/s3_title.log")
  [ "$n" = 1 ] || fail "expected one log line on the unused attributes, found $n"
  grep -q 'no text modality' "$dir/s3_title.log" || fail "without attributes the S3-Rec items have no text: not said"
  n=$(present s3_title); [ "$n" = 0 ] || fail "S3-Rec without attributes: $n items have text features"
}
run rb --set data.format=recbole --set data.inter="$dir/rb.inter" --set data.meta="$dir/rb.item" --set lsa.numeric_bins=4 && {
  grep -q 'text: LSA rank' "$dir/rb.log" || fail "RecBole fields gave no LSA text features: $(grep 'text:' "$dir/rb.log")"
  n=$(present rb); [ "$n" = 40 ] || fail "RecBole: $n of 40 items have text features"
  "$DM_BUILD/dynmm" info "$dir/rb/dataset.h5" > "$dir/rb.info" 2>&1
  grep -Eq 'attributes [1-9]' "$dir/rb.info" || fail "RecBole .item fields were not imported: $(grep -m1 attributes "$dir/rb.info")"
}
# an unknown field is refused, naming the key
if timeout 300 $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" run configs/quickstart.cfg --set run.dir="$dir/bad" --set run.stages=ingest,train-cf,align \
    "${small[@]}" --set data.format=sasrec --set data.inter="$dir/s3.txt" --set 'lsa.fields=[title,colour]' > "$dir/bad.log" 2>&1 < /dev/null; then
  fail "lsa.fields with an unknown field was accepted"
else
  grep -q "lsa.fields: unknown field 'colour'" "$dir/bad.log" || fail "unexpected message: $(grep -m1 'error' "$dir/bad.log")"
fi
[ $fails = 0 ] && echo "ok: attributes reach the aligner's text features (S3-Rec, RecBole), or the log says why not"
exit $((fails > 0))
