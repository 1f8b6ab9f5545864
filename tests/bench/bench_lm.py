#!/usr/bin/python3
"""bench_lm.py: the PyTorch side of the frozen-LM benchmark (tests/bench/bench_lm.sh).

    bench_lm.py forward DIR THREADS B T REPS [PREC]
    bench_lm.py score DIR THREADS P NCAND CLEN REPS [PREC]
    bench_lm.py prompt DIR THREADS B T NSOFT REPS [PREC]
    bench_lm.py autocast                  prints 1 if this torch runs bf16 autocast on the CPU, else 0

Loads the same model.safetensors as the C side (format parsed by hand: no safetensors package
here) into a float32 GPT-2 written the way Hugging Face's GPT2LMHeadModel computes it (Conv1D
addmm, matmul attention with a causal mask, tanh GELU, tied head), under torch.inference_mode with
torch.set_num_threads(THREADS). Scoring follows the usual KV-cache recipe: the prefix runs once,
its keys/values are expanded over the candidate batch, logits of every candidate position are
log-softmaxed and the candidate tokens gathered. Inputs are the C side's: (i * 7919 + 13) % V.
Prints one key=value line like bench_lm.c. PREC: f32 (default) or bf16, which runs the model under
torch.autocast("cpu", dtype=torch.bfloat16) (matrix products in bfloat16 through oneDNN, layer norms
and softmax in float32), PyTorch's own reduced-precision CPU inference.
"""
import contextlib
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from st_io import read_safetensors_f32  # noqa: E402


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    t = read_safetensors_f32(os.path.join(d, "model.safetensors"))
    P = {name.replace("transformer.", ""): torch.from_numpy(a) for name, a in t.items()}
    return cfg, P


class GPT2:
    def __init__(self, cfg, P):
        self.cfg, self.P = cfg, P
        self.L, self.C, self.NH = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
        T = cfg["n_positions"]
        self.mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T)
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)

    def conv1d(self, x, l, name):
        w, b = self.P[f"h.{l}.{name}.weight"], self.P[f"h.{l}.{name}.bias"]
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])

    def forward(self, ids, past=None, emb=None):
        """ids (B, T) or emb (B, T, C) (inputs_embeds); past: list of (k, v) (B, NH, P, hs) per layer.
        Returns logits, new past."""
        B, T = ids.shape if emb is None else emb.shape[:2]
        P0 = past[0][0].shape[2] if past else 0
        C, NH, hs = self.C, self.NH, self.C // self.NH
        if emb is None:
            emb = F.embedding(ids, self.P["wte.weight"])
        x = emb + self.P["wpe.weight"][P0:P0 + T]
        new = []
        for l in range(self.L):
            h = F.layer_norm(x, (C,), self.P[f"h.{l}.ln_1.weight"], self.P[f"h.{l}.ln_1.bias"], self.eps)
            q, k, v = self.conv1d(h, l, "attn.c_attn").split(C, dim=2)
            q = q.view(B, T, NH, hs).permute(0, 2, 1, 3)
            k = k.view(B, T, NH, hs).permute(0, 2, 1, 3)
            v = v.view(B, T, NH, hs).permute(0, 2, 1, 3)
            if past:
                k = torch.cat((past[l][0], k), dim=-2)
                v = torch.cat((past[l][1], v), dim=-2)
            new.append((k, v))
            w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs)
            S = k.shape[-2]
            m = self.mask[:, :, S - T:S, :S]
            w = torch.where(m, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
            w = w.softmax(-1)
            y = torch.matmul(w, v).permute(0, 2, 1, 3).reshape(B, T, C)
            x = x + self.conv1d(y, l, "attn.c_proj")
            h = F.layer_norm(x, (C,), self.P[f"h.{l}.ln_2.weight"], self.P[f"h.{l}.ln_2.bias"], self.eps)
            x = x + self.conv1d(F.gelu(self.conv1d(h, l, "mlp.c_fc"), approximate="tanh"), l, "mlp.c_proj")
        x = F.layer_norm(x, (C,), self.P["ln_f.weight"], self.P["ln_f.bias"], self.eps)
        return F.linear(x, self.P["wte.weight"]), new


def tokens(n, V, salt=0):
    return (((np.arange(n, dtype=np.int64) + salt) * 7919 + 13) % V)


def autocast_ok():
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.ones(4, 4) @ torch.ones(4, 4)
        return y.dtype == torch.bfloat16
    except Exception:  # an old torch without CPU autocast
        return False


def median_seconds(run, reps, setup=None):
    """run() (run(setup()) with a setup, which stays off the clock) reps + 1 times, the first a
    warm-up: the median seconds of the timed calls and the last call's result"""
    ts = []
    for r in range(reps + 1):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        out = run(arg) if setup else run()
        if r:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main():
    if sys.argv[1] == "autocast":
        print(1 if autocast_ok() else 0)
        return
    mode, d, th = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nfix = 7 if mode == "forward" else 8
    prec = sys.argv[nfix] if len(sys.argv) > nfix else "f32"
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if prec == "bf16" else contextlib.nullcontext
    torch.set_num_threads(th)
    t0 = time.perf_counter()
    cfg, P = load(d)
    m = GPT2(cfg, P)
    t_load = time.perf_counter() - t0
    V = cfg["vocab_size"]
    wbytes = sum(t.numel() * 4 for t in P.values())
    if mode == "prompt":
        B, T, ns, reps = (int(x) for x in sys.argv[4:8])
        C = cfg["n_embd"]
        ids = torch.from_numpy(tokens(B * T, V).reshape(B, T))
        i = np.arange(B * T).reshape(B, T)
        tg = torch.from_numpy(np.where(i % T >= ns, (i * 7919 + 29) % V, -1))
        nt = int((tg >= 0).sum())
        soft0 = torch.from_numpy((0.05 * np.sin(0.1 * np.arange(B * ns * C))).astype(np.float32)).view(B, ns, C)

        def step(soft):
            with amp():
                emb = torch.cat((soft, F.embedding(ids[:, ns:], m.P["wte.weight"])), dim=1)
                logits, _ = m.forward(None, emb=emb)
                loss = F.cross_entropy(logits.view(-1, V).float(), tg.view(-1), ignore_index=-1, reduction="sum") / nt
            loss.backward()
            return soft, loss

        s, (soft, loss) = median_seconds(step, reps, lambda: soft0.clone().requires_grad_(True))
        print(f"tokens_per_s={B * T / s:.1f} seconds={s:.4f} loss={loss.item():.6f} "
              f"checksum={soft.grad.double().abs().sum().item():.6e} "
              f"peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024} precision={prec}")
        return
    with torch.inference_mode(), amp():
        if mode == "forward":
            B, T, reps = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
            ids = torch.from_numpy(tokens(B * T, V).reshape(B, T))
            s, (logits, _) = median_seconds(lambda: m.forward(ids), reps)
            cs = logits[-1, -1].double().sum().item()
            ab = logits[-1, -1].double().abs().sum().item()
            print(f"tokens_per_s={B * T / s:.1f} seconds={s:.4f} checksum={cs:.4f} abssum={ab:.4f} load_s={t_load:.2f} "
                  f"precision={prec}")
        elif mode == "score":
            Pn, nc, cl, reps = (int(x) for x in sys.argv[4:8])
            pre = torch.from_numpy(tokens(Pn, V)).view(1, Pn)
            cand = torch.from_numpy(tokens(nc * cl, V, 100000).reshape(nc, cl))

            def score():
                lg, past = m.forward(pre)
                first = lg[0, -1].float().log_softmax(-1)
                pastx = [(k.expand(nc, -1, -1, -1), v.expand(nc, -1, -1, -1)) for k, v in past]
                lg2, _ = m.forward(cand, pastx)
                lp = lg2.float().log_softmax(-1)
                return first[cand[:, 0]] + lp[:, :-1].gather(-1, cand[:, 1:, None])[..., 0].sum(-1)

            s, ll = median_seconds(score, reps)
            print(f"cands_per_s={nc / s:.1f} seconds={s:.4f} ll_sum={ll.double().sum().item():.4f} "
                  f"ll0={ll[0].item():.5f} peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024} "
                  f"weights={wbytes} load_s={t_load:.2f} precision={prec}")


if __name__ == "__main__":
    main()
