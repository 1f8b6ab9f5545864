#!/usr/bin/python3
"""gen_itemknn.py OUTDIR: NumPy/SciPy reference for tests/unit/test_itemknn.c (src/itemknn/itemknn.h).

RecBole's ItemKNN on small random data, in float64:
  X     binary (users, items) training matrix (repeated interactions count once)
  C     = X^T X, the co-occurrence counts; n_i = C_ii
  S_ij  = C_ij / (sqrt(n_i) sqrt(n_j) + shrink + 1e-6) for j != i, 0 on the diagonal
  W     keeps, in row i, the k largest S_ij with C_ij > 0 (ties: lower j first; RecBole's
        argpartition leaves ties in no fixed order, so this is the rule both sides follow)
  score = x_hist W, x_hist binary over the user's train + valid rows (the test split's history)

Writes OUTDIR/itemknn/manifest.json (format dynmm-itemknn-ref, version 1) and per case NAME_off.i64
(users + 1), NAME_item.i32 and NAME_roles.i8 (interactions), NAME_nbr.i32 / NAME_sim.f64 (items, K)
(K = min(k, items - 1), -1 / 0 past a row's last neighbour), NAME_scores.f64 (users, items).
"""
import json
import os
import sys

import numpy as np
import scipy.sparse as sp

out = os.path.join(sys.argv[1], "itemknn")
os.makedirs(out, exist_ok=True)


def case(name, n_users, n_items, k, shrink, seed):
    rng = np.random.default_rng(seed)
    lens = rng.integers(3, 12, n_users)
    # a skewed catalogue (popular items co-occur often) with repeats inside a history
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    items = [rng.choice(n_items, size=l, p=p).astype(np.int32) for l in lens]
    roles = []
    for l in lens:  # leave-one-out: last test, one before valid
        r = np.zeros(l, np.int8)
        r[-1], r[-2] = 2, 1
        roles.append(r)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    item, role = np.concatenate(items), np.concatenate(roles)
    user = np.repeat(np.arange(n_users), lens)

    tr = role == 0
    X = sp.csr_matrix((np.ones(tr.sum()), (user[tr], item[tr])), shape=(n_users, n_items))
    X.data[:] = 1.0  # duplicates summed by the constructor: binary again
    C = (X.T @ X).toarray()
    norm = np.sqrt(np.diag(C))
    K = max(1, min(k, n_items - 1))
    nbr = -np.ones((n_items, K), np.int32)
    sim = np.zeros((n_items, K))
    W = np.zeros((n_items, n_items))
    for i in range(n_items):
        js = [j for j in range(n_items) if j != i and C[i, j] > 0]
        s = {j: C[i, j] / (norm[i] * norm[j] + shrink + 1e-6) for j in js}
        keep = sorted(js, key=lambda j: (-s[j], j))[:K]
        for q, j in enumerate(keep):
            nbr[i, q], sim[i, q] = j, s[j]
            W[i, j] = s[j]
    hist = role < 2
    H = sp.csr_matrix((np.ones(hist.sum()), (user[hist], item[hist])), shape=(n_users, n_items))
    H.data[:] = 1.0
    scores = H @ W

    off.tofile(os.path.join(out, name + "_off.i64"))
    item.tofile(os.path.join(out, name + "_item.i32"))
    role.tofile(os.path.join(out, name + "_roles.i8"))
    nbr.tofile(os.path.join(out, name + "_nbr.i32"))
    sim.tofile(os.path.join(out, name + "_sim.f64"))
    np.ascontiguousarray(scores).tofile(os.path.join(out, name + "_scores.f64"))
    ties = sum(len(set(r[r > 0])) < (r > 0).sum() for r in sim)
    print("itemknn %s: %d users, %d items, k %d (K %d), shrink %g, %d rows with tied similarities" % (
        name, n_users, n_items, k, K, shrink, ties))
    return {"name": name, "n_users": n_users, "n_items": n_items, "n_inter": int(len(item)), "k": k, "K": K,
            "shrink": shrink, "max_history": int(lens.max())}


cases = [case("k5", 40, 25, 5, 0.0, 1), case("shrink", 60, 30, 4, 3.5, 2), case("wide", 30, 12, 100, 1.0, 3)]
json.dump({"format": "dynmm-itemknn-ref", "version": 1, "cases": cases}, open(os.path.join(out, "manifest.json"), "w"))
