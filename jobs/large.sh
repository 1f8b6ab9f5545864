#!/usr/bin/env bash
# large.sh: the 100M-interaction run (configs/large.cfg, or another config) stage by stage, each
# stage its own MPI job so that its peak memory is its own, then a table of wall time and peak
# resident memory per stage (the largest rank and the sum over ranks) from the stages' logs.
#
#   jobs/large.sh [CONFIG.cfg] [--set group.key=value ...]      # NP ranks (default 2)
#   NP=4 jobs/large.sh configs/large.cfg --set synth.users=500000
#
# Logs and the table go to <run.dir>/large-<stage>.log and <run.dir>/large-profile.md. A stage whose
# output is current is skipped by dynmm (its row then says so).
set -eu -o pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NP=${NP:-2}
B=$BUILD/dynmm
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cfg=configs/large.cfg
if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then cfg=$1; shift; fi
resolved=$("$B" config "$cfg" "$@") || { echo "large.sh: $cfg does not load (see above)" >&2; exit 2; }
# run.dir and run.stages of the resolved config (libconfig, one key a line)
key() { awk -v k="$1" '/^[a-z_]+: \{/ { g = $1 } g == "run:" && $1 == k { sub(/^[^=]*= */, ""); sub(/;$/, ""); print; exit }' <<< "$resolved"; }
dir=$(key dir | tr -d '"')
stages=$(key stages | tr -d '[]",')
[ -n "$dir" ] && [ -n "$stages" ] || { echo "large.sh: no run.dir or run.stages in $cfg" >&2; exit 2; }
mkdir -p "$dir"
out=$dir/large-profile.md
{
  echo "| stage | wall s | peak MiB (largest rank) | peak MiB (all $NP ranks) |"
  echo "|---|---:|---:|---:|"
} > "$out.part"
for s in $stages; do
  log=$dir/large-$s.log
  echo "== $s ($NP ranks)"
  t0=$(date +%s.%N)
  # `dynmm run` one stage at a time: a stage whose output is current is skipped
  mpirun --oversubscribe --bind-to none -n "$NP" "$B" run "$cfg" "$@" --set "run.stages=[$s]" < /dev/null 2>&1 | tee "$log"
  t1=$(date +%s.%N)
  awk -v s="$s" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    $1 == "peak" && $2 == "memory" { mx = $3; all = $8; sub(/\(/, "", all) }   # peak memory X MiB on rank r (Y MiB over all ranks)
    /is current/ { cur = 1 }
    END { printf "| %s%s | %.1f | %s | %s |\n", s, cur ? " (current, skipped)" : "", w, mx ? mx : "-", all ? all : "-" }' "$log" >> "$out.part"
done
mv "$out.part" "$out"
echo
cat "$out"
