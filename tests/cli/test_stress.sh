#!/usr/bin/env bash
# Stress experiments of the eval stage on a small synthetic run with all four modalities:
#  - the same results.h5 at 1 and 2 ranks (bitwise, every per-user dataset)
#  - 0% dropout equals the intact aligner bitwise; 100% dropout of every modality but cf changes
#    the rows; noise at 30 dB stays closer to the intact rows than at -10 dB; align@cold holds the
#    cold-target users' rows
#  - a NumPy reference of the aligner and of full-ranking NDCG@10 reproduces a 100% drop, a 50% drop
#    (the same keyed item choice), noise at 0 dB (the same draws) and a shuffle (tests/reference/
#    check_stress.py)
#  - a modality absent for every item: its variants equal the intact aligner bitwise
#  - dynmm report draws the dropout table, curve and bars, and the noise curve, with no settings
set -u
PY=/usr/bin/python3; ref=tests/reference/check_stress.py; B=$DM_BUILD/dynmm
W=$DM_TMP/stress; rm -rf "$W"; mkdir -p "$W/base"
fail() { echo "FAIL: $*"; exit 1; }
# mean_len 5 and zipf 1.2 leave a few items out of the training split (cold items)
common=(--set synth.users=400 --set synth.items=200 --set synth.mean_len=5 --set synth.zipf=1.2 --set sasrec.epochs=3
        --set sasrec.eval_every=3 --set sasrec.hidden=16 --set sasrec.maxlen=20 --set 'cf.models=[pop,sasrec]'
        --set align.epochs=3 --set align.batch=64 --set align.hidden=32 --set align.dim=16
        --set 'eval.models=[pop,sasrec,align]' --set 'eval.protocols=[full,uni99]')
stress=(--set stress.enabled=true --set 'stress.models=[align,sasrec]' --set 'stress.rates=[0,50,100]'
        --set 'stress.snr_db=[30,0,-10]' --set 'stress.sets=[text+visual+audio]')
t0=$(date +%s.%N)
$DM_MPIRUN -n 1 $B run "${common[@]}" --set 'run.stages=[synth,train-cf,align]' --set run.dir=$W/base < /dev/null > $W/base.log 2>&1 || { cat $W/base.log; fail "synth, train-cf, align"; }
for np in 1 2; do
  mkdir -p $W/r$np; cp $W/base/dataset.h5 $W/base/cf.h5 $W/base/align.h5 $W/r$np/
  $DM_MPIRUN -n $np $B eval "${common[@]}" "${stress[@]}" --set run.dir=$W/r$np < /dev/null > $W/r$np.log 2>&1 || { cat $W/r$np.log; fail "eval with stress at $np ranks"; }
done
grep -E "^stress|align@cold|wrote" $W/r1.log
grep -E "test +full +align@(drop_visual|noise_visual)" $W/r1.log
$PY $ref equal $W/r1/results.h5 $W/r2/results.h5 || fail "1 and 2 ranks differ"
$PY $ref check $W/r1 || fail "stress variants"
grep -q "stored z_base recomputed to 0$" $W/r1.log || echo "note: $(grep -o 'stored z_base recomputed to .*' $W/r1.log)"

# a modality absent for every item (audio), listed explicitly
mkdir -p $W/absent
$DM_MPIRUN -n 2 $B run "${common[@]}" "${stress[@]}" --set synth.audio_missing=1 --set 'stress.modalities=[text,audio]' \
  --set 'run.stages=[synth,train-cf,align,eval]' --set run.dir=$W/absent < /dev/null > $W/absent.log 2>&1 || { cat $W/absent.log; fail "absent-modality run"; }
$PY $ref absent $W/absent audio || fail "dropping an absent modality"

# errors name the key
$B eval "${common[@]}" --set stress.enabled=true --set 'stress.models=[ease]' --set run.dir=$W/r1 > $W/err.log 2>&1 && fail "stress.models outside eval.models accepted"
grep -q "stress.models: model 'ease' is not in eval.models" $W/err.log || { cat $W/err.log; fail "error message"; }
$B eval "${common[@]}" --set stress.enabled=true --set 'stress.sets=[cf+smell]' --set run.dir=$W/r1 > $W/err.log 2>&1 && fail "unknown modality accepted"
grep -q "stress.sets: set 'cf+smell': unknown modality 'smell'" $W/err.log || { cat $W/err.log; fail "error message"; }

# the report: default tables and figures of the variant families
$B report $W/r2/results.h5 --set report.out=$W/report --set stats.bootstrap=200 > $W/report.log 2>&1 || { cat $W/report.log; fail "report"; }
cat $W/report.log
R=$W/report
for t in test_full_drop test_full_without test_full_noise test_full_shuffle test_full_cold; do
  [ -s $R/$t.md ] && [ -s $R/$t.tex ] && [ -s $R/$t.csv ] || fail "no table $t"
  grep -q "than aligner of the same configuration" $R/$t.md || fail "$t: no significance legend against align"
done
grep -q "| aligner drop_visual_050 |" $R/test_full_drop.md || fail "drop table rows"
grep -q "| aligner noise_audio_-10 |" $R/test_full_noise.md || fail "noise table rows"
grep -q "set style data histograms" $R/test_full_without.gp || fail "the dropout bars are not bars"
grep -q "with linespoints" $R/test_full_drop.gp && grep -q "with linespoints" $R/test_full_noise.gp || fail "dropout or noise is not a curve"
# the noise curve: a series per modality over the SNRs; the dropout curve over the rates
for m in cf text visual audio; do
  awk -v m="$m" '/^# /{s = index($0, "noise_" m) > 0} s && NF >= 2 && $1 !~ /^#/ {print $1}' $R/test_full_noise.dat | sort -n | tr '\n' ' ' | grep -q "^-10 0 30 $" || fail "noise curve of $m: x = $(cat $R/test_full_noise.dat | head -20)"
done
grep -q "^0	\|^0 " $R/test_full_drop.dat && grep -q "^100	\|^100 " $R/test_full_drop.dat || fail "dropout curve x"
if command -v gnuplot > /dev/null; then
  for f in test_full_drop test_full_without test_full_noise; do
    [ "$(head -c 4 $R/$f.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$f.png is not a PNG"
  done
fi
echo "stress test: $(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.1f", b - a}') s"
echo ok
