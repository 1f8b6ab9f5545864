#!/usr/bin/python3
"""gen_pq.py OUTDIR: SciPy reference for tests/mpi/test_pq.c (src/pq/pq.h).

Item latents drawn around a few cluster centres (float32, like the aligner's), and the quantisation
error SciPy's k-means reaches on them: per sub-space m, scipy.cluster.vq.kmeans2(x_m, K,
minit='++', iter=iters) (k-means++ seeding, then Lloyd), the best of 5 seeds; the relative error is
    sum_i |x_i - x^_i|^2 / sum_i |x_i|^2
summed over the sub-spaces. The test trains the same data with pq_train at 1, 2 and 3 ranks and
compares its error with this one (the seeds differ, so the test allows a margin).

Writes OUTDIR/pq/manifest.json (format dynmm-pq-ref, version 1) and per case NAME_x.f32 (N, D).
"""
import json
import os
import sys

import numpy as np
from scipy.cluster.vq import kmeans2

out = os.path.join(sys.argv[1], "pq")
os.makedirs(out, exist_ok=True)


def case(name, N, D, M, K, iters, centres, seed):
    rng = np.random.default_rng(seed)
    c = rng.normal(0.0, 1.0, (centres, D))
    x = (c[rng.integers(0, centres, N)] + 0.35 * rng.normal(0.0, 1.0, (N, D))).astype(np.float32)
    x.tofile(os.path.join(out, name + "_x.f32"))
    ds = D // M
    x64 = x.astype(np.float64)
    best = None
    for s in range(5):
        err = 0.0
        for m in range(M):
            xm = x64[:, m * ds:(m + 1) * ds]
            cb, lab = kmeans2(xm, K, iter=iters, minit="++", seed=1000 * seed + s)
            err += ((xm - cb[lab]) ** 2).sum()
        best = err if best is None else min(best, err)
    rel = best / (x64 ** 2).sum()
    return {"name": name, "n": N, "d": D, "m": M, "k": K, "iters": iters, "scipy_rel_err": rel}


cases = [case("clusters", 3000, 32, 8, 64, 25, 40, 1), case("few", 500, 12, 3, 16, 25, 8, 2)]
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump({"format": "dynmm-pq-ref", "version": 1, "cases": cases}, f, indent=1)
print("ok: %d cases, SciPy relative errors %s" % (len(cases), ", ".join("%.4f" % c["scipy_rel_err"] for c in cases)))
