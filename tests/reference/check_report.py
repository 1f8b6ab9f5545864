#!/usr/bin/env python3
"""Reference checks of `dynmm report` (SciPy 1.10, NumPy, h5py).

  check_report.py make DYNMM OUT      writes results files with planted effects:
      OUT/single/results.h5             one configuration, one seed: pop, ease, sasrec, sasrec@drop_*
                                        variants, protocols full and uni99, NaN rows for unscored
                                        users, a points group 'latency' (prompt_len, seconds)
      OUT/sweep/h<H>_s<S>/results.h5    sasrec.hidden in {32, 64} x seeds {1, 2, 3}: pop, sasrec
                                        (one file without 'mean'/'users' attributes)
  check_report.py same A.h5 B.h5
      every 2-D dataset (per-user metrics) of two results files is identical (NaN where NaN)
  check_report.py covers REPORT/TABLE.csv MODEL CONFIGS SEEDS
      the table has MODEL in CONFIGS configurations, each with SEEDS seeds
  check_report.py check OUT REPORT TABLE...
      every cell of REPORT/TABLE.csv against the files: mean and sd over seeds, the test behind the
      mark (Wilcoxon signed-rank across users, normal approximation, for one seed; paired t-test over
      per-seed means for several), Holm over the table, marks, best / second best; the per-seed
      tests of REPORT/TABLE_tests.csv; the Markdown and LaTeX numbers, bold, underline and marks.
"""
import csv
import os
import re
import subprocess
import sys

import h5py
import numpy as np
from scipy import stats

KS = [1, 5, 10, 20]
COLS = ["hit@%d" % k for k in KS] + ["ndcg@%d" % k for k in KS] + ["recall@%d" % k for k in KS] + ["mrr"]
N_USERS = 240


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def strtab(g, name, strings):
    b = [s.encode() for s in strings]
    off = np.zeros(len(b) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(x) for x in b])
    g.create_dataset(name + "/chars", data=np.frombuffer(b"".join(b), dtype=np.uint8))
    g.create_dataset(name + "/offsets", data=off)


def user_rows(rng, quality, nan_rows):
    """Per-user metric rows: a latent rank per user, metrics derived from it (ties at random)."""
    rank = np.maximum(1, np.round(rng.exponential(40.0 / quality, N_USERS))).astype(float)
    rows = np.zeros((N_USERS, len(COLS)))
    for j, k in enumerate(KS):
        hit = (rank <= k).astype(float)
        # a few expected-tie fractions, as `eval.ties = expected` writes
        frac = rng.random(N_USERS) < 0.05
        hit[frac] = np.round(rng.random(frac.sum()), 3)
        rows[:, j] = hit
        rows[:, 4 + j] = np.where(rank <= k, 1.0 / np.log2(1 + rank), 0.0)
        rows[:, 8 + j] = hit
    rows[:, 12] = 1.0 / rank
    rows[nan_rows, :] = np.nan
    return rows


# display labels `dynmm eval` stores with each model's rows (stages/models.c)
LABELS = {"pop": "Pop", "ease": "EASE", "sasrec": "SASRec", "bpr": "BPR-MF"}


def write_results(path, cfg_text, seed, models, protocols, rng_seed, qualities, means=True, latency=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(rng_seed)
    nan_rows = rng.choice(N_USERS, 12, replace=False)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("dynmm-results")
        f.attrs["format_version"] = 1
        f.attrs["stage"] = np.bytes_("eval")
        f.attrs["config"] = np.bytes_(cfg_text)
        f.attrs["seed"] = seed
        strtab(f, "columns", COLS)
        for p in protocols:
            for m in models:
                q = qualities[m] * (1.0 if p == "full" else 3.0)
                x = user_rows(rng, q, nan_rows)
                d = f.create_dataset("test/%s/%s" % (p, m), data=x)
                if m in LABELS:
                    d.attrs["label"] = np.bytes_(LABELS[m])  # as `dynmm eval` stores from its model registry
                if means:
                    d.attrs["mean"] = np.nanmean(x, axis=0)
                    d.attrs["users"] = int(np.sum(~np.isnan(x[:, 0])))
        if latency:
            # a training curve: losses and seconds, two quantities on two axes
            c = f.create_dataset("train/llm/curve", data=np.array([[1, 2.3, 2.1, 4.0], [2, 1.9, 1.7, 4.2], [3, 1.6, 1.5, 4.1]]))
            c.attrs["columns"] = np.bytes_("epoch, loss, listwise, seconds")
            # latency at one prompt length: bars, not a curve
            o = f.create_dataset("one/latency", data=np.array([[10.0, 0.8, 0.9, 2.4]]))
            o.attrs["columns"] = np.bytes_("prompt tokens L, llm median seconds per batch, llm p95 seconds per batch, "
                                           "llm_explain median seconds per batch")
            o.attrs["batch_users"] = 16
            o.attrs["candidates"] = 20
            g = f.create_group("latency")
            strtab(g, "columns", ["prompt_len", "seconds"])
            L = np.array([10.0, 20.0, 50.0, 100.0, 200.0])
            g.create_dataset("base", data=np.stack([L, 0.5 + 0.008 * L], axis=1))
            g.create_dataset("dynamic", data=np.stack([L, 0.55 + 0.0085 * L], axis=1))


def config_text(dynmm, sets):
    args = [dynmm, "config"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def make(dynmm, out):
    models = ["pop", "ease", "sasrec", "sasrec@drop_visual_0", "sasrec@drop_visual_50", "sasrec@drop_visual_100",
              "sasrec@drop_text_0", "sasrec@drop_text_100"]
    q = {"pop": 0.5, "ease": 1.0, "sasrec": 1.3, "sasrec@drop_visual_0": 1.3, "sasrec@drop_visual_50": 1.2,
         "sasrec@drop_visual_100": 1.05, "sasrec@drop_text_0": 1.3, "sasrec@drop_text_100": 0.8}
    cfg = config_text(dynmm, ["run.dir=%s/single" % out, "run.seed=7", "eval.models=[%s]" % ",".join(models),
                              "eval.protocols=[full,uni99]", "eval.splits=[test]"])
    write_results(out + "/single/results.h5", cfg, 7, models, ["full", "uni99"], 11, q, latency=True)
    # the stream stage's file beside it: metrics per window per variant, and per-user (users, W) data
    W = 6
    with h5py.File(out + "/single/stream.h5", "w") as f:
        f.attrs["format"] = np.bytes_("dynmm-stream")
        f.attrs["format_version"] = 1
        strtab(f, "columns", COLS)
        for i, v in enumerate(["adapter", "static"]):
            f.create_dataset("stream/%s/mean" % v, data=np.linspace(0.1, 0.3 + 0.1 * i, W)[:, None] * np.ones((1, len(COLS))))
            f.create_dataset("stream/%s/hit10" % v, data=np.zeros((N_USERS, W), dtype=np.float32))
    qs = {"pop": 0.6, "sasrec": None}
    for h in (32, 64):
        for s in (1, 2, 3):
            d = "%s/sweep/h%d_s%d" % (out, h, s)
            cfg = config_text(dynmm, ["run.dir=" + d, "run.seed=%d" % s, "sasrec.hidden=%d" % h,
                                      "eval.models=[pop,sasrec]", "eval.protocols=[full]", "eval.splits=[test]"])
            # pop depends on the seed only; sasrec gets better with h
            qq = dict(qs, sasrec=0.9 if h == 32 else 1.4)
            rng = np.random.default_rng(100 + s)
            pop_seed = int(rng.integers(1 << 30))
            os.makedirs(d, exist_ok=True)
            rng2 = np.random.default_rng(1000 * h + s)
            with h5py.File(d + "/results.h5", "w") as f:
                f.attrs["format"] = np.bytes_("dynmm-results")
                f.attrs["format_version"] = 1
                f.attrs["config"] = np.bytes_(cfg)
                f.attrs["seed"] = s
                strtab(f, "columns", COLS)
                nan_rows = np.random.default_rng(s).choice(N_USERS, 5, replace=False)
                for m in ("pop", "sasrec"):
                    x = user_rows(np.random.default_rng(pop_seed) if m == "pop" else rng2, qq[m], nan_rows)
                    ds = f.create_dataset("test/full/" + m, data=x)
                    ds.attrs["label"] = np.bytes_(LABELS[m])
                    if not (h == 64 and s == 2):
                        ds.attrs["mean"] = np.nanmean(x, axis=0)
                        ds.attrs["users"] = int(np.sum(~np.isnan(x[:, 0])))
    print("wrote %s/single and %s/sweep (6 runs)" % (out, out))


# ---- checking ------------------------------------------------------------------------------

def load_runs(out):
    """Every results.h5 under out with its 2-D datasets; a prompt.h5 beside it adds its per-user rows
    as protocol "<protocol>-llm" (as `dynmm report` names them)."""
    runs = []
    for root, _, files in os.walk(out):
        if "results.h5" in files:
            p = os.path.join(root, "results.h5")
            with h5py.File(p, "r") as f:
                cfg = f.attrs["config"]
                cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
                m = re.search(r"sasrec: \{[^}]*?\bhidden = (\d+);", cfg)
                seed = int(f.attrs["seed"])
                data = {}
                f.visititems(lambda n, o: data.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)
            if "prompt.h5" in files:
                with h5py.File(os.path.join(root, "prompt.h5"), "r") as f:
                    def llm(n, o):
                        parts = n.split("/")
                        if isinstance(o, h5py.Dataset) and o.ndim == 2 and len(parts) == 3 and parts[0] in ("test", "valid"):
                            data["%s/%s-llm/%s" % tuple(parts)] = o[...]
                    f.visititems(llm)
            runs.append({"path": p, "hidden": m.group(1), "seed": seed, "data": data})
    return runs


def expected_warning(scope, n, nz, diffs):
    """The warning `dynmm report` writes for a test: too few seeds, users, or non-zero differences."""
    why = []
    if scope == "seeds" and n < 5:
        why.append("%d seeds (a t-test with %d degree%s of freedom)" % (n, n - 1, "" if n - 1 == 1 else "s"))
    if scope != "seeds" and n < 10:
        why.append("only %d users" % n)
    if nz == 0:
        why.append("every difference is zero")
    elif scope == "seeds" and len(set(diffs)) == 1:
        why.append("every difference is the same")
    elif (nz < n if scope == "seeds" else nz < 10):
        why.append("ties: %d of %d differences non-zero" % (nz, n))
    return "; ".join(why)


def holm(p):
    p = np.asarray(p, dtype=float)
    idx = [i for i in range(len(p)) if not np.isnan(p[i])]
    order = sorted(idx, key=lambda i: p[i])
    adj = np.full(len(p), np.nan)
    run = 0.0
    for j, i in enumerate(order):
        run = max(run, min(1.0, (len(order) - j) * p[i]))
        adj[i] = run
    return adj


def parse_baseline(b):
    """'sasrec' or 'sasrec[sasrec.hidden=32]' -> (model, hidden or None)"""
    m = re.match(r"([^\[]+)(?:\[sasrec\.hidden=(\d+)\])?$", b)
    return m.group(1), m.group(2)


def base_of(runs, run, hidden):
    if not hidden or run["hidden"] == hidden:
        return run
    return [x for x in runs if x["hidden"] == hidden and x["seed"] == run["seed"]][0]


def close(a, b, tol=1e-9):
    if a == "" or b is None or (isinstance(b, float) and np.isnan(b)):
        return a == "" and (b is None or np.isnan(b))
    return abs(float(a) - b) <= tol * max(1.0, abs(b))


def check(out, rep, tables):
    runs = load_runs(out)
    ncheck = 0
    for table in tables:
        rows = list(csv.DictReader(open(os.path.join(rep, table + ".csv"))))
        if not rows:
            fail(table + ".csv is empty")
        used_p = []
        nwarn = 0
        for r in rows:
            key = "test/%s/%s" % (r["protocol"], r["model"])
            h = r.get("sasrec.hidden", "*")
            sel = [x for x in runs if key in x["data"] and (h in ("*", None) or x["hidden"] == h)]
            if h == "*" and "sasrec.hidden" in r:
                sel = [x for x in sel if x["hidden"] == "32"]
            sel.sort(key=lambda x: x["seed"])
            col = COLS.index(r["metric"])
            means = np.array([np.nanmean(x["data"][key][:, col]) for x in sel])
            if int(r["seeds"]) != len(means):
                fail("%s %s %s: %s seeds, expected %d" % (table, r["model"], r["metric"], r["seeds"], len(means)))
            if not close(r["mean"], float(np.mean(means))):
                fail("%s %s %s mean %s, expected %.10g" % (table, r["model"], r["metric"], r["mean"], np.mean(means)))
            if len(means) > 1 and not close(r["std"], float(np.std(means, ddof=1))):
                fail("%s %s %s std %s, expected %.10g" % (table, r["model"], r["metric"], r["std"], np.std(means, ddof=1)))
            ncheck += 1
            # the test behind the mark
            expect_p = np.nan
            bmodel, bh = parse_baseline(r["baseline"])
            if r["p"] != "":
                bkey = "test/%s/%s" % (r["protocol"], bmodel)
                bsel = [base_of(runs, x, bh) for x in sel]
                if len(sel) == 1:
                    a, b = sel[0]["data"][key][:, col], bsel[0]["data"][bkey][:, col]
                    ok = ~np.isnan(a) & ~np.isnan(b)
                    expect_p = stats.wilcoxon(a[ok], b[ok], zero_method="wilcox", correction=False, method="approx").pvalue
                    want_w = expected_warning("users", int(ok.sum()), int(np.sum(a[ok] != b[ok])), None)
                    if r["test"] != "wilcoxon/users":
                        fail("%s: test %s, expected wilcoxon/users" % (table, r["test"]))
                else:
                    bm = np.array([np.nanmean(x["data"][bkey][:, col]) for x in bsel])
                    expect_p = stats.ttest_rel(means, bm).pvalue
                    want_w = expected_warning("seeds", len(means), int(np.sum(means != bm)), list(means - bm))
                    if r["test"] != "ttest/seeds":
                        fail("%s: test %s, expected ttest/seeds" % (table, r["test"]))
                if not close(r["p"], float(expect_p), 1e-6):
                    fail("%s %s %s %s: p %s, SciPy %.10g" % (table, r["model"], r.get("sasrec.hidden", ""), r["metric"], r["p"], expect_p))
                if r["warning"] != want_w:
                    fail("%s %s %s: warning '%s', expected '%s'" % (table, r["model"], r["metric"], r["warning"], want_w))
                nwarn += want_w != ""
            elif r["warning"]:
                fail("%s %s %s: a warning '%s' without a test" % (table, r["model"], r["metric"], r["warning"]))
            used_p.append(float(r["p"]) if r["p"] != "" else np.nan)
        # the baseline is a model of this table, and every mark-deciding test is in the tests file
        for bl in {r["baseline"] for r in rows}:
            if parse_baseline(bl)[0] not in {r["model"] for r in rows}:
                fail("%s: the baseline %s has no row in the table" % (table, bl))
        tests = list(csv.DictReader(open(os.path.join(rep, table + "_tests.csv"))))
        for r in rows:
            if r["p"] == "":
                continue
            hit = [t for t in tests if t["model"] == r["model"] and t["metric"] == r["metric"] and t["protocol"] == r["protocol"]
                   and t["marks"] == "1" and (r["config"] in ("*", t["config"]))]
            if len(hit) != 1 or not close(hit[0]["p"], float(r["p"])) or hit[0]["warning"] != r["warning"]:
                fail("%s %s %s: the mark-deciding test is not in %s_tests.csv once with its p and warning" % (table, r["model"], r["metric"], table))
        if nwarn and ("Caution: %d of the" % nwarn) not in open(os.path.join(rep, table + ".md")).read():
            fail("%s: %d weak tests, and the legend does not say so" % (table, nwarn))
        adj = holm(used_p)
        nmarks = 0
        for r, pa in zip(rows, adj):
            if not close(r["p_adj"], pa, 1e-6):
                fail("%s %s %s: Holm p %s, expected %.10g" % (table, r["model"], r["metric"], r["p_adj"], pa))
            mark = ""
            if not np.isnan(pa) and pa < 0.05:
                bmodel, bh = parse_baseline(r["baseline"])
                want_h = (bh,) if bh else ("*", r.get("sasrec.hidden"))
                base = [x for x in rows if x["model"] == bmodel and x["metric"] == r["metric"] and x["protocol"] == r["protocol"]
                        and x.get("sasrec.hidden") in want_h][0]
                mark = "better" if float(r["mean"]) > float(base["mean"]) else "worse"
            if r["mark"] != mark:
                fail("%s %s %s: mark '%s', expected '%s' (Holm p %.3g)" % (table, r["model"], r["metric"], r["mark"], mark, pa))
            nmarks += mark != ""
        # best / second best per column, on the 4-digit numbers
        for (p, m) in {(r["protocol"], r["metric"]) for r in rows}:
            cells = [r for r in rows if r["protocol"] == p and r["metric"] == m]
            shown = sorted({round(float(r["mean"]), 4) for r in cells}, reverse=True)
            for r in cells:
                v = round(float(r["mean"]), 4)
                want = 1 if v == shown[0] else (2 if len(shown) > 1 and v == shown[1] else 0)
                if int(r["best"]) != want:
                    fail("%s %s %s: best %s, expected %d" % (table, r["model"], m, r["best"], want))
        # Markdown and LaTeX carry the same numbers and marks
        md = open(os.path.join(rep, table + ".md")).read()
        tex = open(os.path.join(rep, table + ".tex")).read()
        for r in rows:
            s = "%.4f" % float(r["mean"])
            if s not in md or s not in tex:
                fail("%s: %s (%s %s) missing from the Markdown or LaTeX" % (table, s, r["model"], r["metric"]))
            if r["best"] == "1" and ("\\textbf{%s}" % s not in tex or "**%s**" % s not in md):
                fail("%s: best %s not bold" % (table, s))
            if r["best"] == "2" and "\\underline{%s}" % s not in tex:
                fail("%s: second best %s not underlined" % (table, s))
        nd = tex.count("\\rlap{$^{\\dagger}$}") + tex.count("\\rlap{$^{\\ddagger}$}")
        nm = md.count("†") + md.count("‡") - (2 if "† / ‡" in md else 0)
        if nd != nmarks or nm != nmarks:
            fail("%s: %d marks in LaTeX, %d in Markdown, expected %d" % (table, nd, nm, nmarks))
        if any(r["p"] != "" for r in rows) != ("† / ‡" in md):
            fail("%s: the significance legend is %s" % (table, "missing" if "† / ‡" not in md else "there without tests"))
        # per-seed user-level tests in the tests file
        for t in csv.DictReader(open(os.path.join(rep, table + "_tests.csv"))):
            if t["scope"] != "users":
                continue
            h = t["config"]
            hh = re.search(r"hidden=(\d+)", h)
            sel = [x for x in runs if x["seed"] == int(t["seed"]) and (not hh or x["hidden"] == hh.group(1))
                   and "test/%s/%s" % (t["protocol"], t["model"]) in x["data"]]
            col = COLS.index(t["metric"])
            bmodel, bh = parse_baseline(t["baseline"])
            a = sel[0]["data"]["test/%s/%s" % (t["protocol"], t["model"])][:, col]
            b = base_of(runs, sel[0], bh)["data"]["test/%s/%s" % (t["protocol"], bmodel)][:, col]
            ok = ~np.isnan(a) & ~np.isnan(b)
            pw = stats.wilcoxon(a[ok], b[ok], zero_method="wilcox", correction=False, method="approx").pvalue
            if int(t["n"]) != ok.sum() or not close(t["p"], float(pw), 1e-6) or not close(t["diff"], float(np.mean(a[ok] - b[ok]))):
                fail("%s tests: %s seed %s %s: n %s p %s diff %s; SciPy n %d p %.10g" % (table, t["model"], t["seed"], t["metric"],
                                                                                    t["n"], t["p"], t["diff"], ok.sum(), pw))
            nz = int(np.sum(a[ok] != b[ok]))
            want_w = expected_warning("users", int(ok.sum()), nz, None)
            if int(t["nonzero"]) != nz or t["warning"] != want_w:
                fail("%s tests: %s seed %s %s: nonzero %s warning '%s'; expected %d, '%s'" % (table, t["model"], t["seed"], t["metric"],
                                                                                         t["nonzero"], t["warning"], nz, want_w))
            ncheck += 1
        print("ok: %s: %d cells, %d marks (Holm over %d tests) agree with NumPy/SciPy" % (table, len(rows), nmarks,
                                                                                      int(np.sum(~np.isnan(used_p)))))
        print("ok: %s: %d of its tests carry a warning, as the data say" % (table, nwarn))
    print("ok: %d values checked" % ncheck)


def same(a, b):
    da, db = {}, {}
    for path, d in ((a, da), (b, db)):
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: d.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)
    if sorted(da) != sorted(db) or not da:
        fail("%s and %s hold different datasets: %s vs %s" % (a, b, sorted(da), sorted(db)))
    for k in da:
        if da[k].shape != db[k].shape or not np.array_equal(da[k], db[k], equal_nan=True):
            diff = np.nanmax(np.abs(da[k] - db[k])) if da[k].shape == db[k].shape else float("nan")
            fail("%s differs between %s and %s (max |diff| %g)" % (k, a, b, diff))
    print("ok: %d datasets identical" % len(da))


def covers(table, model, nconf, nseeds):
    rows = [r for r in csv.DictReader(open(table)) if r["model"] == model]
    confs = {r["config"] for r in rows}
    if len(confs) != int(nconf) or any(r["seeds"] != nseeds for r in rows):
        fail("%s: %s in %d configurations with seeds %s; expected %s x %s" % (table, model, len(confs), sorted({r["seeds"] for r in rows}), nconf, nseeds))
    print("ok: %s covers %s configurations x %s seeds of %s" % (table, nconf, nseeds, model))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "same":
        same(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "covers":
        covers(*sys.argv[2:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        print(__doc__)
        sys.exit(2)
