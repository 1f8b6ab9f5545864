#!/usr/bin/python3
"""gen_gpt2.py: PyTorch reference for the C GPT-2 (src/lm/gpt2.c).

Writes into OUT/gpt2/ (OUT = argv[1]):
  tiny/            config.json + model.safetensors (F32, plain HF names, no lm_head, with the
                   h.N.attn.bias mask buffers a real gpt2 checkpoint carries)
  tiny_f16/        the same weights stored as F16 with a "transformer." prefix and lm_head.weight
  tiny_bf16/       the same weights stored as BF16
  bad_*/           checkpoints the loader must refuse (shape, missing tensor, dtype, config, head)
  ref.safetensors  inputs and reference outputs computed in float64 from the float32 weights:
                   logits, loss, every parameter gradient, soft-input gradients (from the loss and
                   from the loss plus an upstream gradient on the final hidden states), the
                   parameters after one AdamW step, candidate log-likelihoods after a shared prefix,
                   and the logits of the f16/bf16 checkpoints (from their upcast weights).

There are no transformers/safetensors Python packages here: the model is written out functionally
with HF gpt2's conventions (Conv1D (in, out) weights, tanh GELU, tied head) and the safetensors
format by hand (st_io.py).
"""
import json
import math
import os
import sys

import numpy as np
import torch

from st_io import bf16, f16, f32, up16, upbf16, write_safetensors

L, NH, C, MAXT, V = 2, 4, 32, 96, 101
F = 4 * C
B, T = 2, 70
N_SOFT = 5
NORM = 123.0


def make_params(rng):
    def mat(*s, std=0.2):
        return (rng.standard_normal(s) * std).astype(np.float32)

    p = {"wte.weight": mat(V, C, std=0.3), "wpe.weight": mat(MAXT, C, std=0.1)}
    for l in range(L):
        h = f"h.{l}."
        p[h + "ln_1.weight"] = (1 + mat(C, std=0.1))
        p[h + "ln_1.bias"] = mat(C, std=0.1)
        p[h + "attn.c_attn.weight"] = mat(C, 3 * C)
        p[h + "attn.c_attn.bias"] = mat(3 * C, std=0.1)
        p[h + "attn.c_proj.weight"] = mat(C, C)
        p[h + "attn.c_proj.bias"] = mat(C, std=0.1)
        p[h + "ln_2.weight"] = (1 + mat(C, std=0.1))
        p[h + "ln_2.bias"] = mat(C, std=0.1)
        p[h + "mlp.c_fc.weight"] = mat(C, F)
        p[h + "mlp.c_fc.bias"] = mat(F, std=0.1)
        p[h + "mlp.c_proj.weight"] = mat(F, C, std=0.1)
        p[h + "mlp.c_proj.bias"] = mat(C, std=0.1)
    p["ln_f.weight"] = 1 + mat(C, std=0.1)
    p["ln_f.bias"] = mat(C, std=0.1)
    return p


def config_json(**over):
    c = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
         "n_embd": C, "n_head": NH, "n_layer": L, "n_positions": MAXT, "n_ctx": MAXT, "vocab_size": V,
         "layer_norm_epsilon": 1e-5, "n_inner": None, "scale_attn_weights": True,
         "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
         "tie_word_embeddings": True, "bos_token_id": V - 1, "eos_token_id": V - 1}
    c.update(over)
    return json.dumps(c, indent=2)


def write_ckpt(d, tensors, cfg=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(cfg or config_json())
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def ln(x, w, b):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + 1e-5) * w + b


def forward(P, ids, soft, hidden_only=False):
    """P: dict of float64 tensors; ids (B, T) with -1-k for soft row k; returns (lnf, logits)."""
    Bn, Tn = ids.shape
    is_soft = ids < 0
    tok = torch.where(is_soft, torch.zeros_like(ids), ids)
    srow = torch.where(is_soft, -1 - ids, torch.zeros_like(ids))
    emb = torch.where(is_soft[..., None], soft[srow], P["wte.weight"][tok])
    x = emb + P["wpe.weight"][:Tn]
    hs = C // NH
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(L):
        h = f"h.{l}."
        a = ln(x, P[h + "ln_1.weight"], P[h + "ln_1.bias"])
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(Bn, Tn, NH, hs).transpose(1, 2)
        k = k.view(Bn, Tn, NH, hs).transpose(1, 2)
        v = v.view(Bn, Tn, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + y @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"]
        a = ln(x, P[h + "ln_2.weight"], P[h + "ln_2.bias"])
        x = x + gelu(a @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"]) @ P[h + "mlp.c_proj.weight"] \
            + P[h + "mlp.c_proj.bias"]
    hid = ln(x, P["ln_f.weight"], P["ln_f.bias"])
    return hid, hid @ P["wte.weight"].T


def loss_of(logits, targets, norm):
    lp = logits.log_softmax(-1)
    valid = targets >= 0
    t = torch.where(valid, targets, torch.zeros_like(targets))
    nll = -lp.gather(-1, t[..., None])[..., 0]
    return (nll * valid).sum() / norm


# The C slab order and names, and the HF tensor each view gathers over the layers.
SLAB = [("wte", "wte.weight"), ("wpe", "wpe.weight"), ("ln1w", "ln_1.weight"), ("ln1b", "ln_1.bias"),
        ("qkvw", "attn.c_attn.weight"), ("qkvb", "attn.c_attn.bias"), ("attprojw", "attn.c_proj.weight"),
        ("attprojb", "attn.c_proj.bias"), ("ln2w", "ln_2.weight"), ("ln2b", "ln_2.bias"),
        ("fcw", "mlp.c_fc.weight"), ("fcb", "mlp.c_fc.bias"), ("fcprojw", "mlp.c_proj.weight"),
        ("fcprojb", "mlp.c_proj.bias"), ("lnfw", "ln_f.weight"), ("lnfb", "ln_f.bias")]


def slab_view(P, cname, hname):
    if hname in P:
        return P[hname]
    return torch.stack([P[f"h.{l}.{hname}"] for l in range(L)])


def main():
    out = os.path.join(sys.argv[1], "gpt2")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    params = make_params(rng)
    names = list(params)
    buffers = [f32(f"h.{l}.attn.bias", np.tril(np.ones((MAXT, MAXT), np.float32))[None, None]) for l in range(L)]

    # checkpoints
    write_ckpt(os.path.join(out, "tiny"), [f32(n, params[n]) for n in names] + buffers)
    write_ckpt(os.path.join(out, "tiny_f16"),
               [f16("transformer." + n, params[n]) for n in names] + [f16("lm_head.weight", params["wte.weight"])])
    write_ckpt(os.path.join(out, "tiny_bf16"), [bf16(n, params[n]) for n in names])
    bad = {n: params[n] for n in names}
    write_ckpt(os.path.join(out, "bad_shape"),
               [f32(n, bad[n] if n != "h.1.mlp.c_fc.weight" else bad[n].T) for n in names])
    write_ckpt(os.path.join(out, "bad_missing"), [f32(n, bad[n]) for n in names if n != "ln_f.bias"])
    write_ckpt(os.path.join(out, "bad_dtype"),
               [f32(n, bad[n]) if n != "wpe.weight" else (n, "I32", bad[n].shape, bad[n].astype("<i4").tobytes())
                for n in names])
    write_ckpt(os.path.join(out, "bad_config"), [f32(n, bad[n]) for n in names], config_json(n_embd=48, n_head=4))
    write_ckpt(os.path.join(out, "bad_head"),
               [f32(n, bad[n]) for n in names] + [f32("lm_head.weight", bad["wte.weight"] * 1.5)])
    write_ckpt(os.path.join(out, "bad_act"), [f32(n, bad[n]) for n in names], config_json(activation_function="relu"))

    P = {n: torch.tensor(params[n], dtype=torch.float64, requires_grad=True) for n in names}
    ids = torch.tensor(rng.integers(0, V, size=(B, T)), dtype=torch.int64)
    soft_pos = [(0, 3, 0), (0, 4, 1), (1, 0, 2), (1, 10, 3), (1, 11, 4), (0, 60, 2)]
    for b, t, k in soft_pos:
        ids[b, t] = -1 - k
    soft = torch.tensor(rng.standard_normal((N_SOFT, C)) * 0.3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(rng.integers(0, V, size=(B, T)), dtype=torch.int64)
    targets[0, 5:9] = -1
    targets[1, -1] = -1
    dhidden = torch.tensor(rng.standard_normal((B, T, C)) * 0.01, dtype=torch.float64)

    hid, logits = forward(P, ids, soft)
    loss = loss_of(logits, targets, NORM)
    loss.backward()
    grads = {n: P[n].grad.clone() for n in names}
    dsoft = soft.grad.clone()
    soft.grad = None
    for n in names:
        P[n].grad = None
    hid2, logits2 = forward(P, ids, soft)
    (loss_of(logits2, targets, NORM) + (hid2 * dhidden).sum()).backward()
    dsoft2 = soft.grad.clone()

    # one AdamW step with the C grouping: matrices decayed, biases and LN parameters not
    Pn = {n: torch.tensor(params[n], dtype=torch.float64, requires_grad=True) for n in names}
    for n in names:
        Pn[n].grad = grads[n].clone()
    decay = [Pn[n] for n in names if n.endswith("weight") and "ln_" not in n]
    nodecay = [Pn[n] for n in names if not (n.endswith("weight") and "ln_" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    opt.step()

    # scoring: a prefix with soft rows, candidates of varying length (one empty)
    prefix = [5, 17, -1 - 1, 33, -1 - 4, 2, 90]
    cands = [[4], [4, 8, 15], [16, 23, 42, 7, 7], [], [99, 0], [8, 4, 4, 4, 4, 4, 4, 1]]
    cand_ll = []
    with torch.no_grad():
        for cnd in cands:
            seq = torch.tensor([prefix + cnd], dtype=torch.int64)
            _, lg = forward(P, seq, soft)
            lp = lg.log_softmax(-1)[0]
            s = 0.0
            for j, tkn in enumerate(cnd):
                s += lp[len(prefix) + j - 1, tkn].item()
            cand_ll.append(s)
        # greedy continuation of the prefix, 10 tokens
        seq = list(prefix)
        for _ in range(10):
            _, lg = forward(P, torch.tensor([seq]), soft)
            seq.append(int(lg[0, -1].argmax()))
        greedy = seq[len(prefix):]
        P16 = {n: torch.tensor(up16(params[n]), dtype=torch.float64) for n in names}
        Pbf = {n: torch.tensor(upbf16(params[n]), dtype=torch.float64) for n in names}
        _, logits16 = forward(P16, ids, soft)
        _, logitsbf = forward(Pbf, ids, soft)

    ref = [f32("ids", ids.numpy()), f32("targets", targets.numpy()), f32("soft", soft.detach().numpy()),
           f32("dhidden", dhidden.numpy()), f32("logits", logits.detach().numpy()),
           f32("hidden", hid.detach().numpy()), f32("loss", np.array([loss.item()])),
           f32("dsoft", dsoft.numpy()), f32("dsoft_hidden", dsoft2.numpy()),
           f32("logits_f16", logits16.numpy()), f32("logits_bf16", logitsbf.numpy()),
           f32("prefix", np.array(prefix)), f32("cand_tokens", np.array(sum(cands, []) or [0])),
           f32("cand_offsets", np.cumsum([0] + [len(c) for c in cands])), f32("cand_ll", np.array(cand_ll)),
           f32("greedy", np.array(greedy)), f32("norm", np.array([NORM]))]
    for cname, hname in SLAB:
        ref.append(f32("grad." + cname, slab_view(grads, cname, hname).numpy()))
        ref.append(f32("adamw." + cname, slab_view({n: Pn[n].detach() for n in names}, cname, hname).numpy()))
    write_safetensors(os.path.join(out, "ref.safetensors"), ref)
    print(f"gpt2 reference: loss {loss.item():.6f} (ln V = {math.log(V):.4f}), "
          f"|dsoft| {dsoft.norm().item():.4g}, candidates {['%.4f' % x for x in cand_ll]}")


if __name__ == "__main__":
    main()
