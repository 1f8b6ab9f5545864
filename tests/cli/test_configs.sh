#!/usr/bin/env bash
# Every shipped config and every command shown in README.md runs, at tiny sizes, and writes what it
# promises ("numbers you can trust"):
#  1. configs: every configs/*.cfg and configs/sweeps/*.cfg (a glob, so a new file is covered) loads
#     (`dynmm config`; --hash is the sha256 of what it prints). Each run config goes through
#     `dynmm run` at 2 ranks with its own run.stages, only sizes and epochs shrunk (TINY below), and
#     every listed stage's output is checked (results.h5 holds every eval model x split x protocol,
#     stream.h5 every variant, ...), then `dynmm report` tables it. A config named A-B.cfg with an
#     A.cfg beside it is an overlay and runs as `A.cfg A-B.cfg` (quickstart-stream.cfg, as the README
#     shows; the longest such A: amazon-beauty-stream.cfg on amazon-beauty.cfg). reference.cfg is the generated key list: loaded, not run. Real-data configs
#     (data.format other than synth) read $DM_DATA through DATA_<name> below (their paths in the
#     files are placeholders) on a k-core subset; without $DM_DATA they are skipped with a message.
#  2. sweeps: each configs/sweeps/*.cfg is expanded by `dynmm sweep` into a temporary sweep.dir
#     (TINY, seeds cut to the first two), run by the local loop `jobs/sweep.sbatch MANIFEST` (a DONE
#     marker with each run's hash), and `dynmm report` on the sweep directory writes its tables:
#     every eval model, every grid point, the mean over both seeds.
#  3. README.md: every command of its ```sh blocks, every `$ command` of its other blocks (the lines
#     after it are its expected output) and every inline `dynmm SUBCOMMAND ARGS` code span is
#     extracted (readme_cmds.py below, so a command added later is tested too) and run in README
#     order from a scratch "checkout" $CO (configs/ and jobs/ link to this checkout's; runs/ is its
#     own). The mappings, here and nowhere else (map_cmd):
#       make quickstart              -> jobs/quickstart.sh TINY (the target's last step; installing
#                                       and building are this suite's job)
#       make ..., sbatch ...         -> not run (make builds and tests; no Slurm here: test_slurm.sh)
#       `dynmm SUBCOMMAND` alone     -> not run (it names the command)
#       build/dynmm, dynmm           -> $DM_BUILD/dynmm (DM_BIN and BUILD for the job scripts)
#       mpirun                       -> $DM_MPIRUN (oversubscription, no binding)
#       configs/, jobs/, runs/       -> $CO/configs, $CO/jobs (links to the checkout's), $CO/runs:
#                                       every command runs in $CO
#       /data/amazon/                -> $DM_DATA/amazon-beauty/
#       CONFIG.cfg                   -> configs/quickstart.cfg; configs/sweeps/NAME.cfg ->
#                                       configs/sweeps/small.cfg; " [--set ...]" dropped
#       an option span (`--hash`)    -> the paragraph's preceding inline dynmm command plus the option
#       TINY                         -> appended to every `dynmm <stage|run|sweep> ...`,
#                                       jobs/quickstart.sh and jobs/run.sbatch (the last --set wins)
#       a real-data config           -> its DATA_<name> (files under $DM_DATA, k-core subset) appended
#                                       after TINY to a stage command that names it and no /data/ path
#                                       (the README's ingest of all of Beauty keeps its own paths)
#     Real data are not shrunk here (the README's ingest reads all of Beauty in seconds), so the counts
#     the README prints after it are checked. A command with another placeholder (FILE, ...), a shell operator or another /data/ path fails
#     naming its README line. Checks: the exit status (0, or non-zero where the README shows an
#     error), the expected output lines (`#   ...` lines right after a command in a ```sh block, the
#     lines after a `$ command`), and what each kind of command promises: the stage files of a run,
#     report tables and figures, DONE markers, explain's JSON lines, --hash = the sha256 of the
#     printed config, a sweep line's "# N runs" comment = its manifest; every report (make quickstart's
#     two, `dynmm report`'s) has significance tests in every table of several models (the quickstart's
#     LLM tables too) and its report.tex compiles with pdflatex into Type 1 / TrueType fonts only.
# DM_CONFIGS_STEPS="1 2 3" (default) selects the parts, e.g. DM_CONFIGS_STEPS=3 while editing the README.
set -u
ROOT=$PWD; B=$DM_BUILD/dynmm; PY=/usr/bin/python3
W=$DM_TMP/configs; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
T0=$SECONDS
export DM_BIN=$B BUILD=$DM_BUILD DM_MPIRUN_ARGS="--oversubscribe --bind-to none" OMP_WAIT_POLICY=passive
NP=2
STEPS=${DM_CONFIGS_STEPS:-1 2 3}

# Tiny sizes: users, items, epochs, steps, widths; never which stages, models or variants run.
TINY=(--set synth.users=200 --set synth.items=200
      --set sasrec.epochs=2 --set sasrec.eval_every=1 --set sasrec.maxlen=20
      --set align.epochs=1 --set align.hidden=32 --set align.dim=16
      --set lm.steps=5 --set lm.layers=1 --set lm.width=32 --set lm.heads=2 --set lm.vocab=300 --set lm.seq_len=32
      --set lm.batch=4 --set lm.warmup=2 --set lm.log_every=5
      --set prompt.train_users=12 --set prompt.eval_users=10 --set prompt.epochs=1 --set prompt.user_tokens=2
      --set prompt.hidden=16 --set 'prompt.latency_tokens=[4]' --set prompt.latency_batch=2
      --set prompt.head_epochs=1 --set prompt.head_train_users=24 --set prompt.valid_users=10
      --set explain.users=3 --set explain.candidates=6 --set explain.top_k=2 --set explain.random_masks=1
      --set explain.hidden=16 --set explain.tokens=4
      --set adapter.steps=5 --set adapter.hidden=16 --set adapter.batch=32 --set adapter.fisher_samples=32
      --set adapter.replay_capacity=200 --set stats.bootstrap=100 --set stats.permutations=100)
# Per synthetic config (name with - as _), what TINY leaves too small for it: configs/large.cfg scores
# 0.5% of the users (one of TINY's 200) and cuts the aligner's 64 dimensions into 32 sub-spaces.
SIZE_large=(--set eval.user_fraction=0.5 --set pq.m=16)
# Real data, per config (name with - as _): the files under $DM_DATA/<DATA_DIR_name>, and a k-core
# subset so that training stays tiny (Beauty 15/15: 671 users, 498 items; TikTok items 60: 6404
# users, 128 items; Last.fm-2k items 100: 1806 users, 125 items).
DATA_DIR_amazon_beauty=amazon-beauty
DATA_amazon_beauty=(--set data.inter="$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz"
                    --set data.meta="$DM_DATA/amazon-beauty/meta_Beauty.json.gz" --set data.kcore_user=15 --set data.kcore_item=15)
DATA_DIR_tiktok=tiktok
DATA_tiktok=(--set data.inter="$DM_DATA/tiktok/train.tsv" --set data.valid="$DM_DATA/tiktok/valid.tsv"
             --set data.test="$DM_DATA/tiktok/test.tsv" --set modal.visual.path="$DM_DATA/tiktok/image_feat.npy"
             --set modal.audio.path="$DM_DATA/tiktok/audio_feat.npy" --set data.kcore_item=60)
DATA_DIR_lastfm_2k=lastfm-2k
DATA_lastfm_2k=(--set data.inter="$DM_DATA/lastfm-2k/lfm2k.inter" --set data.item_map="$DM_DATA/lastfm-2k/lfm2k_og_ids.inter"
                --set data.meta="$DM_DATA/lastfm-2k/artists.dat" --set data.tags="$DM_DATA/lastfm-2k/lfm2k_text.tsv"
                --set modal.text.path="$DM_DATA/lastfm-2k/all-MiniLM-L6-v2.npy"
                --set modal.audio.path="$DM_DATA/lastfm-2k/whisper.npy" --set data.kcore_item=100)

cat > "$W/check.py" <<'EOF'
"""Checks of this test. `run CFG...`: the outputs of each resolved config's run (stage files, every
eval model x split x protocol, stream variants, prompt models, explanations). `sweep MANIFEST
REPORTDIR`: DONE markers and the report covering every run. `explain LOG IDS`: JSON lines."""
import csv, glob, json, os, re, sys
import h5py, numpy as np

def cfg(path):
    out, grp = {}, None
    for line in open(path):
        m = re.match(r"^(\w+): \{", line)
        if m: grp = m.group(1); continue
        if line.startswith("};"): grp = None; continue
        m = re.match(r"^  (\w+) = (.*);\s*$", line)
        if grp and m:
            try: out[grp + "." + m.group(1)] = json.loads(m.group(2))
            except ValueError: out[grp + "." + m.group(1)] = m.group(2)
    return out

OUTPUT = {"synth": "dataset.h5", "ingest": "dataset.h5", "train-cf": "cf.h5", "align": "align.h5", "lm": "lm.h5",
          "prompt": "prompt.h5", "explain": "explain.h5", "stream": "stream.h5", "eval": "results.h5", "pq": "pq.h5"}

def finite_rows(d, what):
    x = d[...]
    assert x.shape[0] > 0, "%s: no rows" % what
    if x.dtype.kind == "f": assert np.isfinite(x).any(), "%s: no finite value" % what

def check_run(path):
    c = cfg(path); d = c["run.dir"]; stages = c["run.stages"]
    assert stages, "%s: run.stages is empty" % path
    for s in stages:
        f = os.path.join(d, OUTPUT[s])
        assert os.path.isfile(f), "stage %s: no %s" % (s, f)
        h = h5py.File(f, "r")
        assert h.attrs["format"].decode().startswith("dynmm-") and h.attrs["stage"].decode() == s, (f, h.attrs["stage"])
        if s == "train-cf":
            for m in c["cf.models"]: assert m in h, "%s: no model %s" % (f, m)
        if s == "eval":
            for sp in c["eval.splits"]:
                for p in c["eval.protocols"]:
                    for m in c["eval.models"]:
                        k = "%s/%s/%s" % (sp, p, m)
                        assert k in h, "%s: no %s (eval.models x splits x protocols)" % (f, k)
                        finite_rows(h[k], f + ":" + k)
        if s == "stream":
            for v in c["stream.variants"]: assert "stream/" + v in h, "%s: no variant %s" % (f, v)
        if s == "prompt":
            for m in c["prompt.models"]: assert "prompt/" + m in h, "%s: no model %s" % (f, m)
        if s == "pq":
            for m in c["pq.models"]:
                assert m + "/codebook" in h and m + "/codes" in h, "%s: no codebook and codes of %s" % (f, m)
                finite_rows(h[m + "/codebook"], f + ":" + m)
        if s == "explain":
            finite_rows(h["explain/users"], f)
            out = c["explain.output"]
            if out != "-":
                j = out if os.path.isabs(out) else os.path.join(d, out)
                lines = [json.loads(l) for l in open(j) if l.strip()]
                assert lines and all("rationale" in l and "evidence" in l for l in lines), j
        if s == "lm": assert os.path.isdir(os.path.join(d, "lm")), "no %s/lm/" % d
    return "%s (%s)" % (d, " ".join(stages))

def check_sweep(manifest, rep):
    rows = [l.rstrip("\n").split("\t") for l in open(manifest) if not l.startswith("#") and not l.startswith("index")]
    seeds = sorted({r[3] for r in rows}); configs = sorted({r[2] for r in rows})
    for r in rows:
        done = os.path.join(r[4], "DONE")
        assert os.path.isfile(done) and open(done).readline().strip() == r[5], "%s: no DONE holding the run's hash" % r[4]
        assert os.path.isfile(os.path.join(r[4], "results.h5")), "%s: no results.h5" % r[4]
    idx = open(os.path.join(rep, "index.md")).read()
    m = re.search(r"From (\d+) results files", idx)
    assert m and int(m.group(1)) == len(rows), "index.md does not cover the %d runs: %s" % (len(rows), idx[:200])
    base = cfg(os.path.join(os.path.dirname(manifest), "base.cfg.resolved"))
    models = base["eval.models"]
    for sp in base["report.splits"]:
        f = os.path.join(rep, "%s_full.csv" % sp) if "full" in base["eval.protocols"] else sorted(glob.glob(os.path.join(rep, sp + "_*.csv")))[0]
        t = list(csv.DictReader(open(f)))
        main = [m for m in models if not m.endswith("@pq")]  # <model>@pq: in the table <split>_<protocol>_pq beside it
        assert {r["model"] for r in t} >= set(main), "%s: models %s, expected %s" % (f, sorted({r["model"] for r in t}), main)
        if len(main) < len(models):
            fq = f[:-4] + "_pq.csv"
            tq = {r["model"] for r in csv.DictReader(open(fq))}
            assert tq >= set(models) - set(main), "%s: models %s, expected the @pq ones of %s" % (fq, sorted(tq), models)
        assert all(r["seeds"] == str(len(seeds)) for r in t), "%s: not every row is over %d seeds" % (f, len(seeds))
        swept = [k for k in t[0] if "." in k and k not in ("p_adj",)]
        pts = {tuple(r[k] for k in swept) for r in t if all(r[k] != "*" for k in swept)}
        assert len(pts) == len(configs), "%s: %d grid points tabled, the manifest has %d" % (f, len(pts), len(configs))
        for ext in ("md", "tex"): assert os.path.isfile(f[:-3] + ext), f[:-3] + ext
    return "%d runs (%d configurations x %d seeds), report over all of them" % (len(rows), len(configs), len(seeds))

def check_explain(log, ids):
    lines = [json.loads(l) for l in open(log) if l.startswith("{")]
    assert lines, "no JSON line on stdout"
    assert all("rationale" in l and "evidence" in l and "item" in l for l in lines), lines[0]
    if ids: assert {l["user"] for l in lines} == set(ids), ({l["user"] for l in lines}, ids)
    return "%d explained recommendations" % len(lines)

try:
    if sys.argv[1] == "run": print("; ".join(check_run(p) for p in sys.argv[2:]))
    elif sys.argv[1] == "sweep": print(check_sweep(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "explain": print(check_explain(sys.argv[2], json.loads(sys.argv[3])))
except (AssertionError, KeyError, OSError) as e:
    print("FAIL: %s: %r" % (sys.argv[1], e)); sys.exit(1)
EOF
cat > "$W/readme_cmds.py" <<'EOF'
"""README.md -> one record per command, fields separated by \x1e: line, kind (sh: a ```sh block;
example: `$ cmd` in another block; inline: a code span; name: a span naming a subcommand only),
command, trailing comment, expected output lines joined by \x1f."""
import re, sys
text = open(sys.argv[1]).read().split("\n")
recs, outside = [], []
def strip_comment(s):
    q = None
    for i, ch in enumerate(s):
        if q: q = None if ch == q else q
        elif ch in "'\"": q = ch
        elif ch == "#" and (i == 0 or s[i - 1].isspace()): return s[:i].rstrip(), s[i + 1:].strip()
    return s.rstrip(), ""
i = 0
while i < len(text):
    m = re.match(r"^```(\w*)\s*$", text[i])
    if not m:
        outside.append((i + 1, text[i])); i += 1; continue
    lang, i = m.group(1), i + 1
    block = []
    while i < len(text) and not re.match(r"^```\s*$", text[i]): block.append((i + 1, text[i])); i += 1
    i += 1
    outside.append((i, ""))                          # a fence ends a paragraph
    if lang == "sh":
        j = 0
        while j < len(block):
            n, l = block[j]; j += 1
            if not l.strip(): continue
            if l.lstrip().startswith("#"):
                if recs and recs[-1][0] == "sh" and recs[-1][-1] == n - 1 and re.match(r"^#\s{2,}\S", l.strip()):
                    recs[-1][4].append(l.strip()[1:].strip()); recs[-1][-1] = n
                continue
            while l.rstrip().endswith("\\") and j < len(block): l = l.rstrip()[:-1].rstrip() + " " + block[j][1].strip(); j += 1
            cmd, comment = strip_comment(l.strip())
            recs.append(["sh", n, cmd, comment, [], block[j - 1][0]])
    else:
        j = 0
        while j < len(block):
            n, l = block[j]; j += 1
            if l.startswith("$ "):
                exp = []
                while j < len(block) and block[j][1].strip() and not block[j][1].startswith("$ "): exp.append(block[j][1].strip()); j += 1
                cmd, comment = strip_comment(l[2:].strip())
                recs.append(["example", n, cmd, comment, exp, n])
# inline code spans, paragraph by paragraph
para = []
def flush():
    global para
    s = "\n".join(l for _, l in para)
    starts = [n for n, _ in para]
    for m in re.finditer(r"`([^`]+)`", s):
        span = " ".join(m.group(1).split()); n = starts[s.count("\n", 0, m.start())]
        if re.match(r"^(build/)?dynmm \S+ \S", span): recs.append(["inline", n, span, "", [], n])
        elif re.match(r"^(build/)?dynmm \S+$", span): recs.append(["name", n, span, "", [], n])
        elif re.match(r"^--[a-z][a-z-]*$", span):
            prev = [r for r in recs if r[0] == "inline" and r[1] in starts]
            if prev: recs.append(["inline", n, prev[-1][2] + " " + span, "", [], n])
    para = []
for n, l in outside:
    if not l.strip(): flush()
    else: para.append((n, l))
flush()
recs.sort(key=lambda r: r[1])
for kind, n, cmd, comment, exp, _ in recs:
    print("\x1e".join([str(n), kind, cmd, comment, "\x1f".join(exp)]))
EOF
chk() { $PY "$W/check.py" "$@"; }
# latex_ok REPORTDIR: report.tex compiles with pdflatex into a PDF with Type 1 / TrueType fonts only
# (pdffonts; ACM's and IEEE's checks reject Type 3), and every table with more than one model has its
# significance tests (a *_tests.csv beyond its header); prints what it checked
latex_ok() {
  local d=$1 t n
  for t in "$d"/*.csv; do
    case $t in *_tests.csv) continue ;; esac
    n=$(awk -F, 'NR > 1 {print $2}' "$t" | sort -u | wc -l)
    if [ "$n" -gt 1 ] && [ "$(grep -c . "${t%.csv}_tests.csv")" -lt 2 ]; then echo "FAIL: ${t##*/}: $n models, no significance test"; return 1; fi
  done
  if ! command -v pdflatex > /dev/null || ! kpsewhich booktabs.sty > /dev/null 2>&1; then echo "tables tested (no pdflatex here)"; return 0; fi
  (cd "$d" && timeout 120 pdflatex -interaction=nonstopmode -halt-on-error report.tex > report.pdflatex.log 2>&1) ||
    { tail -20 "$d/report.pdflatex.log"; echo "FAIL: $d/report.tex does not compile"; return 1; }
  if command -v pdffonts > /dev/null; then
    pdffonts "$d/report.pdf" > "$d/report.fonts" 2>&1 || { echo "FAIL: pdffonts $d/report.pdf"; return 1; }
    if grep -q 'Type 3' "$d/report.fonts"; then cat "$d/report.fonts"; echo "FAIL: $d/report.pdf embeds Type 3 fonts"; return 1; fi
    if fc-list 2>/dev/null | grep -q "Latin Modern Sans"; then
      if tail -n +3 "$d/report.fonts" | grep -Ev ' Type 1C? ' | grep -q .; then cat "$d/report.fonts"; echo "FAIL: $d/report.pdf: a font that is not Type 1"; return 1; fi
      echo "tables tested, report.pdf with Type 1 fonts only"; return 0
    fi
    echo "tables tested, report.pdf with Type 1 / TrueType fonts only"
  else echo "tables tested, report.pdf compiled (no pdffonts here)"; fi
}
# the resolved config of ARGS (configs, then --set) into a file, for the checkers
resolve() { local out=$1; shift; $B config "$@" > "$out" 2> "$out.err" || { cat "$out.err"; fail "dynmm config $*"; }; }
# getkey FILE GROUP KEY: a value of a resolved config (strings without their quotes)
getkey() { awk -v g="$2" -v k="$3" '$0 ~ "^"g": \\{" {in_g=1; next} /^\};/ {in_g=0} in_g && $1 == k {v=$0; sub(/^[^=]*= */, "", v); sub(/;[ \t]*$/, "", v); gsub(/^"|"$/, "", v); print v}' "$1"; }
q() { printf '%q' "$1"; }

# ---- 1. every shipped config ------------------------------------------------------------------------
part_configs() {
  echo "== 1. configs"
  local f out name var cfgs fmt extra dvar ddir args t got stages
  for f in configs/*.cfg configs/sweeps/*.cfg; do
    out=$($B config "$f" 2>&1) || { echo "$out"; fail "$f does not load (dynmm config $f)"; }
    [ "$($B config "$f" --hash)" = "$(printf '%s\n' "$out" | sha256sum | cut -c1-64)" ] || fail "$f: --hash is not the sha256 of the printed config"
  done
  echo "ok: every config loads; --hash is the sha256 of the resolved config"
  mkdir -p "$W/cfg"
  for f in configs/*.cfg; do
    name=$(basename "$f" .cfg); var=${name//-/_}
    if [ "$name" = reference ]; then echo "not run: $f is the generated key list (loaded above)"; continue; fi
    cfgs=("$f")
    local pre=$name dname=$name
    while [[ $pre == *-* ]]; do   # an overlay: A-B.cfg on the longest A.cfg beside it (amazon-beauty-stream on amazon-beauty)
      pre=${pre%-*}
      if [ -f "configs/$pre.cfg" ]; then cfgs=("configs/$pre.cfg" "$f"); dname=$pre; break; fi
    done
    resolve "$W/cfg/$name.plain" "${cfgs[@]}"
    fmt=$(getkey "$W/cfg/$name.plain" data format)
    extra=()
    var=${dname//-/_}   # real data: the mapping of the config whose data it reads
    if [ "$fmt" != synth ]; then
      declare -p "DATA_$var" > /dev/null 2>&1 ||
        fail "$f reads real data (data.format = \"$fmt\") and this test has no DATA_$var mapping to \$DM_DATA for it; add one"
      dvar="DATA_$var[@]"; ddir="DATA_DIR_$var"
      if [ -z "$DM_DATA" ] || [ ! -d "$DM_DATA/${!ddir}" ]; then echo "SKIP part: $f needs \$DM_DATA/${!ddir} (DM_DATA='$DM_DATA')"; continue; fi
      extra=("${!dvar}")
    fi
    if declare -p "SIZE_$var" > /dev/null 2>&1; then dvar="SIZE_$var[@]"; extra+=("${!dvar}"); fi
    args=("${cfgs[@]}" --set run.dir="$W/cfg/$name" "${TINY[@]}" "${extra[@]}")
    resolve "$W/cfg/$name.resolved" "${args[@]}"
    t=$SECONDS
    $DM_MPIRUN -n $NP $B run "${args[@]}" < /dev/null > "$W/cfg/$name.log" 2>&1 ||
      { tail -30 "$W/cfg/$name.log"; fail "dynmm run ${cfgs[*]} (tiny sizes) failed; log $W/cfg/$name.log"; }
    got=$(chk run "$W/cfg/$name.resolved") || { echo "$got"; fail "$f: outputs"; }
    stages=$(getkey "$W/cfg/$name.resolved" run stages)
    if [[ "$stages" == *eval* || "$stages" == *stream* ]]; then
      $B report "$W/cfg/$name" --set stats.bootstrap=100 > "$W/cfg/$name.report.log" 2>&1 ||
        { cat "$W/cfg/$name.report.log"; fail "dynmm report on the run of $f"; }
      [ -s "$W/cfg/$name/report/index.md" ] && ls "$W/cfg/$name"/report/*.csv > /dev/null 2>&1 || fail "$f: the report wrote no tables"
      e=$(latex_ok "$W/cfg/$name/report") || { echo "$e"; fail "$f: the report"; }
      got="$got, report: $e"
    fi
    echo "ok: ${cfgs[*]}: $got [$((SECONDS - t)) s]"
  done
}

# ---- 2. every sweep: expansion, the local loop, the report --------------------------------------------
part_sweeps() {
  echo "== 2. sweeps"
  local f name SD seeds sset t M n got
  for f in configs/sweeps/*.cfg; do
    name=$(basename "$f" .cfg); SD=$W/sweeps/$name
    seeds=$(getkey <($B config "$f") sweep seeds | tr -d '[] ' | cut -d, -f1-2)
    sset=(); [ -n "$seeds" ] && sset=(--set "sweep.seeds=[$seeds]")
    # a sweep over a real-data config reads $DM_DATA through that config's DATA_ mapping
    local base bvar fmt extra=()
    base=$(getkey <($B config "$f") sweep base | tr -d '"'); base=$(basename "$base" .cfg); bvar=${base//-/_}
    fmt=$(getkey <($B config "configs/$base.cfg") data format | tr -d '"')
    if [ -n "$fmt" ] && [ "$fmt" != synth ]; then
      declare -p "DATA_$bvar" > /dev/null 2>&1 || fail "$f sweeps configs/$base.cfg, which reads real data, and this test has no DATA_$bvar mapping"
      local dvar="DATA_$bvar[@]" ddir="DATA_DIR_$bvar"
      if [ -z "$DM_DATA" ] || [ ! -d "$DM_DATA/${!ddir}" ]; then echo "SKIP part: $f needs \$DM_DATA/${!ddir} (DM_DATA='$DM_DATA')"; continue; fi
      extra=("${!dvar}")
    fi
    t=$SECONDS
    $B sweep "$f" --set sweep.dir="$SD" "${TINY[@]}" "${extra[@]}" "${sset[@]}" > "$W/sweep_$name.log" 2>&1 || { cat "$W/sweep_$name.log"; fail "dynmm sweep $f"; }
    M=$SD/manifest.tsv
    [ -s "$M" ] && [ -s "$SD/sweep.sbatch" ] || fail "dynmm sweep $f wrote no manifest or array script in $SD"
    resolve "$SD/base.cfg.resolved" "$SD/base.cfg"
    n=$(grep -vc '^#\|^index' "$M")
    bash jobs/sweep.sbatch "$M" > "$W/sweep_$name.jobs.log" 2>&1 || { tail -40 "$W/sweep_$name.jobs.log"; fail "jobs/sweep.sbatch $M"; }
    grep -q "all $n runs of" "$W/sweep_$name.jobs.log" || fail "jobs/sweep.sbatch did not finish the $n runs of $f"
    $B report "$SD" > "$W/sweep_$name.report.log" 2>&1 || { cat "$W/sweep_$name.report.log"; fail "dynmm report $SD"; }
    got=$(chk sweep "$M" "$SD/report") || { echo "$got"; fail "sweep $f"; }
    echo "ok: $f: $got [$((SECONDS - t)) s]"
  done
}

# ---- 3. every command of README.md ------------------------------------------------------------------
STAGE_CMDS="run|ingest|synth|train-cf|align|lm|prompt|explain|stream|eval|sweep"
# README command -> MAPPED, a shell command run in $CO (SHOWN: the same for messages, TINY by name);
# returns 2 (with WHY) for an excluded one
map_cmd() {
  local c=$1 n=$2
  case "$c" in
    "make quickstart") c="jobs/quickstart.sh" ;;
    make|make\ *) WHY="make builds, installs and runs the test suite (this test runs under it)"; return 2 ;;
    sbatch\ *) WHY="sbatch: no Slurm here (tests/cli/test_slurm.sh covers the Slurm scripts)"; return 2 ;;
  esac
  c=${c//" [--set ...]"/}; c=${c//CONFIG.cfg/configs/quickstart.cfg}; c=${c//configs\/sweeps\/NAME.cfg/configs/sweeps/small.cfg}
  printf '%s' "$c" | grep -qE '\.\.\.|(^|[^A-Za-z0-9_.])[A-Z][A-Z0-9_]+([^a-z]|$)' &&
    fail "README.md line $n: cannot map '$c': a placeholder this test does not know (add it to map_cmd in $0)"
  printf '%s' "$c" | sed "s/'[^']*'//g; s/\"[^\"]*\"//g" | grep -q '[|;&<>`$(]' &&
    fail "README.md line $n: cannot map '$c': shell operators (the test appends tiny sizes to single commands)"
  if [[ "$c" == */data/* ]]; then
    printf '%s' "$c" | grep -oE '/data/[^ ]*' | grep -qv '^/data/amazon/' &&
      fail "README.md line $n: cannot map the data path of '$c' (only /data/amazon/ is mapped, in map_cmd of $0)"
    c=${c//\/data\/amazon\//$(q "$DM_DATA")/amazon-beauty/}
  fi
  c=$(printf '%s' "$c" | sed -E "s#(^|[ ])(build/)?dynmm #\1$(q "$B") #; s#^mpirun #$DM_MPIRUN #")
  SHOWN=$c
  if printf '%s' "$c" | grep -qE "/dynmm ($STAGE_CMDS)( |$)|^jobs/(quickstart\.sh|run\.sbatch|large\.sh)( |$)"; then
    c="$c $(printf '%q ' "${TINY[@]}")"; SHOWN="$SHOWN \${TINY[@]}"
  fi
  if [[ "$c" == jobs/large.sh* ]]; then c="$c $(printf '%q ' "${SIZE_large[@]}")"; SHOWN="$SHOWN \${SIZE_large[@]}"; fi
  # a stage command on a real-data config: that config's files under $DM_DATA and k-core subset, as in part 1
  local i var dvar
  if [[ "$1" != */data/* ]] && printf '%s' "$c" | grep -qE "/dynmm ($STAGE_CMDS)( |$)"; then
    for ((i = 0; i < ${#REAL[@]}; i += 2)); do
      [[ " $c " == *" ${REAL[i]} "* ]] || continue
      var=$(basename "${REAL[i]}" .cfg); var=${var//-/_}; dvar="DATA_$var[@]"
      declare -p "DATA_$var" > /dev/null 2>&1 || fail "README.md line $n: '$c' reads ${REAL[i]} and this test has no DATA_$var mapping"
      c="$c $(printf '%q ' "${!dvar}")"; SHOWN="$SHOWN \${DATA_$var[@]}"
      break
    done
  fi
  MAPPED=$c
}
# does a README command read the real data (a /data/ path, a real-data config or its run.dir)?
needs_data() {
  local i
  [[ "$1" == */data/* ]] && return 0
  for ((i = 0; i < ${#REAL[@]}; i += 2)); do [[ "$1" == *"${REAL[i]}"* || "$1" == *"${REAL[i+1]}/"* ]] && return 0; done
  return 1
}
norm() { tr -s ' \t' ' ' | sed 's/^ //; s/ $//'; }

part_readme() {
  echo "== 3. README.md"
  local f n kind cmd comment expected rc log t where note e d M nr R ids want exts ext ran=0 skipped=0 names=0
  CO=$W/checkout; rm -rf "$CO"; mkdir -p "$CO"
  ln -s "$ROOT/configs" "$CO/configs"; ln -s "$ROOT/jobs" "$CO/jobs"
  $PY "$W/readme_cmds.py" "$ROOT/README.md" > "$W/readme.tsv" || fail "README.md: extracting the commands"
  [ "$(grep -c . "$W/readme.tsv")" -gt 5 ] || { cat "$W/readme.tsv"; fail "README.md: too few commands extracted; has its format changed?"; }
  REAL=()
  for f in configs/*.cfg; do
    [ "$(basename "$f")" = reference.cfg ] && continue
    [ "$(getkey <($B config "$f") data format)" = synth ] || REAL+=("$f" "$(getkey <($B config "$f") run dir)")
  done
  while IFS=$'\x1e' read -r -u 3 n kind cmd comment expected; do
    if [ "$kind" = name ]; then names=$((names + 1)); continue; fi
    map_cmd "$cmd" "$n"
    if [ $? -eq 2 ]; then echo "not run: line $n '$cmd': $WHY"; skipped=$((skipped + 1)); continue; fi
    if needs_data "$cmd" && [ -z "$DM_DATA" ]; then echo "SKIP part: line $n '$cmd' reads the real data (no DM_DATA)"; skipped=$((skipped + 1)); continue; fi
    log=$W/readme_$n.$ran.log; t=$SECONDS
    (cd "$CO" && timeout -k 5 600 bash -c "$MAPPED" < /dev/null > "$log" 2>&1); rc=$?
    where="README.md line $n: '$cmd' (run in $CO as: $SHOWN)"
    if [[ "$expected" == *error:* ]]; then
      [ $rc -ne 0 ] || { cat "$log"; fail "$where: exit status 0, but the README shows an error"; }
    else
      [ $rc -eq 0 ] || { tail -30 "$log"; fail "$where: exit status $rc"; }
    fi
    while IFS= read -r e; do
      [ -z "$e" ] || grep -qF -- "$(printf '%s' "$e" | norm)" <(norm < "$log") || { cat "$log"; fail "$where: the output lacks the README's line '$e'"; }
    done < <(printf '%s\n' "$expected" | tr '\037' '\n')
    # what each kind of command promises
    note=""
    if [[ "$MAPPED" == *"/dynmm run "* ]]; then
      (cd "$CO" && bash -c "$(q "$B") config ${MAPPED#*/dynmm run }" > "$log.cfg" 2>&1) || { cat "$log.cfg"; fail "$where: dynmm config on its arguments"; }
      note=$(cd "$CO" && chk run "$log.cfg") || { echo "$note"; fail "$where: outputs"; }
    elif [[ "$MAPPED" == jobs/quickstart.sh* ]]; then
      resolve "$log.q1" configs/quickstart.cfg "${TINY[@]}"; resolve "$log.q2" configs/quickstart.cfg configs/quickstart-stream.cfg "${TINY[@]}"
      note=$(cd "$CO" && chk run "$log.q1" "$log.q2") || { echo "$note"; fail "$where: outputs"; }
      for d in "$(getkey "$log.q1" run dir)" "$(getkey "$log.q2" run dir)"; do
        [ -s "$CO/$d/report/index.md" ] || fail "$where: no report in $d/report/"
        e=$(latex_ok "$CO/$d/report") || { echo "$e"; fail "$where: the report of $d"; }
      done
      ls "$CO/$(getkey "$log.q1" run dir)"/report/*-llm.csv > /dev/null 2>&1 || fail "$where: no table of the LLM stage's users"
      grep -q "^Done in" "$log" || fail "$where: no closing description of what it produced"
      note="$note; reports: $e"
    elif [[ "$MAPPED" == *"/dynmm sweep "* ]]; then
      M=$CO/$(sed -n 's/.* runs in \(.*\)\/$/\1/p' "$log" | head -n 1)/manifest.tsv
      [ -s "$M" ] || { cat "$log"; fail "$where: no manifest ($M)"; }
      nr=$(grep -vc '^#\|^index' "$M")
      if [[ "$comment" =~ ^([0-9]+)\ runs ]]; then [ "${BASH_REMATCH[1]}" = "$nr" ] || fail "$where: the README says ${BASH_REMATCH[1]} runs, the manifest has $nr"; fi
      resolve "$(dirname "$M")/base.cfg.resolved" "$(dirname "$M")/base.cfg"
      note="$nr runs in the manifest"
    elif [[ "$MAPPED" == jobs/sweep.sbatch* ]]; then
      M=$CO/$(printf '%s' "$MAPPED" | awk '{print $2}')
      nr=$(grep -vc '^#\|^index' "$M")
      grep -q "all $nr runs of" "$log" || { tail -20 "$log"; fail "$where: not every run finished"; }
      note="all $nr runs finished"
    elif [[ "$MAPPED" =~ /dynmm\ report\ ([^ ]+) ]]; then
      R=$CO/${BASH_REMATCH[1]}
      if [ -f "$R/manifest.tsv" ]; then note=$(cd "$CO" && chk sweep "$R/manifest.tsv" "$R/report") || { echo "$note"; fail "$where: report"; }
      else [ -s "$R/report/index.md" ] || fail "$where: no $R/report/index.md"; note="report written"; fi
      exts="md tex csv"; command -v gnuplot > /dev/null && exts="$exts png pdf"
      for ext in $exts; do ls "$R"/report/*.$ext > /dev/null 2>&1 || fail "$where: no .$ext in $R/report/ (the README promises tables and figures)"; done
      e=$(latex_ok "$R/report") || { echo "$e"; fail "$where: the report"; }
      note="$note; $e"
    elif [[ "$MAPPED" == *"/dynmm explain "*"explain.output=-"* ]]; then
      ids=$(printf '%s' "$cmd" | sed -n "s/.*explain.user_ids=\(\[[^]]*\]\).*/\1/p"); [ -n "$ids" ] || ids=null
      note=$(chk explain "$log" "$ids") || { echo "$note"; fail "$where: explain's output"; }
    elif [[ "$MAPPED" == *"/dynmm config "*" --hash" ]]; then
      want=$(cd "$CO" && bash -c "${MAPPED% --hash}" | sha256sum | cut -c1-64)
      [ "$(head -n 1 "$log")" = "$want" ] || fail "$where: --hash is not the sha256 of the printed config"
      note="the sha256 of the printed config"
    elif [[ "$MAPPED" == *"/dynmm config "* ]]; then
      grep -q '^run: {' "$log" || fail "$where: no configuration printed"
      note="$(grep -c '^[a-z_]*: {' "$log") groups printed"
    elif [[ "$MAPPED" == *"/dynmm info "* ]]; then
      grep -q 'dynmm-' "$log" || fail "$where: no format line"
      if [[ "$MAPPED" == *--config* ]]; then grep -q '^run: {' "$log" || fail "$where: no resolved config"; fi
      note="$(head -n 1 "$log" | cut -c1-60)..."
    fi
    [ -n "$expected" ] && note="${note:+$note; }$(printf '%s' "$expected" | tr '\037' '\n' | grep -c .) expected output lines"
    echo "ok: line $n [$kind, $((SECONDS - t)) s] $cmd${note:+  -> $note}"
    ran=$((ran + 1))
  done 3< "$W/readme.tsv"
  [ $ran -gt 0 ] || fail "no README command ran"
  echo "ok: $ran README commands ran, $skipped not run (listed above), $names inline spans only name a subcommand"
}

cd "$ROOT"
for part in $STEPS; do
  case $part in 1) part_configs ;; 2) part_sweeps ;; 3) part_readme ;; *) fail "DM_CONFIGS_STEPS: unknown part '$part'" ;; esac
done
echo "ok: all in $((SECONDS - T0)) s"
