#!/usr/bin/env bash
# Ingest of the real datasets at 1, 2 and 3 ranks: counts, the standard leave-one-out order,
# titles/brands/categories (Beauty), the given split and float16 features (TikTok), the split column,
# the names and tags through the original ids and the text/audio features (Last.fm-2k, its shipped
# config) checked by an independent Python reading of the raw files, and bitwise-identical output at
# every rank count. A dataset that is absent is skipped with a message.
set -u
dss=()
for ds in amazon-beauty:beauty tiktok:tiktok lastfm-2k:lastfm; do
  if [ -n "$DM_DATA" ] && [ -d "$DM_DATA/${ds%%:*}" ]; then dss+=("${ds#*:}"); else echo "note: $DM_DATA/${ds%%:*} not found, skipped"; fi
done
[ ${#dss[@]} -gt 0 ] || { echo "SKIP: real data not found (DM_DATA='$DM_DATA')"; exit 77; }
PY=/usr/bin/python3; chk=tests/reference/check_dataset.py
for ds in "${dss[@]}"; do
  cfg=configs/amazon-beauty.cfg; sets=(--set data.inter=$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz --set data.meta=$DM_DATA/amazon-beauty/meta_Beauty.json.gz)
  if [ $ds = tiktok ]; then
    cfg=configs/tiktok.cfg; t=$DM_DATA/tiktok
    sets=(--set data.inter=$t/train.tsv --set data.valid=$t/valid.tsv --set data.test=$t/test.tsv --set modal.visual.path=$t/image_feat.npy --set modal.audio.path=$t/audio_feat.npy)
  elif [ $ds = lastfm ]; then
    cfg=configs/lastfm-2k.cfg; t=$DM_DATA/lastfm-2k
    sets=(--set data.inter=$t/lfm2k.inter --set data.item_map=$t/lfm2k_og_ids.inter --set data.meta=$t/artists.dat
          --set data.tags=$t/lfm2k_text.tsv --set modal.text.path=$t/all-MiniLM-L6-v2.npy --set modal.audio.path=$t/whisper.npy)
  fi
  for np in 1 2 3; do
    dir=$DM_TMP/ingest_$ds$np; rm -rf "$dir"
    $DM_MPIRUN -n $np "$DM_BUILD/dynmm" ingest $cfg "${sets[@]}" --set run.dir=$dir < /dev/null || { echo "FAIL: ingest $ds at $np ranks"; exit 1; }
  done
  $PY $chk $ds $DM_TMP/ingest_${ds}1/dataset.h5 "$DM_DATA" || exit 1
  for np in 2 3; do $PY $chk same $DM_TMP/ingest_${ds}1/dataset.h5 $DM_TMP/ingest_$ds$np/dataset.h5 || { echo "FAIL: $ds at $np ranks differs from 1 rank"; exit 1; }; done
done
echo "ok"
