"""sasrec_torch.py: a PyTorch SASRec with the same arrangement as dynmm's C kernels (src/sasrec/).

It follows pmixer/SASRec.pytorch (the PyTorch port of kang205/SASRec): item embeddings scaled by
sqrt(d) plus learned positional embeddings, dropout, the timeline mask after the embedding and after
every block, causal self-attention with key-padding masking (as the TF reference's key masking),
point-wise feed-forward (the reference's Conv1d(k=1) written as Linear), layer norms with eps 1e-8
and a final layer norm. Norm placement: "kang" (Q = LN1(x); x = Q + MHA(Q, x, x); x = LN2(x);
x = x + FFN(x)), "pre" and "post". Used by gen_sasrec.py (parity data, in float64) and by
tests/bench/bench_sasrec.py (throughput, float32).

Dropout either samples as usual (torch dropout) or multiplies by given keep masks (dense layout:
emb (B, T, C), att (L, B, H, T, T), fc1 (L, B, T, F), fc2 (L, B, T, C)), so the C code can replay it.
"""
import math

import torch
import torch.nn.functional as Fn

LN_EPS = 1e-8
TENSORS = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
           "ln2w", "ln2b", "fc1w", "fc1b", "fc2w", "fc2b", "lnfw", "lnfb"]


class SASRec(torch.nn.Module):
    def __init__(self, n_items, C=50, T=50, L=2, H=1, F=None, dropout=0.5, norm="kang"):
        super().__init__()
        F = F or C
        self.n_items, self.C, self.T, self.L, self.H, self.F = n_items, C, T, L, H, F
        self.p, self.norm = dropout, norm
        V = n_items + 1
        P = torch.nn.Parameter
        self.wte = P(torch.zeros(V, C))
        self.wpe = P(torch.zeros(T, C))
        self.ln1w, self.ln1b = P(torch.ones(L, C)), P(torch.zeros(L, C))
        self.qkvw, self.qkvb = P(torch.zeros(L, 3 * C, C)), P(torch.zeros(L, 3 * C))
        self.attprojw, self.attprojb = P(torch.zeros(L, C, C)), P(torch.zeros(L, C))
        self.ln2w, self.ln2b = P(torch.ones(L, C)), P(torch.zeros(L, C))
        self.fc1w, self.fc1b = P(torch.zeros(L, F, C)), P(torch.zeros(L, F))
        self.fc2w, self.fc2b = P(torch.zeros(L, C, F)), P(torch.zeros(L, C))
        self.lnfw, self.lnfb = P(torch.ones(C)), P(torch.zeros(C))
        self.masks = None

    def params(self):
        return [getattr(self, n) for n in TENSORS]

    def reference_init(self, gen):
        """pmixer main.py: xavier_normal_ on matrices/embeddings, Conv1d default bias init, zero
        attention biases, LN ones/zeros, padding row 0 zeroed."""
        with torch.no_grad():
            def xn(t, fan_in, fan_out):
                t.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=gen)
            xn(self.wte, self.C, self.n_items + 1)
            self.wte[0].zero_()
            xn(self.wpe, self.C, self.T)
            for l in range(self.L):
                xn(self.qkvw[l], self.C, 3 * self.C)
                xn(self.attprojw[l], self.C, self.C)
                xn(self.fc1w[l], self.C, self.F)
                self.fc1b[l].uniform_(-1 / math.sqrt(self.C), 1 / math.sqrt(self.C), generator=gen)
                xn(self.fc2w[l], self.F, self.C)
                self.fc2b[l].uniform_(-1 / math.sqrt(self.F), 1 / math.sqrt(self.F), generator=gen)

    # -- pieces --
    def drop(self, x, site, l=None):
        if not self.training or self.p == 0:
            return x
        if self.masks is not None:
            m = self.masks[site] if l is None else self.masks[site][l]
            return x * m.to(x.dtype) * (1.0 / (1.0 - self.p))
        return Fn.dropout(x, self.p, True)

    def ln(self, x, w, b):
        return Fn.layer_norm(x, (self.C,), w, b, LN_EPS)

    def mha(self, q_in, kv_in, l, allowed):
        B, T, C = q_in.shape
        H, hs = self.H, C // self.H
        w, b = self.qkvw[l], self.qkvb[l]
        q = Fn.linear(q_in, w[:C], b[:C])
        k = Fn.linear(kv_in, w[C:2 * C], b[C:2 * C])
        v = Fn.linear(kv_in, w[2 * C:], b[2 * C:])
        q, k, v = [t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v)]
        s = q @ k.transpose(-1, -2) / math.sqrt(hs)
        s = s.masked_fill(~allowed, -1e9)
        p = torch.softmax(s, -1) * allowed.to(s.dtype)  # rows without keys (padding queries) -> 0
        p = self.drop(p, "att", l)
        y = (p @ v).transpose(1, 2).reshape(B, T, C)
        return Fn.linear(y, self.attprojw[l], self.attprojb[l])

    def ffn(self, x, l):
        h = self.drop(torch.relu(Fn.linear(x, self.fc1w[l], self.fc1b[l])), "fc1", l)
        return self.drop(Fn.linear(h, self.fc2w[l], self.fc2b[l]), "fc2", l)

    def log2feats(self, seq):
        B, T = seq.shape
        tm = (seq != 0).unsqueeze(-1).to(self.wte.dtype)
        x = self.wte[seq] * math.sqrt(self.C) + self.wpe[:T].unsqueeze(0)
        x = self.drop(x, "emb") * tm
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=seq.device))
        allowed = causal.unsqueeze(0).unsqueeze(0) & (seq != 0).view(B, 1, 1, T)
        for l in range(self.L):
            if self.norm == "kang":
                a = self.ln(x, self.ln1w[l], self.ln1b[l])
                y = a + self.mha(a, x, l, allowed)
                b = self.ln(y, self.ln2w[l], self.ln2b[l])
                x = b + self.ffn(b, l)
            elif self.norm == "pre":
                a = self.ln(x, self.ln1w[l], self.ln1b[l])
                y = x + self.mha(a, a, l, allowed)
                x = y + self.ffn(self.ln(y, self.ln2w[l], self.ln2b[l]), l)
            else:
                y = self.ln(x + self.mha(x, x, l, allowed), self.ln1w[l], self.ln1b[l])
                x = self.ln(y + self.ffn(y, l), self.ln2w[l], self.ln2b[l])
            x = x * tm
        return self.ln(x, self.lnfw, self.lnfb)

    def loss(self, seq, pos, neg, kind="bce", norm=None):
        """Mean over targets (pos != 0), or sum / norm when norm is given."""
        h = self.log2feats(seq)
        tgt = pos != 0
        cnt = float(tgt.sum()) if norm is None else float(norm)
        if kind == "bce":
            pl = (h * self.wte[pos]).sum(-1)
            nl = (h * self.wte[neg]).sum(-1)
            per = Fn.softplus(-pl) + Fn.softplus(nl)
            return per[tgt].sum() / cnt
        logits = h[tgt] @ self.wte[1:].t()
        return Fn.cross_entropy(logits, pos[tgt] - 1, reduction="sum") / cnt

    def user_states(self, seq):
        return self.log2feats(seq)[:, -1, :]


def to_slab(tensors):
    return torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors]).numpy()


def from_slab(model, slab):
    off = 0
    with torch.no_grad():
        for t in model.params():
            n = t.numel()
            t.copy_(torch.from_numpy(slab[off:off + n]).view_as(t).to(t.dtype))
            off += n
    assert off == slab.size
