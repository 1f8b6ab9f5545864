"""refgen.py: what the PyTorch reference generators (gen_*.py) share: the raw dumps and the
manifest the unit tests read, and for a model trained on one parameter slab (gen_bpr.py,
gen_lightgcn.py) the loss and the gradient of loss / norm at the slab and torch.optim.Adam steps on it.

loss_of(p) maps a float64 slab tensor p to the summed loss; p32 is the float32 slab the C test loads.
"""
import json
import os

import numpy as np
import torch


def loss_grad(loss_of, p32, norm):
    """the slab as a float64 leaf p, the loss l at it and the gradient of l / norm (NumPy)"""
    p = torch.tensor(p32.astype(np.float64), requires_grad=True)
    l = loss_of(p)
    (l / norm).backward()
    return p, l, p.grad.detach().numpy().copy()


def adam(loss_of, p32, norm, lr, steps):
    """the slab after `steps` torch.optim.Adam steps (betas 0.9, 0.999, eps 1e-8) on loss / norm (NumPy)"""
    q = torch.tensor(p32.astype(np.float64), requires_grad=True)
    opt = torch.optim.Adam([q], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(steps):
        opt.zero_grad()
        (loss_of(q) / norm).backward()
        opt.step()
    return q.detach().numpy()


def dump(out, files):
    """each array of files (file name -> array) written raw into directory out"""
    for name, a in files.items():
        np.asarray(a).tofile(os.path.join(out, name))


def write_manifest(out, fmt, cases):
    """out/manifest.json: format fmt version 1, the torch version and the cases (tests/unit/testlib.h
    tl_parity reads it)"""
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"format": fmt, "version": 1, "torch": torch.__version__, "cases": cases}, f, indent=1)
    print("wrote %d cases to %s" % (len(cases), out))
