#!/usr/bin/python3
"""gen_pq.py OUTDIR: SciPy reference for tests/mpi/test_pq.c (src/pq/pq.h).

Item latents drawn around a few cluster centres (float32, like the aligner's), and the quantisation
error SciPy's k-means reaches on them: per sub-space m, scipy.cluster.vq.kmeans2(x_m, K,
minit='++', iter=iters) (k-means++ seeding, then Lloyd), the best of 5 seeds; the relative error is
    sum_i |x_i - x^_i|^2 / sum_i |x_i|^2
summed over the sub-spaces. The test trains the same data with pq_train at 1, 2 and 3 ranks and
compares its error with this one (the seeds differ, so the test allows a margin). The case with
"opq" also has the error of non-parametric OPQ (Ge et al. 2013; PQ, then rounds of the orthogonal
Procrustes rotation, scipy.linalg.orthogonal_procrustes, and a few Lloyd iterations from the current
centroids), the best of 5 seeds, on correlated anisotropic latents, for pq_train_opq.

The case with "stages" (pq.stages, residual quantisation) fits each sub-space stage by stage: stage
l is kmeans2 on what stages 0..l-1 left (the residual), the decoded sub-vector the sum of the stages'
centroids; with "opq", the Procrustes rounds refit every stage in turn from its current centroids.

Writes OUTDIR/pq/manifest.json (format dynmm-pq-ref, version 1) and per case NAME_x.f32 (N, D).
"""
import json
import os
import sys

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.linalg import orthogonal_procrustes

out = os.path.join(sys.argv[1], "pq")
os.makedirs(out, exist_ok=True)


def pq_fit(y, M, K, iters, seed, init=None, L=1):
    """k-means per sub-space of y (kmeans2: k-means++ seeding, or from the centroids init), L stages
    each on the residual of the ones before; returns the centroids (M, L) of (K, ds), the decoded y^
    and the squared error"""
    ds = y.shape[1] // M
    cbs, yh = [], np.zeros_like(y)
    for m in range(M):
        r = y[:, m * ds:(m + 1) * ds].copy()
        row = []
        for l in range(L):
            if init is None:
                cb, lab = kmeans2(r, K, iter=iters, minit="++", seed=seed + m + 1000003 * l)
            else:
                cb, lab = kmeans2(r, init[m][l], iter=iters, minit="matrix")
            row.append(cb)
            yh[:, m * ds:(m + 1) * ds] += cb[lab]
            r -= cb[lab]
        cbs.append(row)
    return cbs, yh, ((y - yh) ** 2).sum()


def opq_fit(x, M, K, iters, rounds, rounds_iters, seed, L=1):
    """non-parametric OPQ (Ge et al. 2013): PQ, then per round the Procrustes rotation of x onto the
    decoded codes (scipy.linalg.orthogonal_procrustes) and rounds_iters Lloyd iterations from the
    current centroids; the squared error of x rot against its codes"""
    cbs, yh, err = pq_fit(x, M, K, iters, seed, L=L)
    for _ in range(rounds):
        rot, _ = orthogonal_procrustes(x, yh)
        cbs, yh, err = pq_fit(x @ rot, M, K, rounds_iters, seed, init=cbs, L=L)
    return err


def case(name, N, D, M, K, iters, centres, seed, opq=None, stages=1):
    rng = np.random.default_rng(seed)
    c = rng.normal(0.0, 1.0, (centres, D))
    x = c[rng.integers(0, centres, N)] + 0.35 * rng.normal(0.0, 1.0, (N, D))
    if opq:  # correlated, anisotropic latents (a random rotation of decaying scales): what OPQ is for
        q, _ = np.linalg.qr(rng.normal(0.0, 1.0, (D, D)))
        x = (x * np.exp(-np.arange(D) / 6.0)) @ q
    x = x.astype(np.float32)
    x.tofile(os.path.join(out, name + "_x.f32"))
    x64 = x.astype(np.float64)
    norm = (x64 ** 2).sum()
    rel = min(pq_fit(x64, M, K, iters, 1000 * seed + 100 * s, L=stages)[2] for s in range(5)) / norm
    r = {"name": name, "n": N, "d": D, "m": M, "k": K, "iters": iters, "scipy_rel_err": rel}
    if stages > 1:
        r["stages"] = stages
    if opq:
        r.update({"opq": opq[0], "opq_iters": opq[1],
                  "scipy_opq_rel_err": min(opq_fit(x64, M, K, iters, opq[0], opq[1], 1000 * seed + 100 * s, L=stages) for s in range(5)) / norm})
    return r


cases = [case("clusters", 3000, 32, 8, 64, 25, 40, 1), case("few", 500, 12, 3, 16, 25, 8, 2),
         case("aniso", 3000, 32, 8, 32, 25, 40, 3, opq=(10, 4)),
         case("residual", 3000, 32, 4, 16, 25, 40, 4, opq=(3, 4), stages=3)]
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump({"format": "dynmm-pq-ref", "version": 1, "cases": cases}, f, indent=1)
print("ok: %d cases, SciPy relative errors %s" % (len(cases), ", ".join(
    "%.4f" % c["scipy_rel_err"] + (" (OPQ %.4f)" % c["scipy_opq_rel_err"] if "opq" in c else "") for c in cases)))
