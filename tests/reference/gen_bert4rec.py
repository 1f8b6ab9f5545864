#!/usr/bin/python3
"""gen_bert4rec.py OUTDIR: PyTorch reference for tests/unit/test_bert4rec.c (BERT4Rec, src/bert4rec/bert4rec.h).

The model written out in torch operations (float64): x0 = dropout(LN_e(E[s] + P[t])); L post-norm
blocks y = LN1(x + dropout(W_o MHA(x) + b_o)), x' = LN2(y + dropout(W_2 gelu(W_1 y + b_1) + b_2)) with
bidirectional multi-head attention within each row (dropout on the probabilities); at a masked
position z = LN_h(gelu(W_h x_L + b_h)), logits = E[0..NI) z + b_out; cross-entropy over every item.
GELU is torch's tanh form, layer norms eps 1e-12. Rows are left-aligned, of lengths LENS; the cloze
mask is fixed (item id NI is [mask]) and so are the dropout flags (P = 0.3), given in the C code's
packed layout (positions of row 0, then row 1, ...; attention per row an (H, n, n) block).

Writes OUTDIR/bert4rec/: params.f32 (the C slab in the order of bert4rec_views), seq.i32 tgt.i32 (B, T;
tgt -1 where nothing is predicted), len.i32 (B), m_emb.u8 (N, C), m_att.u8 (L, sum H n^2), m_o.u8
m_f.u8 (L, N, C), logits.f64 (the targets in (row, position) order, NI each), loss.f64 (sum over the
targets of lse - logit), grad.f64 (gradient of loss / NORM), adam.f64 (the parameters after STEPS
torch.optim.Adam steps on loss / NORM with the same batch and flags, the key bias's gradient set to
its exact value 0), hist.i32 / hlen.i32 (three
users' histories) and scores.f64 (3, NI: no dropout, each history's latest T - 1 items then [mask],
the logits at [mask]).
"""
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
NI, C, H, F, L, T, B = 13, 8, 2, 12, 2, 5, 3
LENS = [5, 2, 4]
MASKED = [[1, 4], [0], [2, 3]]
P, NORM, LR, STEPS, EPS = 0.3, 7.0, 0.01, 3, 1e-12
KEEP = float(np.float32(1.0) / (np.float32(1.0) - np.float32(P)))  # the C code's float keep factor
HLENS = [7, 2, 0]

out = os.path.join(sys.argv[1], "bert4rec")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(23)
shapes = [("emb", (NI + 1, C)), ("pos", (T, C)), ("lnew", (C,)), ("lneb", (C,)), ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
          ("ow", (L, C, C)), ("ob", (L, C)), ("ln1w", (L, C)), ("ln1b", (L, C)), ("fc1w", (L, F, C)), ("fc1b", (L, F)),
          ("fc2w", (L, C, F)), ("fc2b", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)), ("hw", (C, C)), ("hb", (C,)),
          ("lnhw", (C,)), ("lnhb", (C,)), ("outb", (NI,))]
parts = []
for name, s in shapes:
    n = int(np.prod(s))
    if name.startswith("ln") and name.endswith("w"):
        parts.append(1.0 + 0.2 * rng.standard_normal(n))  # gains near 1
    else:
        parts.append(0.4 * rng.standard_normal(n))
p32 = np.concatenate(parts).astype(np.float32)
nparams = p32.size

seq = np.zeros((B, T), np.int32)
tgt = np.full((B, T), -1, np.int32)
for b, n in enumerate(LENS):
    seq[b, :n] = rng.integers(0, NI, n)
seq[2, 0] = seq[0, 0]  # a repeated input item: its embedding gradient accumulates
for b, ps in enumerate(MASKED):
    for t in ps:
        tgt[b, t] = seq[b, t]
        seq[b, t] = NI
N = sum(LENS)
m_emb = (rng.random((N, C)) >= P).astype(np.uint8)
m_att = (rng.random((L, sum(H * n * n for n in LENS))) >= P).astype(np.uint8)
m_o = (rng.random((L, N, C)) >= P).astype(np.uint8)
m_f = (rng.random((L, N, C)) >= P).astype(np.uint8)
hist = rng.integers(0, NI, sum(HLENS)).astype(np.int32)


def views(slab):
    v, o = {}, 0
    for name, s in shapes:
        n = int(np.prod(s))
        v[name] = slab[o:o + n].view(*s)
        o += n
    return v


def drop(x, mask):
    return x if mask is None else x * torch.tensor(mask.astype(np.float64)) * KEEP


def ln(x, w, b):
    return torch.nn.functional.layer_norm(x, (C,), w, b, eps=EPS)


def gelu(x):
    return torch.nn.functional.gelu(x, approximate="tanh")


def forward(w, rows, masks):
    """rows: list of item lists; masks: None or (m_emb, m_att, m_o, m_f) packed; returns x_L (N, C)"""
    items = torch.tensor([i for r in rows for i in r], dtype=torch.long)
    tpos = torch.tensor([t for r in rows for t in range(len(r))], dtype=torch.long)
    me, ma, mo, mf = masks if masks is not None else (None, None, None, None)
    x = drop(ln(w["emb"][items] + w["pos"][tpos], w["lnew"], w["lneb"]), me)
    hs = C // H
    for l in range(L):
        qkv = x @ w["qkvw"][l].T + w["qkvb"][l]
        ys, o, ao = [], 0, 0
        for r in rows:
            n = len(r)
            q, k, v = qkv[o:o + n, :C], qkv[o:o + n, C:2 * C], qkv[o:o + n, 2 * C:]
            heads = []
            for h in range(H):
                s = q[:, h * hs:(h + 1) * hs] @ k[:, h * hs:(h + 1) * hs].T / np.sqrt(hs)
                pr = torch.softmax(s, dim=1)
                if ma is not None:
                    pr = drop(pr, ma[l, ao + h * n * n:ao + (h + 1) * n * n].reshape(n, n))
                heads.append(pr @ v[:, h * hs:(h + 1) * hs])
            ys.append(torch.cat(heads, dim=1))
            o += n
            ao += H * n * n
        a = torch.cat(ys, dim=0) @ w["ow"][l].T + w["ob"][l]
        y = ln(x + drop(a, None if mo is None else mo[l]), w["ln1w"][l], w["ln1b"][l])
        f = gelu(y @ w["fc1w"][l].T + w["fc1b"][l]) @ w["fc2w"][l].T + w["fc2b"][l]
        x = ln(y + drop(f, None if mf is None else mf[l]), w["ln2w"][l], w["ln2b"][l])
    return x


def head_logits(w, h):
    z = ln(gelu(h @ w["hw"].T + w["hb"]), w["lnhw"], w["lnhb"])
    return z @ w["emb"][:NI].T + w["outb"]


def loss_of(slab):
    w = views(slab)
    rows = [list(seq[b, :n]) for b, n in enumerate(LENS)]
    x = forward(w, rows, (m_emb, m_att, m_o, m_f))
    trow, targets, o = [], [], 0
    for b, n in enumerate(LENS):
        for t in range(n):
            if tgt[b, t] >= 0:
                trow.append(o + t)
                targets.append(int(tgt[b, t]))
        o += n
    logits = head_logits(w, x[trow])
    return logits, torch.nn.functional.cross_entropy(logits, torch.tensor(targets), reduction="sum")


slab = torch.tensor(p32.astype(np.float64), requires_grad=True)
logits, l = loss_of(slab)
(l / NORM).backward()
grad = slab.grad.numpy().copy()
with torch.no_grad():
    w = views(slab)
    rows, o = [], 0
    for n in HLENS:
        rows.append(list(hist[o:o + n][-(T - 1):]) + [NI] if n else [NI])
        o += n
    x = forward(w, rows, None)
    last = np.cumsum([len(r) for r in rows]) - 1
    scores = head_logits(w, x[last])
q = torch.tensor(p32.astype(np.float64), requires_grad=True)
o = sum(int(np.prod(s)) for name, s in shapes[:5])  # the start of qkvb (L, 3C)
key_bias = np.concatenate([np.arange(o + l * 3 * C + C, o + l * 3 * C + 2 * C) for l in range(L)])
opt = torch.optim.Adam([q], lr=LR, betas=(0.9, 0.999), eps=1e-8)
for _ in range(STEPS):
    opt.zero_grad()
    (loss_of(q)[1] / NORM).backward()
    q.grad[key_bias] = 0.0  # its exact gradient (the softmax cancels it), as the C trainer sets it
    opt.step()
p32.tofile(os.path.join(out, "params.f32"))
seq.tofile(os.path.join(out, "seq.i32"))
tgt.tofile(os.path.join(out, "tgt.i32"))
np.array(LENS, np.int32).tofile(os.path.join(out, "len.i32"))
for name, a in (("m_emb", m_emb), ("m_att", m_att), ("m_o", m_o), ("m_f", m_f)):
    a.tofile(os.path.join(out, name + ".u8"))
logits.detach().numpy().tofile(os.path.join(out, "logits.f64"))
np.array([l.item()]).tofile(os.path.join(out, "loss.f64"))
grad.tofile(os.path.join(out, "grad.f64"))
q.detach().numpy().tofile(os.path.join(out, "adam.f64"))
hist.tofile(os.path.join(out, "hist.i32"))
np.array(HLENS, np.int32).tofile(os.path.join(out, "hlen.i32"))
scores.numpy().tofile(os.path.join(out, "scores.f64"))
print("bert4rec: %d parameters, %d targets, loss %.6f, |grad| %.4g" % (nparams, len(logits), l.item(), np.abs(grad).max()))
