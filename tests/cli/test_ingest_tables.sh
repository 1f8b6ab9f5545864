#!/usr/bin/env bash
# The MMRec-style layout of `data.format = "tsv"` (Last.fm-2k's): the given split from a column
# (data.split_col), item tables with a header keyed by original ids (data.meta: titles,
# data.tags: comma-separated tags), and the original ids from a second interaction file with the
# same rows (data.item_map). On generated files at 1, 2 and 3 ranks:
#   - the split counts and every (user, item, split) triple, each item's title and tags against a
#     Python reading of the files through the same id map (quotes and tabs in a CSV title, an item
#     only in the tags table, an item in neither, table rows naming items without interactions);
#   - 2 and 3 ranks write a dataset identical to 1 rank's;
#   - bad input is refused naming the file, line or key: a split value other than 0/1/2, a map with
#     another row count, an original id naming two items, an item with two original ids, an item
#     listed twice in a table, a missing column, data.meta_cols of one entry, data.tags with another
#     format, and data.split_col with data.test.
set -u
dir=$DM_TMP/ingest_tables; rm -rf "$dir"; mkdir -p "$dir"
PY=/usr/bin/python3
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
base=(--set data.format=tsv --set data.user_col=userID --set data.item_col=itemID --set data.split_col=x_label
      --set split.protocol=given --set "data.meta_cols=[id, name]" --set "data.tags_cols=[artistID, text]")
ingest() { # name, extra arguments...: 2 ranks unless NP is set
  local name=$1; shift
  timeout 300 $DM_MPIRUN -n ${NP:-2} "$DM_BUILD/dynmm" ingest "${base[@]}" --set run.dir="$dir/$name" "$@" > "$dir/$name.log" 2>&1 < /dev/null
}

# 30 users, dense items 0..19 whose original ids are 100 + 7 * item; split 0/1/2 by position
$PY - "$dir" <<'EOF'
import csv, sys
d = sys.argv[1]
rows = []
for u in range(30):
    items = [(u * 3 + k * 5) % 20 for k in range(7)]
    seen = []
    for i in items:
        if i not in seen: seen.append(i)
    for k, i in enumerate(seen):
        rows.append((u, i, 0 if k < len(seen) - 2 else (1 if k == len(seen) - 2 else 2)))
with open(d + "/x.inter", "w") as f, open(d + "/x_og.inter", "w") as g:
    f.write("userID\titemID\trating\tx_label\n"); g.write("userID\titemID\trating\tx_label\n")
    for u, i, p in rows:
        f.write("%d\t%d\t1\t%d\n" % (u, i, p)); g.write("%d\t%d\t1\t%d\n" % (u + 5, 100 + 7 * i, p))
# titles: a CSV with quotes, a comma and a tab inside; item 19 (original 233) has none, two rows name
# artists without interactions
with open(d + "/artists.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "name", "url"])
    for i in range(19):
        w.writerow([100 + 7 * i, 'Band "%d", the\tsecond' % i if i == 3 else "Band %d" % i, "http://x/%d" % i])
    w.writerow([5, "Nobody", "http://x/n"]); w.writerow([6, "Nobody else", "http://x/m"])
with open(d + "/tags.tsv", "w") as f:
    f.write("artistID\ttext\n")
    for i in range(0, 20, 2):   # the even items
        f.write("%d\t%s\n" % (100 + 7 * i, ",".join("tag%d" % ((i + k) % 6) for k in range(3))))
    f.write("7\tlost,tags\n")
EOF
for np in 1 2 3; do
  NP=$np ingest ok$np --set data.inter="$dir/x.inter" --set data.item_map="$dir/x_og.inter" --set data.meta="$dir/artists.csv" \
    --set data.tags="$dir/tags.tsv" || { cat "$dir/ok$np.log"; fail "ingest at $np ranks"; }
done
grep -q "item tables: 3 rows name items without interactions (not in data.item_map); skipped" "$dir/ok2.log" \
  || fail "no log line on the 3 skipped table rows: $(grep 'item tables' "$dir/ok2.log")"
$PY - "$dir" <<'EOF' || fails=$((fails+1))
import csv, sys
import h5py, numpy as np
d = sys.argv[1]
def strtab(f, name):
    chars = f[name + "/chars"][...].tobytes(); off = f[name + "/offsets"][...]
    return [chars[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]
rows = [l.rstrip("\n").split("\t") for l in open(d + "/x.inter")][1:]
og = [l.rstrip("\n").split("\t") for l in open(d + "/x_og.inter")][1:]
orig = {r[1]: g[1] for r, g in zip(rows, og)}
names = {r["id"]: r["name"] for r in csv.DictReader(open(d + "/artists.csv", newline=""))}
tags = {r["artistID"]: r["text"].split(",") for r in csv.DictReader(open(d + "/tags.tsv"), delimiter="\t")}
with h5py.File(d + "/ok1/dataset.h5", "r") as f:
    iid, uid = strtab(f, "items/id"), strtab(f, "users/id")
    titles, cats, has = strtab(f, "items/title"), strtab(f, "items/category"), f["items/has_title"][...]
    given = f["split/given"][...]
    off = f["users/offsets"][...]
    item = f["inter/item"][...]
    got = set()
    for u in range(len(uid)):
        for j in range(off[u], off[u + 1]):
            got.add((uid[u], iid[item[j]], int(given[j])))
ref = {(r[0], r[1], int(r[3])) for r in rows}
if got != ref: print("FAIL: (user, item, split) triples differ: %d vs %d" % (len(got), len(ref))); sys.exit(1)
counts = [int((given == k).sum()) for k in range(3)]
want = [sum(1 for r in rows if r[3] == str(k)) for k in range(3)]
if counts != want: print("FAIL: split counts %s, expected %s" % (counts, want)); sys.exit(1)
n_t = n_g = 0
for k, i in enumerate(iid):
    o = orig[i]
    t = names.get(o, "")
    if titles[k] != t or bool(has[k]) != (o in names):
        print("FAIL: item %s (original %s): title %r (has %d), expected %r" % (i, o, titles[k], has[k], t)); sys.exit(1)
    c = " | ".join(tags.get(o, []))
    if cats[k] != c:
        print("FAIL: item %s (original %s): categories %r, expected %r" % (i, o, cats[k], c)); sys.exit(1)
    n_t += o in names; n_g += o in tags
if n_t != 19 or n_g != 10 or not any('"' in t and "\t" in t for t in titles):
    print("FAIL: %d titles, %d tagged items, expected 19 and 10 with the quoted one" % (n_t, n_g)); sys.exit(1)
print("tables: %d triples, split %s, %d titles and %d tagged items match" % (len(ref), counts, n_t, n_g))
EOF
for np in 2 3; do $PY tests/reference/check_dataset.py same "$dir/ok1/dataset.h5" "$dir/ok$np/dataset.h5" > /dev/null || fail "$np ranks differ from 1 rank"; done

# bad input: each refused with its message
bad() { # name, expected message (grep -F), arguments...
  local name=$1 want=$2; shift 2
  if ingest "$name" "$@"; then fail "$name: accepted"; return; fi
  grep -qF -- "$want" "$dir/$name.log" || { fail "$name: expected '$want', got: $(grep -m1 'error' "$dir/$name.log")"; }
  [ -e "$dir/$name/dataset.h5" ] && fail "$name: left a dataset.h5"
}
sed '5s/\t[0-9]$/\t3/' "$dir/x.inter" > "$dir/bad_split.inter"
bad split "'$dir/bad_split.inter' line 5 column 4 ('x_label'): split '3'; expected 0 (train), 1 (validation) or 2 (test)" \
  --set data.inter="$dir/bad_split.inter"
head -n -1 "$dir/x_og.inter" > "$dir/short_og.inter"
n=$(($(wc -l < "$dir/x.inter") - 1))
bad maprows "'$dir/short_og.inter' has $((n - 1)) interactions and '$dir/x.inter' $n: data.item_map must hold the same rows as data.inter" \
  --set data.inter="$dir/x.inter" --set data.item_map="$dir/short_og.inter" --set data.meta="$dir/artists.csv"
# row 2 (item 5 -> 135) says original 100, which row 1 gave item 0
awk -F'\t' -v OFS='\t' 'NR == 3 { $2 = 100 } { print }' "$dir/x_og.inter" > "$dir/two_items.inter"
bad twoitems "'$dir/two_items.inter' interaction 2: original id '100' names item '5' of '$dir/x.inter', and item '0' before" \
  --set data.inter="$dir/x.inter" --set data.item_map="$dir/two_items.inter" --set data.meta="$dir/artists.csv"
awk -F'\t' -v OFS='\t' '$2 == 135 && !done { $2 = 999; done = 1 } { print }' "$dir/x_og.inter" > "$dir/two_origs.inter"
first=$(awk -F'\t' 'NR > 1 && $2 == 5 { print NR - 1; exit }' "$dir/x.inter")
second=$(awk -F'\t' 'NR > 1 && $2 == 5 { k++; if (k == 2) { print NR - 1; exit } }' "$dir/x.inter")
bad twoorigs "'$dir/two_origs.inter' interaction $second: item '5' of '$dir/x.inter' has original id '135', and '999' before" \
  --set data.inter="$dir/x.inter" --set data.item_map="$dir/two_origs.inter" --set data.meta="$dir/artists.csv"
{ cat "$dir/tags.tsv"; echo "114	again"; } > "$dir/tags_twice.tsv"
bad twice "'$dir/tags_twice.tsv' line 13: item '2' is listed again (first on line 3)" \
  --set data.inter="$dir/x.inter" --set data.item_map="$dir/x_og.inter" --set data.tags="$dir/tags_twice.tsv"
bad nocol "'$dir/artists.csv' line 1: no column 'title' in the header" \
  --set data.inter="$dir/x.inter" --set data.meta="$dir/artists.csv" --set "data.meta_cols=[id, title]"
bad onecol "data.meta_cols has 1 entries; expected 2: the id column and the title column" \
  --set data.inter="$dir/x.inter" --set data.meta="$dir/artists.csv" --set "data.meta_cols=[id]"
bad format 'data.tags is read with data.format = "tsv", not "sasrec"' \
  --set data.inter="$dir/x.inter" --set data.tags="$dir/tags.tsv" --set data.format=sasrec --set data.split_col=
bad both 'data.split_col = "x_label" and data.test: the given split comes from one or the other' \
  --set data.inter="$dir/x.inter" --set data.test="$dir/x.inter"

[ $fails -eq 0 ] && echo "ok"
[ $fails -eq 0 ]
