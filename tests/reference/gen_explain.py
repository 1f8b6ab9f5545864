#!/usr/bin/python3
"""gen_explain.py OUTDIR: PyTorch reference of the evidence encoder (src/explain/explain_enc.h) for
tests/unit/test_explain.c.

Writes, under OUTDIR/explain/, raw little-endian files and manifest.json. Per case <name>_*:
  params.f32   the parameter slab in dynmm's layout: win (4, D, din), bin (4, D), q (E, D), k0 (D),
               v0 (D), then the MLP w1 (H, G D), b1 (H), lnw (H), lnb (H), w2 (C, H), b2 (C)
  off.i64 (B + 1), kind.i8 (N), x.f32 (N, din), w.f32 (N)   the batch of evidence sets
  dy.f32 (B, E / G, C)   the upstream gradient: loss = sum(y * dy)
  y.f64 (B, E / G, C), grad.f64 (the slab layout), dx.f64 (N, din), dw.f64 (N)

The encoder, written independently of the C code from the header's equations, in float64 on the
float32 inputs:
  u_j = Win[k_j] x_j + bin[k_j];  keys = [k0; u_b],  values = [v0; w_b * u_b]
  a = softmax(q keys^T / sqrt(D)) over the null element and the set's elements
  slot = a values;  each group of G consecutive slots concatenated: g_t = [slot_tG; ...; slot_tG+G-1]
  y_t = W2 gelu_tanh(LN(W1 g_t + b1)) + b2
"""
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

CASES = [
    # name, din, D, E, H, C, G (slots per output row), set sizes (an empty set is the masked evidence)
    ("small", 5, 6, 3, 7, 4, 1, [4, 0, 3]),
    ("wide", 8, 8, 16, 12, 10, 1, [7, 1, 12, 0, 5]),
    ("grouped", 6, 5, 8, 9, 7, 4, [3, 0, 6, 1]),
    ("vector", 6, 4, 16, 10, 8, 16, [5, 0, 9]),
]
LN_EPS = 1e-5


def shapes(din, D, E, H, C, G):
    return [("win", (4, D, din)), ("bin", (4, D)), ("q", (E, D)), ("k0", (D,)), ("v0", (D,)),
            ("mlp.w1", (H, G * D)), ("mlp.b1", (H,)), ("mlp.lnw", (H,)), ("mlp.lnb", (H,)),
            ("mlp.w2", (C, H)), ("mlp.b2", (C,))]


def forward(P, off, kind, x, w, D, E, G):
    u = torch.einsum("ndc,nc->nd", P["win"][kind], x) + P["bin"][kind]
    slots = []
    for b in range(len(off) - 1):
        lo, hi = off[b], off[b + 1]
        keys = torch.cat([P["k0"][None], u[lo:hi]], 0)
        vals = torch.cat([P["v0"][None], w[lo:hi, None] * u[lo:hi]], 0)
        a = torch.softmax(P["q"] @ keys.T / math.sqrt(D), 1)
        slots.append(a @ vals)
    slot = torch.stack(slots)                                      # (B, E, D)
    slot = slot.reshape(slot.shape[0], E // G, G * D)              # groups of G slots
    pre = slot @ P["mlp.w1"].T + P["mlp.b1"]
    ln = torch.nn.functional.layer_norm(pre, (pre.shape[-1],), P["mlp.lnw"], P["mlp.lnb"], LN_EPS)
    act = torch.nn.functional.gelu(ln, approximate="tanh")
    return act @ P["mlp.w2"].T + P["mlp.b2"]


def main():
    out = os.path.join(sys.argv[1], "explain")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    cases = []
    for name, din, D, E, H, C, G, sizes in CASES:
        P, flat = {}, []
        for tname, shp in shapes(din, D, E, H, C, G):
            v = rng.normal(0.0, 0.5, size=shp).astype(np.float32)
            if tname == "mlp.lnw":
                v = (1.0 + 0.3 * rng.normal(size=shp)).astype(np.float32)
            flat.append(v.ravel())
            P[tname] = torch.tensor(v.astype(np.float64), requires_grad=True)
        slab = np.concatenate(flat)
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        N = int(off[-1])
        kind = rng.integers(0, 4, size=N).astype(np.int8)
        x = rng.normal(size=(N, din)).astype(np.float32)
        w = rng.uniform(-1.0, 1.0, size=N).astype(np.float32)
        dy = rng.normal(size=(len(sizes), E // G, C)).astype(np.float32)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        wt = torch.tensor(w.astype(np.float64), requires_grad=True)
        y = forward(P, [int(o) for o in off], torch.tensor(kind.astype(np.int64)), xt, wt, D, E, G)
        (y * torch.tensor(dy.astype(np.float64))).sum().backward()
        grad = np.concatenate([P[t].grad.numpy().ravel() for t, _ in shapes(din, D, E, H, C, G)])
        files = {"params.f32": slab, "off.i64": off, "kind.i8": kind, "x.f32": x, "w.f32": w, "dy.f32": dy,
                 "y.f64": y.detach().numpy(), "grad.f64": grad, "dx.f64": xt.grad.numpy(), "dw.f64": wt.grad.numpy()}
        for suffix, arr in files.items():
            arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(out, f"{name}_{suffix}"))
        cases.append({"name": name, "din": din, "D": D, "E": E, "hidden": H, "C": C, "group": G, "B": len(sizes), "N": N,
                      "ln_eps": LN_EPS, "nparams": int(slab.size)})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"format": "dynmm-explain-ref", "version": 1, "cases": cases}, f, indent=1)
    print(f"gen_explain: {len(cases)} encoder cases in {out}")


if __name__ == "__main__":
    main()
