"""Checks of a pq.h5 group shared by tests/cli/test_pq.sh: the stored codes against the latents, the
stored recall against NumPy's recomputation, and eval's rows under full re-ranking."""
import numpy as np


def decoded(g):
    """The codebooks (M, K, ds), or (M, L, K, ds) with L > 1 residual stages (pq.stages), codes (n, M L)
    and decoded latents y^ (n, D) (each sub-space the sum of its stages' centroids) of a pq.h5 group."""
    M, K = int(g.attrs["m"]), int(g.attrs["k"])
    L = int(g.attrs["stages"]) if "stages" in g.attrs else 1
    cb, codes = g["codebook"][...].astype(np.float64).reshape(M, L, K, -1), g["codes"][...].astype(np.int64)
    assert codes.shape[1] == M * L, (codes.shape, M, L)
    yh = np.concatenate([sum(cb[m, l][codes[:, m * L + l]] for l in range(L)) for m in range(M)], axis=1)
    return (cb[:, 0] if L == 1 else cb), codes, yh


def nearest(y, cb, codes, what):
    """every code is the nearest centroid of its sub-vector of y (n, D) (float64, up to rounding near
    ties); with residual stages (cb (M, L, K, ds)) stage l's code is the nearest centroid of what the
    earlier stages left, y_m - sum_{l' < l} c_{m,l'}"""
    if cb.ndim == 3:
        cb = cb[:, None]
    M, L, ds = cb.shape[0], cb.shape[1], cb.shape[3]
    for m in range(M):
        r = y[:, m * ds:(m + 1) * ds].copy()
        for l in range(L):
            d2 = ((r[:, None, :] - cb[m, l][None]) ** 2).sum(-1)
            k = codes[:, m * L + l]
            assert (d2[np.arange(len(y)), k] <= d2.min(1) * (1 + 1e-5) + 1e-10).all(), "%s: a code is not the nearest centroid (stage %d)" % (what, l)
            r -= cb[m, l][k]


def recall(g, e, H, yh, qrot, what):
    """recall@10 of the exact top 10 (e @ q) after exact re-ranking of ADC's (yh @ (q qrot)) top 10,
    100 and 1000 over the stage's sample of test users H; asserted within 0.01 of pq.h5's"""
    S = min(len(H), 1000)
    hits = np.zeros(3)
    for t in range(S):
        q = H[t * len(H) // S]
        ex, ad = e @ q, yh @ (q @ qrot)
        best = set(np.argsort(-ex, kind="stable")[:10])
        order = np.argsort(-ad, kind="stable")
        for r, R in enumerate([10, 100, 1000]):
            top = order[:R]
            hits[r] += len(best & set(top[np.argsort(-ex[top], kind="stable")[:10]]))
    rec, stored = hits / (10.0 * S), g.attrs["recall_at10"]
    assert np.abs(rec - stored).max() <= 0.01, "%s: recall %s, pq.h5 says %s" % (what, rec, stored)
    return rec, stored


def exact_rows(X, model, what):
    """<model>@pq's rows with pq.rerank above the catalogue are <model>'s, bitwise"""
    for proto in ("full", "uni99"):
        a, b = X["test/%s/%s@pq" % (proto, model)][...], X["test/%s/%s" % (proto, model)][...]
        assert np.array_equal(a, b, equal_nan=True), "%s@pq %s with full re-ranking differs from %s (%s)" % (model, what, model, proto)
