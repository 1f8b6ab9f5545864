#!/usr/bin/python3
"""gen_align.py OUTDIR: PyTorch reference data for tests/unit/test_align.c (src/align/).

An independent float64 PyTorch version of dynmm's multimodal base aligner (align.h): per-modality
2-layer MLP encoders, one shared linear projector, per-modality decoders, a user tower through the
same projector, masked-mean or gated fusion, and the four losses (InfoNCE over present modality
pairs against a negative bank with duplicate items excluded, per-element reconstruction MSE,
A-LLMRec's CF-text matching MSE, sampled-softmax or BCE recommendation loss).

The negative bank is a separate leaf tensor holding the batch's latents, exactly as in the
data-parallel driver: the loss's gradient with respect to the bank is written out and then pushed
back into the latents (z.backward(dbank)), and the generator asserts that this equals the gradient
of the direct graph (bank = z).

For each case it writes, under OUTDIR/align/: the float32 parameter slab in dynmm's layout
(<case>_params.f32), feature tables (_x<k>.f32, (rows, D_k)), user states (_r.f32), presence
(_mask.u8, (B, 4)), feature rows and item ids (_xrow.i64, _item.i64), rank examples (_exu.i32,
_exp.i32, _exn.i32), and in float64 the gradient slab (_grads.f64), the bank gradient
(_dbank.f64, (B, 4, d)), the latents (_z.f64 (B, 4, d), _zb.f64 (B, d), _hu.f64 (U, d)) and for the
AdamW case the parameters after two steps (_adam.f64). manifest.json lists the cases with their
sizes, tensor table, losses and normalisers. All files are raw little-endian.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from refgen import write_manifest

MODS = ["cf", "text", "visual", "audio"]
DIMS = [6, 10, 7, 5]           # D_k when the modality is used
DU, D, H = 6, 5, 8             # user state width, latent width, hidden width
B, U, R, NNEG = 9, 3, 4, 2
# presence (cf, text, visual, audio) of the 9 items: every subset shape the aligner meets
MASK = [[1, 1, 1, 1],          # everything
        [1, 1, 0, 0],          # cf + text
        [0, 1, 0, 0],          # a cold item: text only
        [1, 0, 0, 0],          # cf only
        [0, 0, 1, 1],          # visual + audio
        [0, 0, 0, 0],          # no data at all
        [1, 1, 1, 0],
        [1, 1, 0, 0],          # the same item as row 1 (a duplicate in the batch)
        [0, 1, 0, 1]]
XROW = [0, 1, 2, 3, 4, 5, 6, 1, 8]
ITEM = [10, 11, 12, 13, 14, 15, 16, 11, 18]
EX_USER = [0, 1, 2, 0]
EX_POS = [0, 2, 3, 8]
EX_NEG = [[1, 4], [5, 6], [0, 7], [2, 3]]


def tensor_table(dims, du, d, h, gate):
    t = []
    for m, dk in zip(MODS, dims):
        if dk:
            t += [("enc.%s.w1" % m, (h, dk)), ("enc.%s.b1" % m, (h,)),
                  ("enc.%s.w2" % m, (h, h)), ("enc.%s.b2" % m, (h,))]
    t += [("proj.w", (d, h)), ("proj.b", (d,))]
    if du:
        t += [("user.w1", (h, du)), ("user.b1", (h,)), ("user.w2", (h, h)), ("user.b2", (h,))]
    for m, dk in zip(MODS, dims):
        if dk:
            t += [("dec.%s.w1" % m, (h, d)), ("dec.%s.b1" % m, (h,)),
                  ("dec.%s.w2" % m, (dk, h)), ("dec.%s.b2" % m, (dk,))]
    if gate:
        t += [("fuse.gate", (4,)), ("fuse.query", (d,))]
    return t


class Aligner:
    def __init__(self, cfg, params):
        self.c = cfg
        self.p = params  # name -> float64 leaf tensor

    def act(self, x):
        a = self.c["act"]
        return torch.relu(x) if a == "relu" else F.gelu(x) if a == "gelu" else torch.tanh(x)

    def mlp(self, x, pre):
        p = self.p
        return F.linear(self.act(F.linear(x, p[pre + ".w1"], p[pre + ".b1"])),
                        p[pre + ".w2"], p[pre + ".b2"])

    def proj(self, u):
        return F.linear(u, self.p["proj.w"], self.p["proj.b"])

    def latents(self, X, xrow, mask):
        """z (B, 4, d) with zero rows where absent."""
        cols = []
        for k, m in enumerate(MODS):
            zk = torch.zeros(len(xrow), self.c["d"], dtype=torch.float64)
            if self.c["dims"][k]:
                rows = mask[:, k].nonzero().flatten()
                if len(rows):
                    zk = zk.index_put((rows,), self.proj(self.mlp(X[k][xrow[rows]], "enc." + m)))
            cols.append(zk)
        return torch.stack(cols, 1)

    def fuse(self, z, mask):
        mf = mask.to(torch.float64)
        if self.c["fusion"] == "mean":
            alpha = mf / mf.sum(1, keepdim=True).clamp(min=1)
        else:
            s = self.p["fuse.gate"][None, :] + z @ self.p["fuse.query"]
            s = torch.where(mask.bool(), s, torch.full_like(s, -1e30))
            alpha = torch.softmax(s, 1) * mf
        return (alpha[:, :, None] * z).sum(1)

    def users(self, r):
        return self.proj(self.mlp(r, "user"))

    def losses(self, X, xrow, mask, item, r, exu, exp, exn, bank):
        c = self.c
        d, tau = c["d"], c["tau"]
        z = self.latents(X, xrow, mask)
        used = torch.tensor([dk > 0 for dk in c["dims"]])
        m = mask.bool() & used[None, :]
        cnt = m.sum(1).to(torch.float64)
        n_nce = float((cnt * (cnt - 1)).sum())
        n_rec = float(cnt.sum())
        n_match = float((m[:, 0] & m[:, 1]).sum())
        n_rank = float(len(exu))
        # InfoNCE: anchor z_i^k, candidates the bank rows with modality l minus duplicates of i
        nce = torch.zeros((), dtype=torch.float64)
        for l in range(4):
            cand = m[:, l].nonzero().flatten()
            if not len(cand):
                continue
            bn = F.normalize(bank[cand, l], dim=1)
            for k in range(4):
                if k == l:
                    continue
                anc = (m[:, k] & m[:, l]).nonzero().flatten()
                if not len(anc):
                    continue
                an = F.normalize(z[anc, k], dim=1)
                logits = an @ bn.T / tau
                pos = torch.tensor([int((cand == i).nonzero()) for i in anc])
                dup = (item[anc][:, None] == item[cand][None, :]) & \
                      (torch.arange(len(cand))[None, :] != pos[:, None])
                logits = logits.masked_fill(dup, float("-inf"))
                nce = nce + F.cross_entropy(logits, pos, reduction="sum")
        nce = nce / n_nce
        rec = torch.zeros((), dtype=torch.float64)
        for k, mname in enumerate(MODS):
            if not c["dims"][k]:
                continue
            rows = m[:, k].nonzero().flatten()
            xh = self.mlp(z[rows, k], "dec." + mname)
            rec = rec + ((xh - X[k][xrow[rows]]) ** 2).sum(1).div(c["dims"][k]).sum()
        rec = rec / n_rec
        both = (m[:, 0] & m[:, 1]).nonzero().flatten()
        match = ((z[both, 0] - z[both, 1]) ** 2).sum(1).div(d).sum() / n_match
        zb = self.fuse(z, m)
        hu = self.users(r)
        sp = (hu[exu] * zb[exp]).sum(-1)
        sn = (hu[exu][:, None, :] * zb[exn]).sum(-1)
        if c["rank_loss"] == "softmax":
            s = torch.cat([sp[:, None], sn], 1)
            rank = F.cross_entropy(s, torch.zeros(len(exu), dtype=torch.long), reduction="sum")
        else:
            rank = F.softplus(-sp).sum() + F.softplus(sn).sum()
        rank = rank / n_rank
        w = c["w"]
        total = w[0] * nce + w[1] * rec + w[2] * match + w[3] * rank
        return dict(total=total, nce=nce, recon=rec, match=match, rank=rank, z=z, zb=zb, hu=hu,
                    norms=[n_nce, n_rec, n_match, n_rank])


def run_case(out, name, cfg, gen, adam=None):
    cfg = dict(cfg, d=D)
    dims = cfg["dims"]
    table = tensor_table(dims, DU, D, H, cfg["fusion"] == "gate")
    # random float32 weights, scaled so every activation regime is exercised
    slab = []
    for tname, shape in table:
        fan_in = shape[1] if len(shape) == 2 else None
        if tname.startswith("fuse."):
            t = 0.5 * torch.randn(shape, generator=gen)
        else:
            bound = 1.5 / np.sqrt(shape[1] if fan_in else H)
            t = bound * (2 * torch.rand(shape, generator=gen) - 1)
        slab.append(t.float().reshape(-1))
    slab = torch.cat(slab).numpy().astype("<f4")

    def params_from(s):
        p, off = {}, 0
        for tname, shape in table:
            n = int(np.prod(shape))
            p[tname] = torch.tensor(s[off:off + n].astype(np.float64)).reshape(shape).requires_grad_()
            off += n
        return p

    X = [(torch.randn(B, max(dk, 1), generator=gen)).float() for dk in dims]
    r = torch.randn(U, DU, generator=gen).float()
    mask = torch.tensor(MASK, dtype=torch.uint8)
    for k, dk in enumerate(dims):
        if not dk:
            mask[:, k] = 0
    xrow = torch.tensor(XROW)
    item = torch.tensor(ITEM)
    exu, exp, exn = torch.tensor(EX_USER), torch.tensor(EX_POS), torch.tensor(EX_NEG)
    X64 = [x.double() for x in X]
    r64 = r.double()

    # bank as a separate leaf (the driver's view), then its gradient pushed back into z
    p = params_from(slab)
    model = Aligner(cfg, p)
    z0 = model.latents(X64, xrow, mask).detach()
    bank = z0.clone().requires_grad_()
    res = model.losses(X64, xrow, mask, item, r64, exu, exp, exn, bank)
    res["total"].backward(retain_graph=True)
    dbank = bank.grad.clone()
    res["z"].backward(dbank)
    grads = torch.cat([p[t].grad.reshape(-1) for t, _ in table]).numpy()

    # the direct graph (bank = z) must give the same gradient
    p2 = params_from(slab)
    m2 = Aligner(cfg, p2)
    z2 = m2.latents(X64, xrow, mask)
    r2 = m2.losses(X64, xrow, mask, item, r64, exu, exp, exn, z2)
    r2["total"].backward()
    g2 = torch.cat([p2[t].grad.reshape(-1) for t, _ in table]).numpy()
    assert np.abs(g2 - grads).max() <= 1e-12 * max(1.0, np.abs(grads).max()), "bank split"
    assert abs(float(r2["total"]) - float(res["total"])) < 1e-12

    w = lambda suffix, arr: arr.tofile(os.path.join(out, name + suffix))
    w("_params.f32", slab)
    for k, x in enumerate(X):
        w("_x%d.f32" % k, x.numpy().astype("<f4"))
    w("_r.f32", r.numpy().astype("<f4"))
    w("_mask.u8", mask.numpy().astype("u1"))
    w("_xrow.i64", xrow.numpy().astype("<i8"))
    w("_item.i64", item.numpy().astype("<i8"))
    w("_exu.i32", exu.numpy().astype("<i4"))
    w("_exp.i32", exp.numpy().astype("<i4"))
    w("_exn.i32", exn.numpy().astype("<i4"))
    w("_grads.f64", grads.astype("<f8"))
    w("_dbank.f64", dbank.numpy().astype("<f8"))
    w("_z.f64", res["z"].detach().numpy().astype("<f8"))
    w("_zb.f64", res["zb"].detach().numpy().astype("<f8"))
    w("_hu.f64", res["hu"].detach().numpy().astype("<f8"))
    case = {"name": name, "act": cfg["act"], "fusion": cfg["fusion"], "rank_loss": cfg["rank_loss"],
            "dims": dims, "dim_user": DU, "d": D, "hidden": H, "B": B, "U": U, "R": R,
            "n_neg": NNEG, "tau": cfg["tau"], "w": cfg["w"],
            "nparams": int(slab.size),
            "tensors": [{"name": t, "shape": list(s)} for t, s in table],
            "loss": {k: float(res[k]) for k in ("total", "nce", "recon", "match", "rank")},
            "norms": res["norms"]}
    if adam:
        p3 = params_from(slab)
        m3 = Aligner(cfg, p3)
        opt = torch.optim.AdamW([p3[t] for t, _ in table], lr=adam["lr"], betas=(0.9, 0.999),
                                eps=1e-8, weight_decay=adam["wd"])
        for _ in range(adam["steps"]):
            opt.zero_grad()
            z3 = m3.latents(X64, xrow, mask)
            m3.losses(X64, xrow, mask, item, r64, exu, exp, exn, z3)["total"].backward()
            opt.step()
        w("_adam.f64", torch.cat([p3[t].detach().reshape(-1) for t, _ in table]).numpy()
          .astype("<f8"))
        case["adam"] = adam
    return case


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "align")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240815)
    specs = [
        ("relu_gate_softmax", dict(act="relu", fusion="gate", rank_loss="softmax", dims=DIMS,
                                   tau=0.1, w=[1.0, 0.5, 1.0, 1.0]),
         {"lr": 0.01, "wd": 0.1, "steps": 2}),
        ("gelu_mean_bce", dict(act="gelu", fusion="mean", rank_loss="bce", dims=DIMS, tau=0.2,
                               w=[0.7, 0.3, 1.3, 0.9]), None),
        ("tanh_gate_bce_novisual", dict(act="tanh", fusion="gate", rank_loss="bce",
                                        dims=[6, 10, 0, 5], tau=0.5, w=[1.0, 1.0, 0.5, 2.0]),
         None),
        ("relu_mean_softmax", dict(act="relu", fusion="mean", rank_loss="softmax", dims=DIMS,
                                   tau=0.07, w=[1.0, 0.5, 1.0, 1.0]), None),
    ]
    cases = [run_case(out, n, c, gen, a) for n, c, a in specs]
    write_manifest(out, "dynmm-align-ref", cases)


if __name__ == "__main__":
    main()
