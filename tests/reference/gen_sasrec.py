#!/usr/bin/python3
"""gen_sasrec.py OUTDIR: PyTorch reference data for tests/unit/test_sasrec.c.

For each case (norm placement x loss, with and without replayed dropout masks) it builds a small
SASRec (sasrec_torch.py) with random float32 weights, runs one batch in float64 and writes, under
OUTDIR/sasrec/: the parameter slab in dynmm's layout (<case>_params.f32), the batch (_seq/_pos/_neg
.i32, (B, T) int32), the dropout keep masks (_m{emb,att,fc1,fc2}.u8, dense layout), the gradient
slab (_grads.f64), the user states at the last position in eval mode (_states.f64, (B, C)), and for
the Adam case the parameters after two Adam steps with L2 (_adam.f64). manifest.json lists the cases
with their shapes and losses. All files are raw little-endian.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import write_manifest  # noqa: E402
from sasrec_torch import SASRec, from_slab, to_slab  # noqa: E402

N_ITEMS, C, T, L, H, F, B = 40, 16, 8, 2, 2, 24, 5


def make_batch(gen):
    r = lambda n: torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
    seq = torch.zeros(B, T, dtype=torch.long)
    pos = torch.zeros(B, T, dtype=torch.long)
    seq[0] = r(T)                     # full length
    seq[1, 3:] = r(T - 3)             # left-padded
    seq[2, T - 1:] = r(1)             # one item
    # row 3 stays empty (all padding)
    seq[4, 2:] = r(T - 2)             # left-padded with a hole in the middle
    seq[4, 4] = 0
    pos[:] = torch.where(seq != 0, torch.randint(1, N_ITEMS + 1, (B, T), generator=gen), 0)
    pos[4, 6] = 0                     # an input position without a target
    neg = torch.where(pos != 0, torch.randint(1, N_ITEMS + 1, (B, T), generator=gen), 0)
    return seq, pos, neg


def make_model(norm, dropout, gen):
    m = SASRec(N_ITEMS, C=C, T=T, L=L, H=H, F=F, dropout=dropout, norm=norm)
    m.reference_init(gen)
    with torch.no_grad():  # move every parameter off its initial value so all gradients are tested
        for t in (m.ln1w, m.ln2w, m.lnfw):
            t.add_(0.2 * torch.randn(t.shape, generator=gen))
        for t in (m.ln1b, m.ln2b, m.lnfb, m.qkvb, m.attprojb):
            t.add_(0.2 * torch.randn(t.shape, generator=gen))
        m.wte.mul_(3.0)
        m.wte[0].zero_()
    return m


def masks_for(gen, p):
    keep = lambda *shape: (torch.rand(*shape, generator=gen) >= p).to(torch.uint8)
    return {"emb": keep(B, T, C), "att": keep(L, B, H, T, T), "fc1": keep(L, B, T, F),
            "fc2": keep(L, B, T, C)}


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "sasrec")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20181117)
    cases = []
    specs = [(n, l, 0.0) for n in ("kang", "pre", "post") for l in ("bce", "ce")]
    specs += [("kang", "bce", 0.5), ("pre", "ce", 0.3), ("post", "bce", 0.4)]
    for norm, loss, p in specs:
        name = "%s_%s%s" % (norm, loss, "_drop" if p > 0 else "")
        model = make_model(norm, p, gen)
        slab = to_slab(model.params())              # float32 weights, shared with C exactly
        seq, pos, neg = make_batch(gen)
        model = model.double()
        from_slab(model, slab)
        masks = masks_for(gen, p) if p > 0 else None
        model.masks = masks
        model.train(p > 0)
        lossv = model.loss(seq, pos, neg, loss)
        model.zero_grad()
        lossv.backward()
        grads = torch.cat([t.grad.reshape(-1) for t in model.params()]).numpy()
        model.eval()
        with torch.no_grad():
            states = model.user_states(seq).numpy()
        w = lambda suffix, arr: arr.tofile(os.path.join(out, name + suffix))
        w("_params.f32", slab.astype("<f4"))
        w("_seq.i32", seq.numpy().astype("<i4"))
        w("_pos.i32", pos.numpy().astype("<i4"))
        w("_neg.i32", neg.numpy().astype("<i4"))
        w("_grads.f64", grads.astype("<f8"))
        w("_states.f64", states.astype("<f8"))
        case = {"name": name, "norm": norm, "loss": loss, "dropout": p, "n_items": N_ITEMS, "C": C,
                "T": T, "L": L, "H": H, "F": F, "B": B, "loss_value": float(lossv),
                "nparams": int(slab.size), "targets": int((pos != 0).sum())}
        if masks is not None:
            for k, v in masks.items():
                w("_m%s.u8" % k, v.numpy().astype("u1"))
        if name == "kang_bce":
            # two Adam steps (reference betas) with L2 on the embedding tables, on the same batch
            lr, l2 = 0.01, 0.05
            from_slab(model, slab)
            model.train(False)
            opt = torch.optim.Adam(model.params(), lr=lr, betas=(0.9, 0.98), eps=1e-8)
            for _ in range(2):
                opt.zero_grad()
                tot = model.loss(seq, pos, neg, loss)
                tot = tot + 0.5 * l2 * ((model.wte ** 2).sum() + (model.wpe ** 2).sum())
                tot.backward()
                opt.step()
            w("_adam.f64", torch.cat([t.detach().reshape(-1) for t in model.params()]).numpy().astype("<f8"))
            case["adam"] = {"lr": lr, "l2": l2, "steps": 2}
        cases.append(case)
    write_manifest(out, "dynmm-sasrec-ref", cases)


if __name__ == "__main__":
    main()
