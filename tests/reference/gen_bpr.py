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


p = torch.tensor(p32.astype(np.float64), requires_grad=True)
l = loss_of(p)
(l / NORM).backward()
grad = p.grad.detach().numpy().copy()
q = torch.tensor(p32.astype(np.float64), requires_grad=True)
opt = torch.optim.Adam([q], lr=LR, betas=(0.9, 0.999), eps=1e-8)
for _ in range(STEPS):
    opt.zero_grad()
    (loss_of(q) / NORM).backward()
    opt.step()
p32.tofile(os.path.join(out, "params.f32"))
u.tofile(os.path.join(out, "u.i32"))
i.tofile(os.path.join(out, "i.i32"))
j.tofile(os.path.join(out, "j.i32"))
np.array([l.item()]).tofile(os.path.join(out, "loss.f64"))
grad.tofile(os.path.join(out, "grad.f64"))
q.detach().numpy().tofile(os.path.join(out, "adam.f64"))
json.dump({"n_users": NU, "n_items": NI, "d": D, "n": N, "norm": NORM, "reg": REG, "lr": LR, "steps": STEPS},
          open(os.path.join(out, "meta.json"), "w"))
print("bpr: %d triples, loss %.6f, |grad| %.4g" % (N, l.item(), np.abs(grad).max()))
