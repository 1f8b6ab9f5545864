# model_lib.sh: what the command-line tests of the registry's trained models share (sourced by
# test_bpr.sh, test_gru4rec.sh, test_lightgcn.sh, test_bert4rec.sh, test_itemknn.sh; not a test itself).
#
#   model_setup NAME              sets PY, chk (tests/reference/check_cf.py), B (the binary), W (an
#                                 emptied $DM_TMP/NAME) and fail()
#   model_ranks NAME LABEL FRAC
#                                 `dynmm run "${common[@]}"` (the caller's array) at 1, 2 and 3 ranks
#                                 into $W/r1 .. $W/r3; prints the model's lines of the 2-rank log;
#                                 checks the weights stored at 2 and 3 ranks are within NAME.lr/20 of
#                                 1 rank's (check_cf.py trained; tests/reference/tolerance.py says why) and eval's test/full and valid/uni99
#                                 rows within 1e-4 but for a share FRAC of the users (check_cf.py rows)
#   model_missing NAME LABEL      eval of a copy of $W/r1 whose cf.h5 lacks /NAME fails with
#                                 "holds no LABEL model" and the hint to add NAME to cf.models

model_setup() {
  PY=/usr/bin/python3; chk=tests/reference/check_cf.py; B=$DM_BUILD/dynmm
  export OMP_WAIT_POLICY=passive
  W=$DM_TMP/$1; rm -rf "$W"; mkdir -p "$W"
}

fail() { echo "FAIL: $*"; exit 1; }

model_ranks() {
  local name=$1 label=$2 frac=$3 np
  for np in 1 2 3; do
    $DM_MPIRUN -n $np $B run "${common[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; fail "$name at $np ranks"; }
  done
  grep -E "$label|$name " $W/r2.log | head -8
  for np in 2 3; do
    $PY $chk trained $W/r1/cf.h5 $W/r$np/cf.h5 $name.lr $name/weights || fail "$label weights at $np ranks"
    $PY $chk rows $W/r1/results.h5 $W/r$np/results.h5 1e-4 $frac test/full/$name valid/uni99/$name || fail "$label rows at $np ranks"
  done
}

model_missing() {
  local name=$1 label=$2
  cp -r $W/r1 $W/none && $PY -c "import h5py, sys; del h5py.File(sys.argv[1], 'r+')[sys.argv[2]]" $W/none/cf.h5 $name || fail "cannot drop /$name"
  $B eval "${common[@]}" --set run.dir=$W/none > $W/none.log 2>&1 && fail "eval without /$name succeeded"
  grep -q "holds no $label model" $W/none.log && grep -q "hint: add '$name' to cf.models" $W/none.log || { cat $W/none.log; fail "no message for a missing $label"; }
}
