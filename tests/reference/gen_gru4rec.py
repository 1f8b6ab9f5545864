#!/usr/bin/python3
"""gen_gru4rec.py OUTDIR: PyTorch reference for tests/unit/test_gru4rec.c (GRU4Rec, src/gru4rec/gru4rec.h).

The model as RecBole's GRU4Rec (loss CE): item embedding -> dropout -> torch.nn.GRU (bias=False,
LAYERS layers) -> nn.Linear(H, E) -> dot products with the item embedding table, cross-entropy over
every item on the next item at every position of a row (the rows are left-aligned, of lengths LENS).
The dropout mask is given explicitly (mask.f32, time-major (T, B, E): 0 or 1/(1-p)).

Writes OUTDIR/gru4rec/: params.f32 (the C slab: emb (NI, E); per layer w_ih (3H, in), w_hh (3H, H);
dense_w (E, H); dense_b (E)), seq.i32 tgt.i32 (B, T), len.i32 (B), mask.f32, logits.f64 (the valid
rows in (b, t) order, NI each), loss.f64 (sum over the valid rows of lse - logit of the target),
grad.f64 (gradient of loss / NORM), adam.f64 (the parameters after STEPS torch.optim.Adam steps on
loss / NORM with the same batch and mask), scores.f64 (B, NI: no dropout, each row's last position).
"""
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
NI, E, H, L, T, B = 13, 6, 5, 2, 4, 3
LENS = [4, 2, 3]
P, NORM, LR, STEPS = 0.3, 11.0, 0.01, 3

out = os.path.join(sys.argv[1], "gru4rec")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(11)
shapes = [("emb", (NI, E))]
for l in range(L):
    shapes += [("w_ih_l%d" % l, (3 * H, E if l == 0 else H)), ("w_hh_l%d" % l, (3 * H, H))]
shapes += [("dense_w", (E, H)), ("dense_b", (E,))]
nparams = sum(int(np.prod(s)) for _, s in shapes)
p32 = (rng.standard_normal(nparams) * 0.5).astype(np.float32)
seq = np.zeros((B, T), np.int32)
tgt = np.zeros((B, T), np.int32)
for b, n in enumerate(LENS):
    seq[b, :n] = rng.integers(0, NI, n)
    tgt[b, :n] = rng.integers(0, NI, n)
seq[1, 0] = seq[0, 2]  # a repeated input item: its embedding gradient accumulates
mask = np.where(rng.random((T, B, E)) < P, 0.0, 1.0 / (1.0 - P)).astype(np.float32)


class Ref(torch.nn.Module):
    """the model with its tensors set from a slab"""

    def __init__(self, slab):
        super().__init__()
        self.gru = torch.nn.GRU(E, H, num_layers=L, bias=False, batch_first=True)
        self.emb = torch.nn.Parameter(torch.zeros(NI, E))
        self.dense = torch.nn.Linear(H, E)
        o = 0
        for name, s in shapes:
            n = int(np.prod(s))
            self.tensor(name).data.copy_(torch.tensor(slab[o:o + n].astype(np.float64)).view(*s))
            o += n

    def tensor(self, name):
        if name == "emb":
            return self.emb
        if name.startswith("dense_"):
            return self.dense.weight if name == "dense_w" else self.dense.bias
        return getattr(self.gru, name.replace("w_", "weight_"))

    def slab(self, grad=False):
        return np.concatenate([(self.tensor(n).grad if grad else self.tensor(n)).detach().numpy().ravel() for n, _ in shapes])

    def forward(self, mask_tb):
        """o (B, T, E) at every position; mask_tb (T, B, E) or None"""
        x = self.emb[torch.tensor(seq, dtype=torch.long)]
        if mask_tb is not None:
            x = x * torch.tensor(mask_tb.astype(np.float64)).permute(1, 0, 2)
        h, _ = self.gru(x)
        return self.dense(h)

    def loss(self):
        o = self.forward(mask)
        rows = [(b, t) for b in range(B) for t in range(LENS[b])]
        logits = torch.stack([o[b, t] for b, t in rows]) @ self.emb.T
        targets = torch.tensor([int(tgt[b, t]) for b, t in rows])
        return logits, torch.nn.functional.cross_entropy(logits, targets, reduction="sum")


m = Ref(p32)
logits, l = m.loss()
(l / NORM).backward()
grad = m.slab(grad=True)
with torch.no_grad():
    o = m.forward(None)
    scores = torch.stack([o[b, LENS[b] - 1] for b in range(B)]) @ m.emb.T
q = Ref(p32)
opt = torch.optim.Adam(q.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
for _ in range(STEPS):
    opt.zero_grad()
    (q.loss()[1] / NORM).backward()
    opt.step()
p32.tofile(os.path.join(out, "params.f32"))
seq.tofile(os.path.join(out, "seq.i32"))
tgt.tofile(os.path.join(out, "tgt.i32"))
np.array(LENS, np.int32).tofile(os.path.join(out, "len.i32"))
mask.tofile(os.path.join(out, "mask.f32"))
logits.detach().numpy().tofile(os.path.join(out, "logits.f64"))
np.array([l.item()]).tofile(os.path.join(out, "loss.f64"))
grad.tofile(os.path.join(out, "grad.f64"))
q.slab().tofile(os.path.join(out, "adam.f64"))
scores.numpy().tofile(os.path.join(out, "scores.f64"))
print("gru4rec: %d parameters, %d targets, loss %.6f, |grad| %.4g" % (nparams, sum(LENS), l.item(), np.abs(grad).max()))
