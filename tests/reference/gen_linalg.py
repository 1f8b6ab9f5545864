#!/usr/bin/env python3
"""Reference values for tests/mpi/test_linalg.c (the ScaLAPACK randomised SVD and PCA).

linalg/rsvd_*.bin: a 300 x 200 matrix A = U diag(s) V^T + 1e-9 noise with s_i = 2^-i, stored as CSR
(row_off int64, col int32, val float64), and NumPy's singular values and left vectors (top 10).
linalg/pca_*.bin: 240 x 40 features (float32, a correlated Gaussian cloud), a presence mask, and
NumPy's covariance eigenvalues (top 8, ddof 1) and the whitened projections with each component's
largest-magnitude entry made positive.
"""
import os, sys

import numpy as np

out = os.path.join(sys.argv[1], "linalg")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(11)
m, n, r = 300, 200, 30
U0, _ = np.linalg.qr(rng.standard_normal((m, r)))
V0, _ = np.linalg.qr(rng.standard_normal((n, r)))
s0 = 2.0 ** -np.arange(r)
A = (U0 * s0) @ V0.T + 1e-9 * rng.standard_normal((m, n))
A[:, ::7] = 0.0  # some empty columns keep the CSR path honest without breaking the low rank
rows, cols = np.nonzero(A)
row_off = np.zeros(m + 1, np.int64)
np.add.at(row_off, rows + 1, 1)
row_off = np.cumsum(row_off)
row_off.tofile(os.path.join(out, "rsvd_rowoff.bin"))
cols.astype(np.int32).tofile(os.path.join(out, "rsvd_col.bin"))
A[rows, cols].astype(np.float64).tofile(os.path.join(out, "rsvd_val.bin"))
U, s, _ = np.linalg.svd(A, full_matrices=False)
k = 10
s[:k].tofile(os.path.join(out, "rsvd_s.bin"))
np.ascontiguousarray(U[:, :k]).tofile(os.path.join(out, "rsvd_u.bin"))

N, D, K = 240, 40, 8
L = rng.standard_normal((D, D)) * (0.6 ** np.arange(D))[None, :]
X = (rng.standard_normal((N, D)) @ L.T + rng.standard_normal(D)).astype(np.float32)
present = (rng.random(N) > 0.1).astype(np.uint8)
X[present == 0] = 0.0
X.tofile(os.path.join(out, "pca_x.bin"))
present.tofile(os.path.join(out, "pca_present.bin"))
Xp = X[present == 1].astype(np.float64)
mean = Xp.mean(axis=0)
C = np.cov(Xp, rowvar=False, ddof=1)
w, Z = np.linalg.eigh(C)
w, Z = w[::-1][:K], Z[:, ::-1][:, :K]
for c in range(K):
    if Z[np.argmax(np.abs(Z[:, c])), c] < 0:
        Z[:, c] = -Z[:, c]
eps = 1e-6
P = (X.astype(np.float64) - mean) @ Z / np.sqrt(w + eps)
P[present == 0] = 0.0
w.tofile(os.path.join(out, "pca_w.bin"))
P.astype(np.float64).tofile(os.path.join(out, "pca_proj.bin"))
with open(os.path.join(out, "dims.txt"), "w") as f:
    f.write("%d %d %d %d %d %d %d\n" % (m, n, k, N, D, K, len(rows)))
print("wrote linalg references: rsvd %dx%d (nnz %d), pca %dx%d" % (m, n, len(rows), N, D))
