#!/usr/bin/python3
"""gen_nn.py OUTDIR: PyTorch reference of the shared optimiser (src/nn/adam.h) for
tests/unit/test_nn.c.

Writes, under OUTDIR/nn/, raw little-endian float32 files and manifest.json. Per case <name>_*:
  w0.f32 (n)          the initial parameter slab: tensors of manifest "sizes" floats, in order
  g.f32 (steps, n)    the gradient handed to the optimiser at each step (drawn, not computed)
  w.f32 (steps, n)    the parameters after each step
  m.f32, v.f32 (n)    exp_avg and exp_avg_sq after the last step (the moment slabs' layout)

Each case is one torch.optim optimiser (float32, the single-tensor implementation, foreach=False)
with two parameter groups: the tensors whose manifest "decay" flag is 1 get weight_decay = "wd",
the others 0 (GPT-2's AdamW decays only its matrices; SASRec's Adam puts its L2 on the embeddings):
  adam_l2     torch.optim.Adam  (L2 added to the gradient), betas (0.9, 0.98) as SASRec's
  adamw       torch.optim.AdamW (decoupled decay), betas (0.9, 0.95) as GPT-2's
  adam_plain  torch.optim.Adam without decay, betas (0.9, 0.999)
"""
import json
import os
import sys

import numpy as np
import torch

SIZES = [6, 5, 7, 3]
DECAY = [1, 0, 1, 0]
STEPS = 5
CASES = [
    # name, torch optimiser, mode (src/nn/adam.h), lr, betas, eps, weight decay
    ("adam_l2", torch.optim.Adam, "l2", 1e-2, (0.9, 0.98), 1e-8, 0.05),
    ("adamw", torch.optim.AdamW, "decoupled", 3e-3, (0.9, 0.95), 1e-8, 0.1),
    ("adam_plain", torch.optim.Adam, "decoupled", 1e-2, (0.9, 0.999), 1e-8, 0.0),
]


def main():
    out = os.path.join(sys.argv[1], "nn")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240517)
    n = sum(SIZES)
    manifest = {"sizes": SIZES, "decay": DECAY, "steps": STEPS, "cases": []}
    for name, opt_class, mode, lr, betas, eps, wd in CASES:
        w0 = rng.normal(0.0, 1.0, n).astype(np.float32)
        # gradients of mixed scales, none near zero (m / sqrt(v) is ill-conditioned there)
        g = (rng.normal(0.0, 1.0, (STEPS, n)) * rng.choice([1e-3, 1e-1, 1.0, 10.0], (1, n)))
        g = np.where(np.abs(g) < 1e-4, 1e-4, g).astype(np.float32)
        params, o = [], 0
        for s in SIZES:
            params.append(torch.nn.Parameter(torch.from_numpy(w0[o:o + s].copy())))
            o += s
        groups = [{"params": [p for p, d in zip(params, DECAY) if d], "weight_decay": wd},
                  {"params": [p for p, d in zip(params, DECAY) if not d], "weight_decay": 0.0}]
        opt = opt_class(groups, lr=lr, betas=betas, eps=eps, foreach=False)
        ws = []
        for t in range(STEPS):
            o = 0
            for p, s in zip(params, SIZES):
                p.grad = torch.from_numpy(g[t, o:o + s].copy())
                o += s
            opt.step()
            ws.append(torch.cat([p.detach().reshape(-1) for p in params]).numpy())
        m = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params]).numpy()
        v = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]).numpy()
        for suffix, arr in (("w0", w0), ("g", g), ("w", np.stack(ws)), ("m", m), ("v", v)):
            arr.astype("<f4").tofile(os.path.join(out, "%s_%s.f32" % (name, suffix)))
        manifest["cases"].append({"name": name, "mode": mode, "lr": lr, "beta1": betas[0],
                                  "beta2": betas[1], "eps": eps, "weight_decay": wd})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
