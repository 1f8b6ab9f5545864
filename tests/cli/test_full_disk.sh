#!/usr/bin/env bash
# A full disk while a stage writes its HDF5 file, at 1, 2 and 3 ranks. run.dir is on a small tmpfs,
# filled so that the space runs out
#   create  before the first byte of dataset.h5 (the first dataset),
#   mid     in the middle of dataset.h5's datasets,
#   close   at dataset.h5's close (all data written, HDF5's metadata flush fails),
#   cf      in the middle of cf.h5 (train-cf on a finished dataset.h5).
# Every run must exit non-zero within the time limit (no rank left waiting in a collective, no crash
# in MPI_Finalize), print exactly one error, "no space left on device writing '<the file>'", and no
# HDF5 error stack, and leave no *.part behind. Also: a dataset.h5 cut to half its size, an empty
# one and one of random bytes are refused with what is wrong with them.
# The tmpfs needs root or a user namespace (unshare -rm); without either the full-disk part is skipped.
set -u
B=$DM_BUILD/dynmm
W=$DM_TMP/full_disk
if [ -z "${DM_FULL_DISK_NS:-}" ]; then
  mountpoint -q "$W/mnt" 2>/dev/null && umount "$W/mnt" # left by a killed run
  rm -rf "$W"
fi
mkdir -p "$W"
small=(--set synth.users=300 --set synth.items=200 --set sasrec.epochs=1)
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }

# check NAME RC OUTFILE DIR PATTERN: a clean, agreed failure matching PATTERN, nothing left in DIR
check() {
  local name=$1 rc=$2 out=$3 dir=$4 pat=$5
  if [ "$rc" -eq 0 ]; then fail "$name: exit 0"; return 1; fi
  if [ "$rc" -eq 124 ]; then fail "$name: timed out (a rank hung)"; tail -5 "$out"; return 1; fi
  if grep -Eq "Signal:|exited on signal|Segmentation|HDF5-DIAG" "$out"; then fail "$name: crash or HDF5 stack on stderr:"; grep -E "Signal|signal|Segm|HDF5-DIAG" "$out" | head -3; return 1; fi
  if ! grep -Eq -- "$pat" "$out"; then fail "$name: message does not match /$pat/:"; grep -A2 "error:" "$out" | head -5; return 1; fi
  local cnt; cnt=$(grep -c "error:" "$out")
  if [ "$cnt" -ne 1 ]; then fail "$name: $cnt error lines (expected one, from rank 0)"; grep "error:" "$out" | head -4; return 1; fi
  local left; left=$(find "$dir" -name '*.part' 2>/dev/null)
  if [ -n "$left" ]; then fail "$name: partial file left: $left"; return 1; fi
  echo "ok $name (rc $rc): $(grep -m1 'error:' "$out" | cut -c1-160)"
}

# ---- damaged inputs (no mount needed; done once, outside the user namespace) --------------------
if [ -z "${DM_FULL_DISK_NS:-}" ]; then
  G=$W/good; mkdir -p "$G"
  timeout 120 $DM_MPIRUN -n 2 "$B" run "${small[@]}" --set 'run.stages=[synth]' --set run.dir="$G" < /dev/null > "$W/good.log" 2>&1 \
    || { cat "$W/good.log"; echo "FAIL: synth on a roomy disk"; exit 1; }
  cp "$G/dataset.h5" "$W/dataset.h5"
  sz=$(stat -c %s "$G/dataset.h5")
  for kind in truncated empty random; do
    T=$W/$kind; mkdir -p "$T"
    case $kind in
      truncated) head -c $((sz / 2)) "$W/dataset.h5" > "$T/dataset.h5"; pat="'$T/dataset.h5' is not a complete HDF5 file \(truncated: $((sz / 2)) of $sz bytes\)";;
      empty) : > "$T/dataset.h5"; pat="'$T/dataset.h5' is empty \(0 bytes\), not an HDF5 file";;
      random) head -c 5000 /dev/urandom > "$T/dataset.h5"; pat="'$T/dataset.h5' is not an HDF5 file";;
    esac
    timeout 120 $DM_MPIRUN -n 2 "$B" train-cf "${small[@]}" --set run.dir="$T" < /dev/null > "$W/$kind.log" 2>&1
    check "$kind dataset.h5" $? "$W/$kind.log" "$T" "$pat"
  done
fi

# ---- the tmpfs ------------------------------------------------------------------------------------
M=$W/mnt
if [ -z "${DM_FULL_DISK_NS:-}" ] && [ "$(id -u)" != 0 ]; then
  if unshare -rm true 2>/dev/null; then
    DM_FULL_DISK_NS=1 unshare -rm bash "$0"; rc=$?
    [ $rc -eq 0 ] && [ $fails -eq 0 ] && exit 0
    [ $rc -eq 77 ] && [ $fails -eq 0 ] && exit 77
    exit 1
  fi
  [ $fails -eq 0 ] || exit 1
  echo "SKIP: the full-disk cases need a tmpfs: not root, and no user namespaces (unshare -rm)"; exit 77
fi
# in the user namespace this process is uid 0 for Open MPI too, and the session directory of the
# real uid 0 (/tmp/ompi.<host>.0) is not ours
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ -n "${DM_FULL_DISK_NS:-}" ]; then mkdir -p "$W/ompi"; export TMPDIR=$W/ompi; fi
mkdir -p "$M"
mount -t tmpfs -o size=4m tmpfs "$M" 2>/dev/null || {
  [ $fails -eq 0 ] || exit 1
  echo "SKIP: cannot mount a tmpfs on $M"; exit 77; }
trap 'umount "$M" 2>/dev/null' EXIT

# leaves avail KiB free on the tmpfs (a filler file takes the rest)
fill() {
  rm -f "$M/filler"; sync
  local total used
  total=$(df -k --output=size "$M" | tail -1); used=$(df -k --output=used "$M" | tail -1)
  local kb=$((total - used - $1))
  [ $kb -gt 0 ] && head -c $((kb * 1024)) /dev/zero > "$M/filler" 2>/dev/null
  true
}

# the size dataset.h5 takes on this filesystem (KiB), from a run with room
rm -rf "${M:?}"/*; mkdir -p "$M/ref"
timeout 120 $DM_MPIRUN -n 1 "$B" run "${small[@]}" --set 'run.stages=[synth]' --set run.dir="$M/ref" < /dev/null > "$W/ref.log" 2>&1 \
  || { cat "$W/ref.log"; echo "FAIL: synth on the empty tmpfs"; exit 1; }
S=$(du -k "$M/ref/dataset.h5" | cut -f1)
cp "$M/ref/dataset.h5" "$W/ref.h5"
rm -rf "$M/ref"
echo "dataset.h5 takes ${S} KiB"

# synth writing dataset.h5 with KiB free; the log in $W/NAME.NP.log
synth() { # name np avail
  rm -rf "${M:?}"/*; mkdir -p "$M/r"; fill "$3"
  timeout 120 $DM_MPIRUN -n "$2" "$B" run "${small[@]}" --set 'run.stages=[synth]' --set run.dir="$M/r" < /dev/null > "$W/$1.$2.log" 2>&1
}
want="no space left on device writing '$M/r/dataset.h5'"
for np in 1 2 3; do
  for c in create:0 mid:$((S / 2)); do
    name=${c%%:*}; avail=${c#*:}
    synth $name $np $avail
    check "-n $np $name ($avail KiB free)" $? "$W/$name.$np.log" "$M" "$want"
  done
  # the close: all data written, the metadata does not fit. Where exactly depends on the layout, so
  # from more room to less until a run fails at the close
  ok=0
  for avail in $((S - 8)) $((S * 9 / 10)) $((S * 4 / 5)) $((S * 2 / 3)); do
    synth close $np $avail; rc=$?
    if [ $rc -eq 0 ]; then echo "  (-n $np, $avail KiB free: it fitted; less room)"; continue; fi
    if [ $rc -ne 124 ] && ! grep -q "at close" "$W/close.$np.log"; then
      check "-n $np before the close ($avail KiB free)" $rc "$W/close.$np.log" "$M" "$want"; break
    fi
    check "-n $np close ($avail KiB free)" $rc "$W/close.$np.log" "$M" "$want.*at close"; ok=1; break
  done
  [ $ok -eq 1 ] || fail "-n $np close: no fill made the close run out of space (the file sizes changed? adjust the fill)"
  # cf: train-cf on a finished dataset.h5; cf.h5 takes ~500 KiB and runs out in EASE's matrix (a
  # block-cyclic write of grid.c), in SASRec's weights or in its user states, by the room left
  avail=$(( np == 1 ? 64 : np == 2 ? 250 : 450 ))
  rm -rf "${M:?}"/*; mkdir -p "$M/r"; cp "$W/ref.h5" "$M/r/dataset.h5"; fill $avail
  timeout 120 $DM_MPIRUN -n $np "$B" train-cf "${small[@]}" --set run.dir="$M/r" < /dev/null > "$W/cf.$np.log" 2>&1
  check "-n $np cf ($avail KiB free)" $? "$W/cf.$np.log" "$M" "no space left on device writing '$M/r/cf.h5'"
  [ -f "$M/r/dataset.h5" ] || fail "-n $np cf: the input dataset.h5 is gone"
done
echo "$fails failed"
[ $fails -eq 0 ]
