#!/usr/bin/env bash
# Every malformed input of the corpus (tests/reference/gen_bad_inputs.py) must make
# `mpirun -n 2 dynmm ingest` exit non-zero on all ranks within a time limit, print one clear error
# matching the expected message (file and line, byte offset, row or key), and leave no output file
# (neither dataset.h5 nor a partial dataset.h5.part).
set -u
man=$DM_REF_DIR/bad/manifest.tsv
[ -f "$man" ] || { echo "FAIL: $man missing (tests/reference/gen_bad_inputs.py did not run)"; exit 1; }
fails=0; n=0
while IFS=$'\t' read -r name sets expect; do
  n=$((n+1))
  dir=$DM_TMP/bad/$name; rm -rf "$dir"; mkdir -p "$dir"
  args=(ingest --set run.dir="$dir")
  if [[ "$sets" == @* ]]; then args=(ingest "${sets#@}" --set run.dir="$dir")
  else IFS='|' read -ra kv <<< "$sets"; for a in "${kv[@]}"; do args+=(--set "$a"); done; fi
  out=$(timeout 120 $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" "${args[@]}" 2>&1 < /dev/null); rc=$?
  msg=$(echo "$out" | tr '\n' ' ')
  if [ $rc -eq 0 ]; then echo "FAIL $name: exit 0"; fails=$((fails+1)); continue; fi
  if [ $rc -eq 124 ]; then echo "FAIL $name: timed out (a rank hung)"; fails=$((fails+1)); continue; fi
  if ! echo "$msg" | grep -Eq -- "$expect"; then echo "FAIL $name: message does not match /$expect/:"; echo "$out" | head -5; fails=$((fails+1)); continue; fi
  cnt=$(echo "$out" | grep -c "error:")
  if [ "$cnt" -ne 1 ]; then echo "FAIL $name: $cnt error lines (expected exactly one, from rank 0)"; fails=$((fails+1)); continue; fi
  if ls "$dir" | grep -q "dataset.h5"; then echo "FAIL $name: output left behind: $(ls "$dir")"; fails=$((fails+1)); continue; fi
  echo "ok $name (rc $rc): $(echo "$out" | grep -m1 'error:' | cut -c1-150)"
done < "$man"
total=$(wc -l < "$man")
echo "$n of $total cases run, $fails failed"
[ "$n" -eq "$total" ] || fails=$((fails+1))
[ $fails -eq 0 ]
