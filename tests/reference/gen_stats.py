#!/usr/bin/python3
"""gen_stats.py: SciPy 1.10 reference values for src/stats (checked by tests/unit/test_stats.c).

Writes $1/stats_cases.json. Every number the C side must reproduce comes from SciPy/NumPy:
  special     scipy.special.ndtr / ndtri / betainc / stdtr and scipy.stats.t.ppf on grids, plus the
              quantile as the root of stdtr (brentq), since t.ppf itself is only good to ~1e-9;
              when mpmath is installed, 40-digit betainc and t CDF values too (SciPy's betainc is
              good to ~1e-10 relative at large parameters)
  ttest       scipy.stats.ttest_rel
  wilcoxon    scipy.stats.wilcoxon (zero methods, continuity, alternatives, exact / approx / auto)
  perm        scipy.stats.permutation_test(..., permutation_type='samples'), exact and Monte Carlo;
              for Monte Carlo the sign vectors SciPy drew are reconstructed from the same Generator
              (and checked against SciPy's null distribution) and written for the C side to use
  bootstrap   scipy.stats.bootstrap((d,), np.mean, method='percentile' | 'BCa'); the resample
              indices SciPy drew are reconstructed the same way and written out
  holm        Holm-Bonferroni by its textbook definition (NumPy)
  effect      Cohen's d_z, Hedges' g (scipy.special.gamma), matched-pairs rank-biserial
  summary     mean, sd, sem and scipy.stats.t.interval
Non-finite numbers are written as null (NaN) or the strings "inf" / "-inf". Where SciPy gives no
usable answer for a degenerate input (NaN or an exception) the case carries "dynmm": the documented
value of src/stats/stats.h, and "scipy": what SciPy says, for the record.
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import scipy
import scipy.special as sp
from scipy import stats
from scipy.optimize import brentq

warnings.simplefilter("ignore")
try:  # optional: 40-digit values to check the C special functions beyond SciPy's own accuracy
    import mpmath as mp

    mp.mp.dps = 40
except ImportError:
    mp = None


def enc(x):
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def arr(v):
    return [enc(x) for x in np.asarray(v, dtype=float).ravel()]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    doc = {"format": "dynmm-ref-stats", "version": 1, "scipy": scipy.__version__, "numpy": np.__version__}

    # ---- special functions ----
    spc = []
    for x in list(np.linspace(-37, 9, 47)) + [-1.96, -0.5, 0.0, 1e-8, 0.3, 1.6448536269514722]:
        spc.append({"f": "norm_cdf", "x": [float(x)], "v": enc(sp.ndtr(x))})
        spc.append({"f": "norm_sf", "x": [float(x)], "v": enc(sp.ndtr(-x))})
    for p in [1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 0.001, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.425, 0.5, 0.575, 0.7,
              0.9, 0.95, 0.975, 0.999, 1 - 1e-10, 1 - 1e-15, 0.0, 1.0]:
        spc.append({"f": "norm_ppf", "x": [p], "v": enc(sp.ndtri(p))})
    for a in [0.1, 0.5, 1.0, 2.5, 10.0, 100.0, 1000.0, 50000.0]:
        for b in [0.5, 1.0, 3.0, 40.0, 12345.0]:
            for x in [1e-4, 0.1, 0.5, 0.9, 0.9999]:
                c = {"f": "betainc", "x": [a, b, x], "v": enc(sp.betainc(a, b, x))}
                if mp and max(a, b) < 100:  # (large parameters are slow in mpmath; the t CDF covers them)
                    try:
                        c["mp"] = float(mp.betainc(a, b, 0, x, regularized=True))
                    except ValueError:  # a few extreme corners do not converge in mpmath
                        pass
                spc.append(c)
    dfs = [1, 2, 2.5, 3, 5, 10, 29, 100, 999, 21999, 1e6]
    for df in dfs:
        for t in [-50, -10, -3, -1.96, -0.5, 0, 0.1, 1, 2, 4, 8, 30]:
            c = {"f": "t_cdf", "x": [float(t), df], "v": enc(sp.stdtr(df, t))}
            if mp:
                tt = mp.mpf(t)
                tail = mp.betainc(mp.mpf(df) / 2, 0.5, 0, mp.mpf(df) / (df + tt * tt), regularized=True) / 2
                c["mp"] = float(tail if t < 0 else 1 - tail)
            spc.append(c)
        for p in [1e-10, 0.001, 0.025, 0.05, 0.3, 0.5, 0.8, 0.95, 0.975, 0.995, 0.9999]:
            # scipy.stats.t.ppf (cephes stdtrit) is only good to ~1e-9 relative; "inv" is the root of
            # stdtr(df, t) = p, which is what the quantile is
            v = stats.t.ppf(p, df)
            inv = 0.0 if p == 0.5 else brentq(lambda t: sp.stdtr(df, t) - p, v - 1e-6 * abs(v) - 1e-9,
                                                v + 1e-6 * abs(v) + 1e-9, xtol=1e-300, rtol=8.9e-16, maxiter=500)
            spc.append({"f": "t_ppf", "x": [p, df], "v": enc(v), "inv": enc(inv)})
    doc["special"] = spc

    # ---- data sets of paired differences ----
    sets = []

    def add(name, a, b=None):
        sets.append((name, np.asarray(a, float), None if b is None else np.asarray(b, float)))

    add("n1", [0.7])
    add("n2", [0.5, -0.25])
    add("all-zero-5", [0.0] * 5)
    add("all-zero-60", [0.0] * 60)
    add("constant", [0.125] * 7)
    add("corn", [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75])  # SciPy's docstring data
    for n in [3, 5, 8, 12, 20, 33, 50]:
        add(f"normal-{n}", rng.normal(0.3, 1.0, n))
    add("ties-10", [1, 1, -1, 2, 2, 2, -3, 4, 4, 0.5])
    add("ties-zeros-12", [1, 0, 1, -1, 2, 0, 2, 2, -3, 4, 0, 0.5])
    add("zeros-9", [0.2, 0.0, -0.4, 1.1, 0.0, 0.7, -0.05, 0.33, 0.9])
    add("normal-51", rng.normal(0.1, 1.0, 51))
    add("normal-300", rng.normal(-0.05, 1.0, 300))
    # per-user metrics of two systems: Hit@10 (0/1) and NDCG@10 (few distinct values)
    u = 2000
    ra = rng.integers(1, 60, u)
    rb = np.maximum(1, ra + rng.integers(-6, 5, u))
    add("hit10-users", (ra <= 10).astype(float), (rb <= 10).astype(float))
    nd = lambda r: np.where(r <= 10, 1.0 / np.log2(r + 1.0), 0.0)
    add("ndcg10-users", nd(ra), nd(rb))
    add("mrr-users", 1.0 / ra, 1.0 / rb)
    seeds_a = np.array([0.0712, 0.0698, 0.0731, 0.0705, 0.0720])
    add("seeds-5", seeds_a, seeds_a - rng.normal(0.002, 0.001, 5))

    # every data set is written once; cases name it
    doc["sets"] = {name: {"a": arr(a), "b": None if b is None else arr(b)} for name, a, b in sets}


    # ---- t-test ----
    tt = []
    for name, a, b in sets:
        for alt in ["two-sided", "greater", "less"]:
            r = stats.ttest_rel(a, b if b is not None else np.zeros_like(a), alternative=alt)
            c = {"set": name, "alt": alt, "stat": enc(r.statistic), "p": enc(r.pvalue)}
            d = a - (b if b is not None else 0)
            if len(d) < 2:
                c["dynmm"] = {"stat": None, "p": None, "flags": ["TOO_FEW"]}
            elif np.all(d == 0):
                c["dynmm"] = {"stat": 0.0, "p": 1.0, "flags": ["NO_DIFF"]}
            elif np.all(d == d[0]):
                c["flags"] = ["ZERO_VAR"]
            tt.append(c)
    doc["ttest"] = tt

    # ---- Wilcoxon ----
    wc = []
    for name, a, b in sets:
        d = a - (b if b is not None else 0)
        n, nz = len(d), int(np.sum(d == 0))
        nzd = np.abs(d[d != 0])
        tied = len(np.unique(nzd)) < len(nzd)
        for zm in ["wilcox", "pratt", "zsplit"]:
            for corr in [False, True]:
                for alt in ["two-sided", "greater", "less"]:
                    for method in ["auto", "exact", "approx"]:
                        if corr and method == "exact":
                            continue
                        # the method SciPy is asked for so that it computes what ours does
                        sm = method
                        if method == "auto" and tied and nz == 0 and n <= 50:
                            sm = "approx"  # ours does not use the exact table with ties
                        c = {"set": name, "zero_method": zm, "correction": corr, "alt": alt,
                             "method": method, "scipy_method": sm}
                        try:
                            r = stats.wilcoxon(a, b, zero_method=zm, correction=corr, alternative=alt, method=sm)
                            c.update({"stat": enc(r.statistic), "p": enc(r.pvalue),
                                      "z": enc(getattr(r, "zstatistic", float("nan")))})
                        except ValueError as e:
                            c.update({"stat": None, "p": None, "z": None, "scipy_error": str(e)})
                        if n > 0 and nz == n and zm != "zsplit":
                            c["dynmm"] = {"stat": 0.0, "p": 1.0, "flags": ["NO_DIFF"]}
                        # effect: matched-pairs rank-biserial from the ranks the test used
                        dd = d[d != 0] if (zm == "wilcox" and (sm == "approx" or nz > 0)) else d
                        if len(dd):
                            rk = stats.rankdata(np.abs(dd))
                            rp, rm = rk[dd > 0].sum(), rk[dd < 0].sum()
                            if zm == "zsplit":
                                rp += rk[dd == 0].sum() / 2
                                rm += rk[dd == 0].sum() / 2
                            c["effect"] = enc((rp - rm) / (rp + rm) if rp + rm > 0 else 0.0)
                        wc.append(c)
    doc["wilcoxon"] = wc

    # ---- paired randomisation ----
    stat = lambda x, y, axis: np.mean(x - y, axis=axis)
    pm, signs_of = [], {}
    for name, a, b in sets:
        bb = b if b is not None else np.zeros_like(a)
        n = len(a)
        if n > 400:
            continue
        mc_ok = 12 <= n <= 60 or name == "normal-300"
        for alt in ["two-sided", "greater", "less"]:
            if n == 1:  # SciPy refuses one pair; enumerate the two sign vectors directly
                d0 = float(a[0] - bb[0])
                pg, pl = (1 + (-d0 >= d0)) / 2, (1 + (-d0 <= d0)) / 2
                p = {"greater": pg, "less": pl, "two-sided": min(1.0, 2 * min(pg, pl))}[alt]
                pm.append({"set": name, "alt": alt, "permutations": 2, "exact": True,
                           "stat": d0, "p": None, "dynmm": {"stat": d0, "p": p, "flags": []},
                           "scipy_error": "each sample must contain two or more observations"})
            elif n <= 12:  # exact: all 2^n sign vectors (SciPy: n_resamples >= 2^n)
                r = stats.permutation_test((a, bb), stat, permutation_type="samples", alternative=alt,
                                           n_resamples=2 ** n)
                pm.append({"set": name, "alt": alt, "permutations": 2 ** n, "exact": True,
                           "stat": enc(r.statistic), "p": enc(r.pvalue)})
            if mc_ok:  # Monte Carlo with SciPy's own draws
                P, seed = 999, 77 + n
                r = stats.permutation_test((a, bb), stat, permutation_type="samples", alternative=alt,
                                           n_resamples=P, random_state=np.random.default_rng(seed))
                perm = np.random.default_rng(seed).permuted(np.tile(np.arange(2), (P, n, 1)), axis=-1)
                signs = np.where(perm[..., 0] == 0, 1, -1)
                null = np.mean(signs * (a - bb), axis=-1)
                assert np.allclose(null, r.null_distribution, rtol=0, atol=1e-12), name
                signs_of[name] = "".join("+" if s > 0 else "-" for s in signs.ravel())
                pm.append({"set": name, "alt": alt, "permutations": P, "exact": False, "signs": name,
                           "stat": enc(r.statistic), "p": enc(r.pvalue)})
    doc["perm"] = pm
    doc["signs"] = signs_of  # (permutations, n) row-major as a string: '+' keeps a pair, '-' swaps it

    # ---- bootstrap ----
    bs, idx_of = [], {}
    for name, a, b in sets:
        d = a - (b if b is not None else 0)
        n = len(d)
        if n < 2 or n > 60:
            continue
        for method in ["percentile", "BCa"]:
            for level in [0.95, 0.9]:
                B, seed = 999, 5 + n
                try:
                    r = stats.bootstrap((d,), np.mean, n_resamples=B, method=method, confidence_level=level,
                                        random_state=np.random.default_rng(seed))
                    lo, hi, se = r.confidence_interval.low, r.confidence_interval.high, r.standard_error
                    dist = r.bootstrap_distribution
                except ValueError:
                    continue
                idx = np.random.default_rng(seed).integers(0, n, (B, n))
                assert np.array_equal(np.mean(d[idx], axis=-1), dist), name
                idx_of[name] = [int(i) for i in idx.ravel()]
                c = {"set": name, "method": method.lower(), "level": level, "resamples": B, "idx": name,
                     "lo": enc(lo), "hi": enc(hi), "se": enc(se)}
                if np.all(d == d[0]) and method == "BCa":
                    c["dynmm"] = {"lo": float(d[0]), "hi": float(d[0]), "flags": ["DEGENERATE"]}
                bs.append(c)
    doc["bootstrap"] = bs
    doc["idx"] = idx_of  # (resamples, n) row-major resample indices

    # ---- Holm ----
    def holm(p):
        p = np.asarray(p, float)
        ok = ~np.isnan(p)
        q = p[ok]
        m = len(q)
        o = np.argsort(q, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[o]))
        res = np.full(len(p), np.nan)
        tmp = np.empty(m)
        tmp[o] = adj
        res[ok] = tmp
        return res

    hl = []
    for p in [[0.01, 0.04, 0.03, 0.005], [0.5], [0.02, 0.02, 0.02], [0.001, float("nan"), 0.2, 0.04, 1.0],
              list(rng.uniform(0, 0.1, 40)), [0.0, 0.0, 1.0]]:
        hl.append({"p": arr(p), "adj": arr(holm(p))})
    doc["holm"] = hl

    # ---- effect sizes and summaries ----
    ef, sm = [], []
    for name, a, b in sets:
        d = a - (b if b is not None else 0)
        n = len(d)
        if n >= 2 and np.std(d) > 0:
            dz = np.mean(d) / np.std(d, ddof=1)
            df = n - 1
            g = dz * sp.gamma(df / 2) / (math.sqrt(df / 2) * sp.gamma((df - 1) / 2)) if 2 < n < 300 else None
            ef.append({"set": name, "dz": enc(dz), "g": enc(g)})
        if n >= 2 and np.std(a) > 0:
            for level in [0.95, 0.99]:
                lo, hi = stats.t.interval(level, n - 1, loc=np.mean(a), scale=stats.sem(a))
                sm.append({"set": name, "level": level, "mean": enc(np.mean(a)),
                           "sd": enc(np.std(a, ddof=1)), "se": enc(stats.sem(a)), "lo": enc(lo), "hi": enc(hi)})
    doc["effect"] = ef
    doc["summary"] = sm

    with open(os.path.join(out, "stats_cases.json"), "w") as f:
        json.dump(doc, f)
    print(f"stats reference (scipy {scipy.__version__}): {len(spc)} special values, {len(tt)} t-tests, "
          f"{len(wc)} Wilcoxon, {len(pm)} randomisation, {len(bs)} bootstrap, {len(hl)} Holm, "
          f"{len(ef)} effect sizes, {len(sm)} summaries")


if __name__ == "__main__":
    main()
