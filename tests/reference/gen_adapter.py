#!/usr/bin/python3
"""gen_adapter.py OUTDIR: PyTorch / NumPy reference data for tests/unit/test_adapter.c.

Writes, under OUTDIR/adapter/, raw little-endian files and manifest.json:

Model cases (float64 PyTorch on float32 inputs shared exactly with C), each <case>_*:
  params.f32     the parameter slab in dynmm's layout (adapter_tensor_info order)
  e_cf.f32 z_base.f32 s_item.f32 r.f32 h_base.f32 s_user.f32   the tables
  user.i32 pos.i32 neg.i32                                      the batch (B), (B), (B, K)
  grad_rec.f64   gradient of L_rec alone;  grad_all.f64  of L_rec + L_kl
  fisher.f64     sum_b (d l_b / d theta)^2 / S over the batch (per-example loop)
  ewc_F.f32 ewc_anchor.f32   a Fisher and anchor; ewc_grad.f64 the gradient of the EWC term
  adam.f64 ema.f64           weights and EMA after `steps` Adam steps on L_rec + L_kl + L_ewc
  zdyn.f64 hdyn.f64          dynamic latents of all items / users (raw weights)
Summary cases (NumPy, the definitions of src/adapter/adapter_summary.h written independently):
  <case>_{cu,ci,pu,pi}.i32 <case>_{ct,pt}.i64   current / previous window (user, item, time)
  <case>_s_item.f64 <case>_s_user.f64

The losses follow src/adapter/adapter.h: every (example, slot) occurrence is computed separately
(no deduplication), the losses are divided by a global count `norm` different from B.
"""
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

N_ITEMS, N_USERS, D_CF, D, H, DSI, DSU, K, B = 23, 9, 6, 5, 16, 4, 7, 4, 10


def tensor_shapes():
    dxi, dxu = D_CF + DSI, D_CF + DSU
    out = []
    for side, dx in (("item", dxi), ("user", dxu)):
        out += [(side + ".w1", (H, dx)), (side + ".b1", (H,)), (side + ".w2", (D, H)),
                (side + ".b2", (D,)), (side + ".wa", (dx,)), (side + ".ca", (1,))]
    return out


def split_slab(flat):
    out, o = {}, 0
    for name, shp in tensor_shapes():
        n = int(np.prod(shp))
        out[name] = flat[o:o + n].reshape(shp)
        o += n
    return out


def side_forward(P, side, x, base, gate):
    pre = x @ P[side + ".w1"].T + P[side + ".b1"]
    g = torch.relu(pre) @ P[side + ".w2"].T + P[side + ".b2"]
    if gate:
        a = torch.sigmoid(x @ P[side + ".wa"] + P[side + ".ca"][0])
    else:
        a = torch.ones(x.shape[0])
    delta = a[:, None] * g
    return base + delta, delta


def losses(P, T, user, pos, neg, loss, gate, sigma, norm):
    """(L_rec, L_kl, per-example l_b) for the batch, every occurrence computed separately."""
    items = torch.cat([pos[:, None], neg], 1)                       # (B, K+1)
    xi = torch.cat([T["e_cf"][items], T["s_item"][items]], 2).reshape(-1, D_CF + DSI)
    zi, di = side_forward(P, "item", xi, T["z_base"][items].reshape(-1, D), gate)
    xu = torch.cat([T["r"][user], T["s_user"][user]], 1)
    hu, du = side_forward(P, "user", xu, T["h_base"][user], gate)
    zi = zi.reshape(len(user), K + 1, D)
    s = (hu[:, None, :] * zi).sum(2)                                 # (B, K+1)
    if loss == "softmax":
        lb = torch.logsumexp(s, 1) - s[:, 0]
    else:
        lb = torch.nn.functional.softplus(-s[:, 0]) + torch.nn.functional.softplus(s[:, 1:]).sum(1)
    kl = ((di ** 2).sum() + (du ** 2).sum()) / (2 * sigma ** 2)
    return lb.sum() / norm, kl / norm, lb


def flat_grad(loss, params):
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(gs, params)])


def write(path, arr, dtype):
    np.ascontiguousarray(arr, dtype=dtype).tofile(path)


def model_case(out, name, loss, gate, gen):
    rnd = lambda *s: torch.randn(*s, generator=gen)
    T = {"e_cf": rnd(N_ITEMS, D_CF), "z_base": rnd(N_ITEMS, D), "s_item": rnd(N_ITEMS, DSI),
         "r": rnd(N_USERS, D_CF), "h_base": rnd(N_USERS, D), "s_user": rnd(N_USERS, DSU)}
    T = {k: v.float().double() for k, v in T.items()}               # float32 values
    flat32 = []
    for nm, shp in tensor_shapes():
        fan = shp[1] if len(shp) == 2 else (H if nm.endswith((".b2",)) else D_CF + DSI)
        flat32.append((rnd(*shp) * 0.8 / math.sqrt(fan) + (0.3 if nm.endswith(".ca") else 0.0))
                      .reshape(-1))
    flat = torch.cat(flat32).float().double()
    user = torch.randint(0, N_USERS, (B,), generator=gen)
    user[3] = user[1]                                                # repeated user
    pos = torch.randint(0, N_ITEMS, (B,), generator=gen)
    neg = torch.randint(0, N_ITEMS, (B, K), generator=gen)
    neg[2, 1] = pos[2]                                               # an accidental hit
    neg[5, 0] = neg[5, 2]                                            # a repeated negative
    pos[7] = pos[4]                                                  # a repeated positive
    sigma, norm, lam = 0.7, B + 3.0, 0.6
    flat = flat.clone().requires_grad_(True)
    P = split_slab(flat)
    lrec, lkl, lb = losses(P, T, user, pos, neg, loss, gate, sigma, norm)
    g_rec = torch.autograd.grad(lrec, flat, retain_graph=True)[0]
    g_all = torch.autograd.grad(lrec + lkl, flat, retain_graph=True)[0]
    fisher = torch.zeros_like(flat)
    for b in range(B):
        gb = torch.autograd.grad(lb[b], flat, retain_graph=True)[0]
        fisher += gb ** 2 / B
    # EWC with a given Fisher and anchor
    F = (torch.rand(flat.shape, generator=gen) * 2).float().double()
    anchor = (flat.detach() + 0.1 * rnd(flat.shape[0])).float().double()
    ewc = lam * (F * (flat - anchor) ** 2).sum()
    g_ewc = torch.autograd.grad(ewc, flat)[0]
    # dynamic latents of all items and users
    with torch.no_grad():
        zdyn, _ = side_forward(P, "item", torch.cat([T["e_cf"], T["s_item"]], 1), T["z_base"], gate)
        hdyn, _ = side_forward(P, "user", torch.cat([T["r"], T["s_user"]], 1), T["h_base"], gate)
    # Adam (torch.optim.Adam, PyTorch's formula) on L_rec + L_kl + L_ewc, EMA after each step
    lr, betas, eps, steps, ema_decay = 0.01, (0.9, 0.999), 1e-8, 3, 0.9
    w = flat.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=betas, eps=eps)
    ema = w.detach().clone()
    for _ in range(steps):
        opt.zero_grad()
        Pw = split_slab(w)
        a, b_, _ = losses(Pw, T, user, pos, neg, loss, gate, sigma, norm)
        tot = a + b_ + lam * (F * (w - anchor) ** 2).sum()
        tot.backward()
        opt.step()
        ema = ema_decay * ema + (1 - ema_decay) * w.detach()
    pre = os.path.join(out, name + "_")
    write(pre + "params.f32", flat.detach().numpy(), "<f4")
    for k, v in T.items():
        write(pre + k + ".f32", v.numpy(), "<f4")
    write(pre + "user.i32", user.numpy(), "<i4")
    write(pre + "pos.i32", pos.numpy(), "<i4")
    write(pre + "neg.i32", neg.numpy(), "<i4")
    write(pre + "grad_rec.f64", g_rec.numpy(), "<f8")
    write(pre + "grad_all.f64", g_all.numpy(), "<f8")
    write(pre + "fisher.f64", fisher.numpy(), "<f8")
    write(pre + "ewc_F.f32", F.numpy(), "<f4")
    write(pre + "ewc_anchor.f32", anchor.numpy(), "<f4")
    write(pre + "ewc_grad.f64", g_ewc.numpy(), "<f8")
    write(pre + "adam.f64", w.detach().numpy(), "<f8")
    write(pre + "ema.f64", ema.numpy(), "<f8")
    write(pre + "zdyn.f64", zdyn.numpy(), "<f8")
    write(pre + "hdyn.f64", hdyn.numpy(), "<f8")
    return {"name": name, "loss": loss, "gate": gate, "n_items": N_ITEMS, "n_users": N_USERS,
            "d_cf": D_CF, "d": D, "hidden": H, "ds_item": DSI, "ds_user": DSU, "negatives": K,
            "B": B, "nparams": int(flat.shape[0]), "sigma": sigma, "norm": norm,
            "loss_rec": float(lrec), "loss_kl": float(lkl), "lambda_ewc": lam,
            "loss_ewc": float(ewc), "fisher_norm": B,
            "adam": {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps, "steps": steps,
                     "ema_decay": ema_decay}}


# ---- window summaries (NumPy) ------------------------------------------------------------------

FEATS = ["count", "trend", "recency", "cooc"]


def np_summaries(mask, recent, tau_ms, nu, ni, cur, prev, t_begin, t_end):
    cu, ci, ct = cur
    pu, pi, pt = prev
    tau = tau_ms if tau_ms > 0 else float(t_end - t_begin)
    tau = tau if tau > 0 else 1.0
    on = [bool(mask >> k & 1) for k in range(4)]

    def base(ids_c, ids_p, x):
        c = int((ids_c == x).sum())
        cp = int((ids_p == x).sum())
        times = np.concatenate([ct[ids_c == x], pt[ids_p == x]])
        row = []
        if on[0]:
            row.append(math.log(1 + c))
        if on[1]:
            row.append(math.log((1 + c) / (1 + cp)))
        if on[2]:
            row.append(math.exp(-max(t_end - int(times.max()), 0) / tau) if len(times) else 0.0)
        return row

    # R_u: the user's last `recent` current interactions by (time, position)
    R = []
    for u in range(nu):
        idx = np.nonzero(cu == u)[0]
        idx = idx[np.lexsort((idx, ct[idx]))]
        R.append(ci[idx[-recent:]] if len(idx) else np.zeros(0, dtype=np.int64))
    P = np.zeros(ni)
    for r in R:
        for i in set(r.tolist()):
            m = int((r == i).sum())
            P[i] += m * (len(r) - m)
    s_item = np.array([base(ci, pi, i) + ([math.log1p(P[i])] if on[3] else [])
                       for i in range(ni)]).reshape(ni, -1)
    rows = []
    for u in range(nu):
        row = base(cu, pu, u)
        if on[3]:
            row += (s_item[R[u]].mean(0).tolist() if len(R[u]) else [0.0] * s_item.shape[1])
        rows.append(row)
    return s_item, np.array(rows).reshape(nu, -1)


def summary_case(out, name, mask, recent, tau_ms, rng, no_prev=False):
    nu, ni, n, np_ = 15, 25, 140, 90
    t_begin, t_end = 1_600_000_000_000, 1_600_000_000_000 + 7 * 86_400_000
    cu = rng.integers(0, nu, n)
    cu[cu == nu - 1] = 0                                             # the last user stays idle
    ci = rng.integers(0, ni, n)
    ci[ci == ni - 2] = 1                                             # an item seen only before
    ct = rng.integers(t_begin, t_end, n)
    ct[10:30] = ct[10]                                               # time ties
    pu, pi = rng.integers(0, nu, np_), rng.integers(0, ni, np_)
    pt = rng.integers(t_begin - 7 * 86_400_000, t_begin, np_)
    if no_prev:
        pu, pi, pt = pu[:0], pi[:0], pt[:0]
    s_item, s_user = np_summaries(mask, recent, tau_ms, nu, ni, (cu, ci, ct), (pu, pi, pt),
                                  t_begin, t_end)
    pre = os.path.join(out, name + "_")
    for k, v, t in (("cu", cu, "<i4"), ("ci", ci, "<i4"), ("ct", ct, "<i8"), ("pu", pu, "<i4"),
                    ("pi", pi, "<i4"), ("pt", pt, "<i8")):
        write(pre + k + ".bin", v, t)
    write(pre + "s_item.f64", s_item, "<f8")
    write(pre + "s_user.f64", s_user, "<f8")
    return {"name": name, "features": mask, "recent": recent, "tau_ms": tau_ms, "n_users": nu,
            "n_items": ni, "n": n, "n_prev": len(pu), "t_begin": t_begin, "t_end": t_end,
            "ds_item": s_item.shape[1], "ds_user": s_user.shape[1]}


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "adapter")
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(20251001)
    cases = [model_case(out, "softmax_gate", "softmax", 1, gen),
             model_case(out, "bce_gate", "bce", 1, gen),
             model_case(out, "softmax_nogate", "softmax", 0, gen)]
    rng = np.random.default_rng(7)
    summ = [summary_case(out, "all_tau0", 15, 4, 0.0, rng),
            summary_case(out, "all_tau6h", 15, 3, 6 * 3_600_000.0, rng),
            summary_case(out, "count_cooc", 1 | 8, 5, 0.0, rng),
            summary_case(out, "trend_recency_noprev", 2 | 4, 2, 3_600_000.0, rng, no_prev=True)]
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"format": "dynmm-adapter-ref", "version": 1, "cases": cases,
                   "summaries": summ}, f, indent=1)
    print("adapter reference: %d model cases, %d summary cases in %s" % (len(cases), len(summ), out))


if __name__ == "__main__":
    main()
