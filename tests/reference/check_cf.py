#!/usr/bin/env python3
"""Reference checks of train-cf / eval outputs.

  check_cf.py ease DATASET.h5 CF.h5 [split]      /ease/B against NumPy: B = I - P diag(1/diag P),
                                                 P = (X^T X + lambda I)^-1 from the training split
  check_cf.py close A.h5 B.h5 TOL GROUP...        datasets under GROUP equal within TOL (max abs diff)
  check_cf.py trained A.h5 B.h5 LRKEY GROUP...   weights trained with Adam at the learning rate LRKEY of
                                                 A's stored config: within lr/20 (tolerance.py says why)
  check_cf.py equal A.h5 B.h5 GROUP...            bitwise equal
  check_cf.py rows A.h5 B.h5 TOL FRAC GROUP...    per-user metric rows of float models: rows agree within
                                                 TOL except at most FRAC of them (users whose candidates'
                                                 scores tie within the rounding differences of the two
                                                 runs change rank), and every column mean within FRAC
  check_cf.py results RESULTS.h5 DATASET.h5       per-user rows: pop full-ranking Hit@K recomputed from
                                                 counts with ties at their expected rank, column means
  check_cf.py beats RESULTS.h5 NAME LABEL MARGIN  model NAME's test full-ranking NDCG@10 above
                                                 popularity's by MARGIN, its rows labelled LABEL

Imported by the command-line tests of trained models: recomputed(...) and train_matrix(...) (below).
"""
import sys

import h5py
import numpy as np

from tolerance import adam_tol


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def roles(f, split="loo"):
    return f["split/" + split][...]


def train_matrix(ds, split="loo"):
    """The users x items 0/1 matrix of the training interactions (role 0) of dataset file ds."""
    with h5py.File(ds, "r") as f:
        off, item = f["users/offsets"][...], f["inter/item"][...]
        r = roles(f, split)
        n = int(f.attrs["n_items"])
    X = np.zeros((len(off) - 1, n))
    for u in range(len(off) - 1):
        for j in range(off[u], off[u + 1]):
            if r[j] == 0:
                X[u, item[j]] = 1.0
    return X


def ease(ds, cf, split="loo"):
    X = train_matrix(ds, split)
    n = X.shape[1]
    with h5py.File(cf, "r") as f:
        lam = float(f["ease"].attrs["lambda"])
        B = f["ease/B"][...].astype(np.float64)
    G = X.T @ X + lam * np.eye(n)
    P = np.linalg.inv(G)
    R = -P / np.diag(P)[None, :]
    np.fill_diagonal(R, 0.0)
    err = np.abs(B - R).max()
    scale = np.abs(R).max()
    print("ease: %d items, lambda %g, max |B - B_numpy| = %.3g (max |B| %.3g)" % (n, lam, err, scale))
    if err > 1e-5 * max(1.0, scale) + 1e-6:
        fail("EASE differs from NumPy")


def walk(f, groups):
    out = {}
    for g in groups:
        if isinstance(f[g], h5py.Dataset):
            out[g] = f[g][...]
            continue
        f[g].visit(lambda k: out.__setitem__(g + "/" + k, f[g + "/" + k][...]) if isinstance(f[g + "/" + k], h5py.Dataset) else None)
    return out


def close(a, b, tol, groups):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = walk(fa, groups), walk(fb, groups)
    if sorted(da) != sorted(db):
        fail("different datasets: %s" % sorted(set(da) ^ set(db)))
    worst = 0.0
    for k in da:
        x, y = da[k].astype(np.float64), db[k].astype(np.float64)
        if x.shape != y.shape:
            fail("%s: shapes %s vs %s" % (k, x.shape, y.shape))
        both = np.isnan(x) & np.isnan(y)
        d = np.where(both, 0.0, np.abs(x - y))
        m = float(np.nanmax(d)) if d.size else 0.0
        if np.isnan(d).any():
            fail("%s: NaN in one file only" % k)
        worst = max(worst, m)
        if m > tol:
            fail("%s differs by %.3g > %g" % (k, m, tol))
    print("close: %d datasets within %g (max difference %.3g)" % (len(da), tol, worst))
    return worst


def trained(a, b, lr_key, groups):
    with h5py.File(a, "r") as fa:
        tol, lr = adam_tol(fa, lr_key)
    worst = close(a, b, tol, groups)
    print("trained: %s = %g, tolerance lr/20; the largest difference is %.2g of lr" % (lr_key, lr, worst / lr))


def rows(a, b, tol, frac, groups):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = walk(fa, groups), walk(fb, groups)
    if sorted(da) != sorted(db):
        fail("different datasets: %s" % sorted(set(da) ^ set(db)))
    for k in da:
        x, y = da[k].astype(np.float64), db[k].astype(np.float64)
        if x.shape != y.shape:
            fail("%s: shapes %s vs %s" % (k, x.shape, y.shape))
        if (np.isnan(x) != np.isnan(y)).any():
            fail("%s: users scored in one file only" % k)
        ok = ~np.isnan(x[:, 0])
        bad = (np.abs(x[ok] - y[ok]) > tol).any(axis=1)
        share = bad.mean() if bad.size else 0.0
        dm = np.abs(np.nanmean(x[ok], 0) - np.nanmean(y[ok], 0)).max() if ok.any() else 0.0
        if share > frac or dm > frac:
            fail("%s: %d of %d rows differ by more than %g (%.3g > %g), column means by %.3g" % (k, bad.sum(), bad.size, tol, share, frac, dm))
        print("rows: %s: %d of %d rows differ beyond %g, column means within %.3g" % (k, bad.sum(), bad.size, tol, dm))


def equal(a, b, groups):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = walk(fa, groups), walk(fb, groups)
    if sorted(da) != sorted(db):
        fail("different datasets")
    for k in da:
        if da[k].tobytes() != db[k].tobytes():
            fail("%s differs" % k)
    print("equal: %d datasets bitwise identical" % len(da))


def results(res, ds):
    """Popularity full ranking recomputed independently: rank of the test item among non-history
    items by train count, ties at the expected position."""
    with h5py.File(ds, "r") as f:
        off, item = f["users/offsets"][...], f["inter/item"][...]
        r = roles(f)
        n = int(f.attrs["n_items"])
    cnt = np.zeros(n)
    np.add.at(cnt, item[r == 0], 1)
    with h5py.File(res, "r") as f:
        chars = f["columns/chars"][...].tobytes()
        o = f["columns/offsets"][...]
        cols = [chars[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]
        rows = f["test/full/pop"][...]
        mean = f["test/full/pop"].attrs["mean"]
    k10 = cols.index("hit@10")
    n10 = cols.index("ndcg@10")
    worst = 0.0
    for u in range(len(off) - 1):
        hist = [item[j] for j in range(off[u], off[u + 1]) if r[j] < 2]
        tgt = [item[j] for j in range(off[u], off[u + 1]) if r[j] == 2]
        if not tgt:
            if not np.isnan(rows[u, 0]):
                fail("user %d has no test item but a row" % u)
            continue
        t = tgt[0]
        mask = np.ones(n, bool)
        mask[hist] = False
        mask[t] = True
        s = cnt[mask]
        g = int((s > cnt[t]).sum())
        b = int((s == cnt[t]).sum())
        ranks = np.arange(g + 1, g + b + 1)
        hit = float((ranks <= 10).mean())
        ndcg = float(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0).mean())
        worst = max(worst, abs(hit - rows[u, k10]), abs(ndcg - rows[u, n10]))
    if worst > 1e-9:
        fail("pop per-user metrics differ by %.3g" % worst)
    ok = np.isfinite(rows[:, 0])
    if abs(rows[ok].mean(axis=0)[k10] - mean[k10]) > 1e-12:
        fail("stored mean differs from the rows")
    print("results: pop Hit@10/NDCG@10 of %d users match an independent computation (max diff %.2g)" % (ok.sum(), worst))


def recomputed(ds, res, name, label, scores, margin):
    """A trained model's test rows recomputed from its stored weights: scores(u, hist) (NumPy, float64)
    gives the scores of every item for user u with history hist (train + valid items in time order);
    the test item's full-ranking NDCG@10 among the items outside the history must equal eval's row of
    the model for 99% of the users, and every user where it does not has its target tied with another
    item within float32 rounding (float32 against float64 changes only such ranks), the rows must carry the registry's label, and the mean must beat
    popularity's by margin."""
    with h5py.File(ds, "r") as f:
        off, item, role = f["users/offsets"][...], f["inter/item"][...], f["split/loo"][...]
    g, p, k = test_ndcg(res, name, label)
    mine, agree, untied = [], 0, []
    for u in range(len(off) - 1):
        r, it = role[off[u]:off[u + 1]], item[off[u]:off[u + 1]]
        hist, tgt = it[r < 2], it[r == 2][0]
        s = np.array(scores(u, hist), dtype=np.float64)
        s[hist] = -np.inf  # full ranking: every item but the history competes
        rank = 1 + np.sum(s > s[tgt])
        mine.append(1 / np.log2(rank + 1) if rank <= 10 else 0.0)
        if abs(mine[-1] - g[u, k]) < 1e-6:
            agree += 1
            continue
        # a disagreement is allowed only where the target ties another competing item within
        # float32 rounding of the scores (eval scores in float32, this in float64): 2^-20 of the
        # largest score magnitude covers a dot product of up to ~64 terms
        fin = np.isfinite(s)
        eps = 2.0 ** -20 * np.abs(s[fin]).max()
        near = fin & (np.abs(s - s[tgt]) <= eps)
        near[tgt] = False
        if not near.any():
            untied.append(u)
    n = len(mine)
    if untied:
        fail("eval's NDCG@10 differs from NumPy's for %d users whose target ties no item within rounding (first: user %d)" % (len(untied), untied[0]))
    if agree < 0.99 * n:
        fail("NumPy's NDCG@10 agrees with eval's rows for %d of %d users" % (agree, n))
    nm, npop = above_pop(g, p, k, label, margin)
    print("ok: NumPy over the stored weights gives eval's NDCG@10 for %d of %d users; test NDCG@10 %s %.4f vs popularity %.4f"
          % (agree, n, label, nm, npop))


def test_ndcg(res, name, label):
    """eval's test full-ranking rows of model name and of popularity in results file res, and their
    NDCG@10 column; name's rows must carry the registry's label."""
    f = h5py.File(res, "r")
    cols = [f["columns/chars"][...].tobytes()[a:b].decode() for a, b in zip(f["columns/offsets"][:-1], f["columns/offsets"][1:])]
    g, p = f["test/full/" + name], f["test/full/pop"]
    lab = g.attrs["label"]
    lab = lab.decode() if isinstance(lab, bytes) else lab
    if lab != label:
        fail("label %s, expected %s" % (lab, label))
    return g, p, cols.index("ndcg@10")


def above_pop(g, p, k, label, margin):
    """the mean NDCG@10 (column k) of rows g and of popularity's rows p; the first must beat the second by margin"""
    nm, npop = np.nanmean(g[:, k]), np.nanmean(p[:, k])
    if not nm > npop + margin:
        fail("%s NDCG@10 %.4f is not above popularity's %.4f by %g" % (label, nm, npop, margin))
    return nm, npop


def beats(res, name, label, margin):
    g, p, k = test_ndcg(res, name, label)
    nm, npop = above_pop(g, p, k, label, margin)
    print("ok: test full-ranking NDCG@10 %s %.4f vs popularity %.4f" % (label, nm, npop))


if __name__ == "__main__":
    k = sys.argv[1]
    if k == "ease":
        ease(sys.argv[2], sys.argv[3], *(sys.argv[4:5]))
    elif k == "close":
        close(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:])
    elif k == "trained":
        trained(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif k == "rows":
        rows(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), sys.argv[6:])
    elif k == "equal":
        equal(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif k == "results":
        results(sys.argv[2], sys.argv[3])
    elif k == "beats":
        beats(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        fail("unknown check " + k)
