#!/usr/bin/python3
"""gen_lightgcn.py OUTDIR: PyTorch reference for tests/unit/test_lightgcn.c (LightGCN, src/lightgcn/lightgcn.h).

The normalised adjacency is built as RecBole's LightGCN.get_norm_adj_mat: the distinct training
pairs, A = [[0, R], [R^T, 0]], degrees + 1e-7, A_hat = D^-1/2 A D^-1/2 (dense here); the final
embeddings F = mean(E0, A_hat E0, ..., A_hat^K E0); the BPR loss with the squared L2 of the ego
embeddings of each triple (reg / 2 per squared norm).

Writes OUTDIR/lightgcn/: params.f32 (E0: users then items, (NU + NI, D)), off.i64 (NU + 1) and
item.i32 (the users' training interactions, a repeated pair and a user and an item without any),
u.i32 i.i32 j.i32 (the triples), final.f64 (F), loss.f64 (sum over the triples), grad.f64 (gradient
of loss / NORM), adam.f64 (after STEPS torch.optim.Adam steps on loss / NORM, same triples),
scores.f64 (NU, NI: F_u . F_i).
"""
import os
import sys

import numpy as np
import torch

from refgen import adam, dump, loss_grad

torch.set_default_dtype(torch.float64)
NU, NI, D, K, N, NORM, REG, LR, STEPS = 6, 8, 4, 2, 13, 17.0, 0.01, 0.01, 3

out = os.path.join(sys.argv[1], "lightgcn")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(5)
# user 4 has no interactions, item 7 none; user 0 takes item 2 twice
hist = [[2, 0, 2, 5], [1, 3], [0, 1, 4, 6, 5], [3], [], [4, 2, 0]]
off = np.cumsum([0] + [len(h) for h in hist]).astype(np.int64)
item = np.array([i for h in hist for i in h], np.int32)
p32 = (rng.standard_normal((NU + NI) * D) * 0.5).astype(np.float32)
pairs = [(u, i) for u, h in enumerate(hist) for i in h]
t = rng.integers(0, len(pairs), N)
u = np.array([pairs[k][0] for k in t], np.int32)
i = np.array([pairs[k][1] for k in t], np.int32)
j = np.array([rng.choice([x for x in range(NI) if x not in hist[uu]]) for uu in u], np.int32)

A = np.zeros((NU + NI, NU + NI))
for uu, ii in set(pairs):
    A[uu, NU + ii] = A[NU + ii, uu] = 1.0
dinv = (A.sum(1) + 1e-7) ** -0.5
Ahat = torch.tensor(dinv[:, None] * A * dinv[None, :])


def final(p):
    e = p.view(NU + NI, D)
    layers = [e]
    for _ in range(K):
        layers.append(Ahat @ layers[-1])
    return torch.stack(layers).mean(0)


def loss_of(p):
    f, e = final(p), p.view(NU + NI, D)
    fu, fi, fj = f[u], f[NU + i], f[NU + j]
    x = (fu * (fi - fj)).sum(1)
    eu, ei, ej = e[u], e[NU + i], e[NU + j]
    return (torch.nn.functional.softplus(-x) + 0.5 * REG * ((eu * eu).sum(1) + (ei * ei).sum(1) + (ej * ej).sum(1))).sum()


p, l, grad = loss_grad(loss_of, p32, NORM)
with torch.no_grad():
    F = final(p)
    scores = F[:NU] @ F[NU:].T
dump(out, {"params.f32": p32, "off.i64": off, "item.i32": item, "u.i32": u, "i.i32": i, "j.i32": j, "final.f64": F.numpy(),
           "loss.f64": np.array([l.item()]), "grad.f64": grad, "adam.f64": adam(loss_of, p32, NORM, LR, STEPS),
           "scores.f64": scores.numpy()})
print("lightgcn: %d nodes, %d distinct pairs, %d triples, loss %.6f, |grad| %.4g" % (NU + NI, len(set(pairs)), N, l.item(), np.abs(grad).max()))
