#!/usr/bin/env bash
# Text inputs that must be read, not refused, by `mpirun -n 2 dynmm ingest` (the refusals are in
# test_bad_input.sh): a UTF-8 byte-order mark before the first line, a multi-member gzip file (what
# `cat a.gz b.gz` makes, which gzip itself reads as one stream), a SASRec sequence line of 100,000
# items in both the "sequences" and the auto layout, and the log line saying that auto-detection
# took line 1 as a header. Counts are checked with `dynmm info` against the same data written plainly.
set -u
dir=$DM_TMP/ingest_inputs; rm -rf "$dir"; mkdir -p "$dir"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
ingest() { # name, --set arguments...: ingests at 2 ranks into $dir/<name>, output in $dir/<name>.log
  local name=$1; shift
  local args=(ingest --set run.dir="$dir/$name")
  for a in "$@"; do args+=(--set "$a"); done
  timeout 300 $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" "${args[@]}" > "$dir/$name.log" 2>&1 < /dev/null \
    || { fail "ingest $name: $(grep -m1 'error:' "$dir/$name.log")"; return 1; }
}
counts() { "$DM_BUILD/dynmm" info "$dir/$1/dataset.h5" | grep -m1 -o 'users [0-9]*, items [0-9]*, interactions [0-9]*'; }

# 40 users x 6 items with numeric ids; with a BOM, line 1 used to become a header ('\xef\xbb\xbf0' is
# not an integer) and data.user_col "0" then matched the item column: 30 users instead of 40
for u in $(seq 0 39); do for k in 0 1 2 3 4 5; do printf '%d\t%d\n' $u $(( (u * 7 + k) % 30 )); done; done > "$dir/plain.tsv"
{ printf '\xef\xbb\xbf'; cat "$dir/plain.tsv"; } > "$dir/bom.tsv"
ingest plain data.format=tsv data.inter="$dir/plain.tsv" && ingest bom data.format=tsv data.inter="$dir/bom.tsv" && {
  want="users 40, items 30, interactions 240"
  [ "$(counts plain)" = "$want" ] || fail "plain tsv: $(counts plain), expected $want"
  [ "$(counts bom)" = "$want" ] || fail "tsv with a BOM: $(counts bom), expected $want"
  grep -q "taken as a header" "$dir/bom.log" && fail "the BOM made line 1 a header: $(grep 'taken as a header' "$dir/bom.log")"
}

# auto-detection says what it decided, once (rank 0 only), naming the file and the column names
{ printf 'user\titem\n'; cat "$dir/plain.tsv"; } > "$dir/header.tsv"
ingest header data.format=tsv data.inter="$dir/header.tsv" && {
  n=$(grep -c "'$dir/header.tsv': line 1 taken as a header (its id columns are not integers), column names 'user', 'item'" "$dir/header.log")
  [ "$n" = 1 ] || { fail "expected one log line on the inferred header, found $n:"; head -5 "$dir/header.log"; }
  [ "$(counts header)" = "users 40, items 30, interactions 240" ] || fail "tsv with a header: $(counts header)"
}

# multi-member gzip: two members, the boundary inside a line
/usr/bin/python3 - "$dir" <<'EOF'
import gzip, json, sys
d = sys.argv[1]
text = "".join(json.dumps({"reviewerID": "U%d" % (k % 50), "asin": "I%d" % (k % 30), "unixReviewTime": 1000000 + k}) + "\n"
               for k in range(300)).encode()
cut = len(text) // 2 + 7
open(d + "/one.json.gz", "wb").write(gzip.compress(text))
open(d + "/two.json.gz", "wb").write(gzip.compress(text[:cut]) + gzip.compress(text[cut:]))
EOF
ingest one data.format=amazon2014 data.inter="$dir/one.json.gz" && ingest two data.format=amazon2014 data.inter="$dir/two.json.gz" && {
  [ "$(counts two)" = "$(counts one)" ] && [ "$(counts one)" = "users 50, items 30, interactions 300" ] \
    || fail "multi-member gzip: $(counts two), one member: $(counts one)"
}

# one user with 100,000 items (stopped at "more than 255 items on one line"), two short users
{ printf '1'; seq 1 100000 | tr '\n' ' ' | sed 's/^/ /; s/ $//'; printf '\n2 5 7 9\n3 7 5\n'; } > "$dir/long.txt"
for layout in sequences auto; do
  ingest long_$layout data.format=sasrec data.inter="$dir/long.txt" data.sasrec_layout=$layout && {
    want="users 3, items 100000, interactions 100005"
    [ "$(counts long_$layout)" = "$want" ] || fail "sasrec $layout, a 100,000-item line: $(counts long_$layout), expected $want"
    "$DM_BUILD/dynmm" info "$dir/long_$layout/dataset.h5" | grep -q "max 100000" \
      || fail "sasrec $layout: the longest sequence is not 100000: $("$DM_BUILD/dynmm" info "$dir/long_$layout/dataset.h5" | grep -m1 'sequence length')"
  }
done

[ $fails -eq 0 ] && echo "ok"
[ $fails -eq 0 ]
