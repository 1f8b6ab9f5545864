#!/usr/bin/python3
"""gen_bpr.py OUTDIR: PyTorch reference for tests/unit/test_bpr.c (BPR-MF, src/bpr/bpr.h).

Writes OUTDIR/bpr/: params.f32 (the slab: U (n_users, d) then V (n_items, d)), u.i32 i.i32 j.i32
(the triples), loss.f64 (sum over triples of -log sigmoid(x) + reg/2 (|U_u|^2+|V_i|^2+|V_j|^2)),
grad.f64 (gradient of loss / NORM), adam.f64 (parameters after STEPS Adam steps, PyTorch's
torch.optim.Adam, on loss / NORM with the same triples every step), meta.json.
Repeated users and items among the triples check that their gradients accumulate.
"""
import json
import os
import sys

import numpy as np
import torch

from refgen import adam, dump, loss_grad

torch.set_default_dtype(torch.float64)
NU, NI, D, N, NORM, REG, LR, STEPS = 7, 11, 5, 19, 23.0, 0.01, 0.01, 4

out = os.path.join(sys.argv[1], "bpr")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
p32 = (rng.standard_normal((NU + NI) * D) * 0.5).astype(np.float32)
u = rng.integers(0, NU, N).astype(np.int32)
i = rng.integers(0, NI, N).astype(np.int32)
j = ((i + 1 + rng.integers(0, NI - 1, N)) % NI).astype(np.int32)  # j != i


def loss_of(p):
    U, V = p[:NU * D].reshape(NU, D), p[NU * D:].reshape(NI, D)
    pu, pi, pj = U[u], V[i], V[j]
    x = (pu * (pi - pj)).sum(1)
    return (torch.nn.functional.softplus(-x) + 0.5 * REG * ((pu * pu).sum(1) + (pi * pi).sum(1) + (pj * pj).sum(1))).sum()


p, l, grad = loss_grad(loss_of, p32, NORM)
dump(out, {"params.f32": p32, "u.i32": u, "i.i32": i, "j.i32": j, "loss.f64": np.array([l.item()]), "grad.f64": grad,
           "adam.f64": adam(loss_of, p32, NORM, LR, STEPS)})
json.dump({"n_users": NU, "n_items": NI, "d": D, "n": N, "norm": NORM, "reg": REG, "lr": LR, "steps": STEPS},
          open(os.path.join(out, "meta.json"), "w"))
print("bpr: %d triples, loss %.6f, |grad| %.4g" % (N, l.item(), np.abs(grad).max()))
