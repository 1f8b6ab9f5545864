#!/usr/bin/python3
"""gen_llama.py: PyTorch reference for the C Llama decoder and its loaders (src/lm/llama*.c).

Writes into OUT/llama/ (OUT = argv[1]) small random models in the two layouts the loaders read:
  a/                HF layout, model "a": grouped-query attention (6 query heads, 2 key/value heads),
                    untied head, one model.safetensors (F32, "model." prefix, with the
                    rotary_emb.inv_freq buffers older checkpoints carry)
  a_sharded/        the same weights in three shards with model.safetensors.index.json
  a_f16/            the same weights as F16, sharded
  a.bin             model "a" as a llama2.c legacy checkpoint (Meta's q/k layout, untied: vocab < 0)
  a_tied.bin        model "a" with the head tied to the embeddings, llama2.c layout
  b/                HF layout, model "b": tied head, head_dim 12 != hidden/heads, rope_theta 5e5,
                    llama3 rope scaling, no "model." prefix
  b_bf16/           the same weights as BF16 with an lm_head.weight equal to the embeddings
  bad_*             checkpoints the loaders must refuse (see BAD below)
  ref.safetensors   inputs and reference outputs in float64 from the float32 weights: logits,
                    final hidden states, loss, soft-input gradients by autograd (from the loss, and
                    from the loss plus an upstream gradient on the hidden states), candidate
                    log-likelihoods after a prefix with soft rows (plain, with soft tokens after
                    each candidate, with soft positions inside candidates), greedy tokens, and the
                    logits of the f16/bf16 and llama2.c variants.

The forward follows HF LlamaForCausalLM (RMSNorm, rotate_half RoPE on HF's permuted q/k rows,
repeat_kv for grouped-query attention, SwiGLU, untied or tied head). A second forward written the
Meta way (interleaved-pair RoPE on the unpermuted weights, as llama2.c's run.c) must agree with it
to rounding: that checks the permutation written into the llama2.c files. No transformers or
safetensors packages are used: safetensors files are written by hand (st_io.py).
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

from st_io import bf16, f16, f32, up16, upbf16, write_safetensors

A = dict(D=48, F=80, L=2, NH=6, NKV=2, HD=8, V=67, MAXT=96, THETA=10000.0, EPS=1e-5, TIED=False, SCALING=None)
B_ = dict(D=32, F=64, L=3, NH=4, NKV=2, HD=12, V=53, MAXT=48, THETA=500000.0, EPS=1e-6, TIED=True,
          SCALING=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                       original_max_position_embeddings=16))
NORM = 97.0


# ---- models -------------------------------------------------------------------------------------

LAYER = ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
         "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
         "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]


def make_params(c, rng):
    """HF names without prefix -> float32 arrays (HF layout: q/k rows permuted for rotate_half)"""
    D, F, QD, KD = c["D"], c["F"], c["NH"] * c["HD"], c["NKV"] * c["HD"]

    def mat(*s, std):
        return (rng.standard_normal(s) * std).astype(np.float32)

    p = {"embed_tokens.weight": mat(c["V"], D, std=0.5)}
    for l in range(c["L"]):
        h = f"layers.{l}."
        p[h + "input_layernorm.weight"] = 1 + mat(D, std=0.2)
        p[h + "self_attn.q_proj.weight"] = mat(QD, D, std=0.25)
        p[h + "self_attn.k_proj.weight"] = mat(KD, D, std=0.25)
        p[h + "self_attn.v_proj.weight"] = mat(KD, D, std=0.2)
        p[h + "self_attn.o_proj.weight"] = mat(D, QD, std=0.15)
        p[h + "post_attention_layernorm.weight"] = 1 + mat(D, std=0.2)
        p[h + "mlp.gate_proj.weight"] = mat(F, D, std=0.2)
        p[h + "mlp.up_proj.weight"] = mat(F, D, std=0.2)
        p[h + "mlp.down_proj.weight"] = mat(D, F, std=0.15)
    p["norm.weight"] = 1 + mat(D, std=0.2)
    if not c["TIED"]:
        p["lm_head.weight"] = mat(c["V"], D, std=0.3)
    return p


def inv_freq(c):
    hd = c["HD"]
    inv = 1.0 / (c["THETA"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    s = c["SCALING"]
    if s:  # transformers' _compute_llama3_parameters
        factor, lo, hi, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], \
            s["original_max_position_embeddings"]
        wl = 2 * math.pi / inv
        il = torch.where(wl > old / lo, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * il / factor + smooth * il
        medium = ~(wl < old / hi) * ~(wl > old / lo)
        inv = torch.where(medium, smoothed, il)
    return inv


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def head_of(c, P):
    return P["embed_tokens.weight"] if c["TIED"] else P["lm_head.weight"]


def forward_emb(c, P, x, pos0=0):
    """HF LlamaForCausalLM on input embeddings x (Bn, Tn, D) at positions pos0.. ; returns (hidden, logits)"""
    Bn, Tn, D = x.shape
    NH, NKV, hd = c["NH"], c["NKV"], c["HD"]
    ang = torch.arange(pos0, pos0 + Tn, dtype=torch.float64)[:, None] * inv_freq(c)[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(c["L"]):
        h = f"layers.{l}."
        a = rmsnorm(x, P[h + "input_layernorm.weight"], c["EPS"])
        q = (a @ P[h + "self_attn.q_proj.weight"].T).view(Bn, Tn, NH, hd).transpose(1, 2)
        k = (a @ P[h + "self_attn.k_proj.weight"].T).view(Bn, Tn, NKV, hd).transpose(1, 2)
        v = (a @ P[h + "self_attn.v_proj.weight"].T).view(Bn, Tn, NKV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)  # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, NH * hd)
        x = x + y @ P[h + "self_attn.o_proj.weight"].T
        a = rmsnorm(x, P[h + "post_attention_layernorm.weight"], c["EPS"])
        g = a @ P[h + "mlp.gate_proj.weight"].T
        u = a @ P[h + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[h + "mlp.down_proj.weight"].T
    hid = rmsnorm(x, P["norm.weight"], c["EPS"])
    return hid, hid @ head_of(c, P).T


def hf_to_meta(w, n_heads):
    """inverse of convert_llama_weights_to_hf.py's permute (Meta -> HF)"""
    dim1, dim2 = w.shape
    return w.reshape(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(0, 2, 1, 3).reshape(dim1, dim2)


def meta_to_hf(w, n_heads):
    dim1, dim2 = w.shape
    return w.reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(0, 2, 1, 3).reshape(dim1, dim2)


def forward_meta(c, M, x):
    """the same model the Meta / llama2.c way: interleaved pairs (2i, 2i+1) rotated, Meta weights"""
    Bn, Tn, D = x.shape
    NH, NKV, hd = c["NH"], c["NKV"], c["HD"]
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * inv_freq(c)[None, :]
    cos, sin = ang.cos(), ang.sin()

    def rope(t):  # t (Bn, H, Tn, hd)
        a, b = t[..., 0::2], t[..., 1::2]
        out = torch.empty_like(t)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(c["L"]):
        a = rmsnorm(x, M["rms_att"][l], c["EPS"])
        q = rope((a @ M["wq"][l].T).view(Bn, Tn, NH, hd).transpose(1, 2))
        k = rope((a @ M["wk"][l].T).view(Bn, Tn, NKV, hd).transpose(1, 2))
        v = (a @ M["wv"][l].T).view(Bn, Tn, NKV, hd).transpose(1, 2)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(Bn, Tn, NH * hd) @ M["wo"][l].T
        a = rmsnorm(x, M["rms_ffn"][l], c["EPS"])
        x = x + (torch.nn.functional.silu(a @ M["w1"][l].T) * (a @ M["w3"][l].T)) @ M["w2"][l].T
    hid = rmsnorm(x, M["rms_final"], c["EPS"])
    return hid @ M["wcls"].T


def meta_weights(c, p, tied):
    L = c["L"]
    st = lambda k: np.stack([p[f"layers.{l}.{k}"] for l in range(L)])
    M = {"emb": p["embed_tokens.weight"], "rms_att": st("input_layernorm.weight"),
         "wq": np.stack([hf_to_meta(p[f"layers.{l}.self_attn.q_proj.weight"], c["NH"]) for l in range(L)]),
         "wk": np.stack([hf_to_meta(p[f"layers.{l}.self_attn.k_proj.weight"], c["NKV"]) for l in range(L)]),
         "wv": st("self_attn.v_proj.weight"), "wo": st("self_attn.o_proj.weight"),
         "rms_ffn": st("post_attention_layernorm.weight"), "w1": st("mlp.gate_proj.weight"),
         "w2": st("mlp.down_proj.weight"), "w3": st("mlp.up_proj.weight"), "rms_final": p["norm.weight"],
         "wcls": p["embed_tokens.weight"] if tied else p["lm_head.weight"]}
    return M


def write_llama2c(path, c, M, tied, header=None):
    hd, T = c["HD"], c["MAXT"]
    hdr = header or [c["D"], c["F"], c["L"], c["NH"], c["NKV"], c["V"] if tied else -c["V"], T]
    ang = np.arange(T)[:, None] * inv_freq(c).numpy()[None, :]
    order = ["emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final"]
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", *hdr))
        for k in order:
            f.write(np.ascontiguousarray(M[k], dtype="<f4").tobytes())
        f.write(np.cos(ang).astype("<f4").tobytes())
        f.write(np.sin(ang).astype("<f4").tobytes())
        if not tied:
            f.write(np.ascontiguousarray(M["wcls"], dtype="<f4").tobytes())


def config_json(c, **over):
    d = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
         "hidden_size": c["D"], "intermediate_size": c["F"], "num_hidden_layers": c["L"],
         "num_attention_heads": c["NH"], "num_key_value_heads": c["NKV"], "vocab_size": c["V"],
         "max_position_embeddings": c["MAXT"], "rope_theta": c["THETA"], "rms_norm_eps": c["EPS"],
         "tie_word_embeddings": c["TIED"], "rope_scaling": c["SCALING"], "attention_bias": False,
         "mlp_bias": False, "pretraining_tp": 1, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    if c["HD"] * c["NH"] != c["D"]:
        d["head_dim"] = c["HD"]
    d.update(over)
    return json.dumps(d, indent=2)


def hf_names(p, prefix):
    return [(k if k == "lm_head.weight" else prefix + k) for k in p]


def write_hf(d, c, tensors, cfg=None, shards=None):
    """tensors: list of entries; shards: number of shard files (None: one model.safetensors)"""
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(cfg or config_json(c))
    if not shards:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
        return
    wmap, n = {}, len(tensors)
    for s in range(shards):
        part = tensors[s * n // shards:(s + 1) * n // shards]
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(d, fn), part, {"format": "pt"})
        for t in part:
            wmap[t[0]] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(len(t[3]) for t in tensors)}, "weight_map": wmap}, f, indent=2)


def embed(c, P, ids, soft):
    is_soft = ids < 0
    tok = torch.where(is_soft, torch.zeros_like(ids), ids)
    srow = torch.where(is_soft, -1 - ids, torch.zeros_like(ids))
    return torch.where(is_soft[..., None], soft[srow], P["embed_tokens.weight"][tok])


def loss_of(logits, targets, norm):
    lp = logits.log_softmax(-1)
    valid = targets >= 0
    t = torch.where(valid, targets, torch.zeros_like(targets))
    return (-lp.gather(-1, t[..., None])[..., 0] * valid).sum() / norm


def reference(c, p, rng, name, Bn, Tn, n_soft, soft_pos):
    """batch forward/backward references of model p; returns a list of ref entries"""
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()}
    ids = torch.tensor(rng.integers(0, c["V"], size=(Bn, Tn)), dtype=torch.int64)
    for b, t, k in soft_pos:
        ids[b, t] = -1 - k
    soft = torch.tensor(rng.standard_normal((n_soft, c["D"])) * 0.5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(rng.integers(0, c["V"], size=(Bn, Tn)), dtype=torch.int64)
    targets[0, 2:6] = -1
    targets[1, -1] = -1
    dhidden = torch.tensor(rng.standard_normal((Bn, Tn, c["D"])) * 0.05, dtype=torch.float64)
    hid, logits = forward_emb(c, P, embed(c, P, ids, soft))
    loss = loss_of(logits, targets, NORM)
    (dsoft,) = torch.autograd.grad(loss, soft)
    hid2, logits2 = forward_emb(c, P, embed(c, P, ids, soft))
    (dsoft2,) = torch.autograd.grad(loss_of(logits2, targets, NORM) + (hid2 * dhidden).sum(), soft)
    n = name + "."
    return P, ids, soft.detach(), [
        f32(n + "ids", ids.numpy()), f32(n + "targets", targets.numpy()), f32(n + "soft", soft.detach().numpy()),
        f32(n + "dhidden", dhidden.numpy()), f32(n + "logits", logits.detach().numpy()),
        f32(n + "hidden", hid.detach().numpy()), f32(n + "loss", np.array([loss.item()])),
        f32(n + "dsoft", dsoft.numpy()), f32(n + "dsoft_hidden", dsoft2.numpy())]


def scoring(c, P, soft, rng):
    """candidate log-likelihoods after a prefix with soft rows (model a)"""
    D = c["D"]
    prefix = [5, 17, -1 - 1, 33, -1 - 4, 2, 60]
    cands = [[4], [4, 8, 15], [16, 23, 42, 7, 7], [], [66, 0], [8, 4, 4, 4, 4, 4, 4, 1]]
    # mixed: soft positions (rows of csoft) inside candidates, e.g. evidence tokens before a title
    mcands = [[-1, 4, 8], [9, -2, -1, 3], [-2], [], [11, 12, 13, -1]]
    esoft = torch.tensor(rng.standard_normal((len(cands), D)) * 0.5, dtype=torch.float64)
    emsoft = torch.tensor(rng.standard_normal((len(mcands), D)) * 0.5, dtype=torch.float64)
    csoft = torch.tensor(rng.standard_normal((2, D)) * 0.5, dtype=torch.float64)

    def run(seq_emb):
        return forward_emb(c, P, seq_emb[None])

    pre = embed(c, P, torch.tensor(prefix), soft)
    head = head_of(c, P)

    def score(cnd, e, cs):
        parts = [pre] + [cs[-1 - t][None] if t < 0 else P["embed_tokens.weight"][t][None] for t in cnd]
        hid, lg = run(torch.cat(parts))
        lp = lg.log_softmax(-1)[0]
        s = 0.0
        for j, t in enumerate(cnd):
            if t >= 0:
                s += lp[len(prefix) + j - 1, t].item()
        h = hid[0, -1]
        ls = (h @ e).item()
        lv = torch.logsumexp(h @ head.T, 0).item()
        m = max(ls, lv)
        return s, ls - (m + math.log(math.exp(lv - m) + math.exp(ls - m)))

    with torch.no_grad():
        ll, lls = zip(*[score(cnd, esoft[i], None) for i, cnd in enumerate(cands)])
        mll, mlls = zip(*[score(cnd, emsoft[i], csoft) for i, cnd in enumerate(mcands)])
        seq = list(prefix)
        for _ in range(10):
            _, lg = run(embed(c, P, torch.tensor(seq), soft))
            seq.append(int(lg[0, -1].argmax()))
    flat = lambda cs: np.array(sum(cs, []) or [0])
    return [f32("prefix", np.array(prefix)), f32("cand_tokens", flat(cands)),
            f32("cand_offsets", np.cumsum([0] + [len(x) for x in cands])), f32("cand_ll", np.array(ll)),
            f32("esoft", esoft.numpy()), f32("cand_ll_soft", np.array(lls)),
            f32("mcand_tokens", flat(mcands)), f32("mcand_offsets", np.cumsum([0] + [len(x) for x in mcands])),
            f32("csoft", csoft.numpy()), f32("emsoft", emsoft.numpy()), f32("mcand_ll", np.array(mll)),
            f32("mcand_ll_soft", np.array(mlls)), f32("greedy", np.array(seq[len(prefix):]))]


def bad_checkpoints(out, c, p, ents):
    """BAD: checkpoints derived from model a that the loaders must refuse"""
    names = [e[0] for e in ents]
    cfg = lambda **o: config_json(c, **o)
    d = lambda n: os.path.join(out, n)
    k1 = "model.layers.1.self_attn.k_proj.weight"
    write_hf(d("bad_shape"), c, [f32(e[0], p[k1[6:]].T) if e[0] == k1 else e for e in ents])
    write_hf(d("bad_missing"), c, [e for e in ents if e[0] != "model.layers.1.mlp.up_proj.weight"])
    write_hf(d("bad_nohead"), c, [e for e in ents if e[0] != "lm_head.weight"])
    write_hf(d("bad_unknown"), c, ents + [f32("model.layers.0.self_attn.q_proj.bias", np.zeros(48))])
    write_hf(d("bad_layer"), c, ents, cfg(num_hidden_layers=1))
    write_hf(d("bad_dtype"), c, [(e[0], "I32", e[2], np.zeros(e[2], "<i4").tobytes())
                                 if e[0] == "model.norm.weight" else e for e in ents])
    write_hf(d("bad_type"), c, ents, cfg(model_type="mistral"))
    write_hf(d("bad_kvheads"), c, ents, cfg(num_key_value_heads=4))
    write_hf(d("bad_bias"), c, ents, cfg(attention_bias=True))
    write_hf(d("bad_act"), c, ents, cfg(hidden_act="gelu"))
    write_hf(d("bad_rope"), c, ents, cfg(rope_scaling={"type": "linear", "factor": 2.0}))
    write_hf(d("bad_nolayers"), c, ents, json.dumps({"model_type": "llama", "hidden_size": 48}))
    write_hf(d("bad_tied_head"), c, ents, cfg(tie_word_embeddings=True))
    write_hf(d("bad_truncated"), c, ents)
    path = os.path.join(d("bad_truncated"), "model.safetensors")
    os.truncate(path, os.path.getsize(path) - 10)
    write_hf(d("bad_shard_absent"), c, ents, shards=3)
    os.remove(os.path.join(d("bad_shard_absent"), "model-00002-of-00003.safetensors"))
    write_hf(d("bad_shard_wrong"), c, ents, shards=3)
    ip = os.path.join(d("bad_shard_wrong"), "model.safetensors.index.json")
    idx = json.load(open(ip))
    idx["weight_map"]["model.norm.weight"] = "model-00001-of-00003.safetensors"
    json.dump(idx, open(ip, "w"))
    write_hf(d("bad_index"), c, ents, shards=2)
    with open(os.path.join(d("bad_index"), "model.safetensors.index.json"), "w") as f:
        f.write('{"weight_map": {"model.norm.weight": ')
    write_hf(d("bad_empty"), c, [])
    os.remove(os.path.join(d("bad_empty"), "model.safetensors"))
    # llama2.c
    M = meta_weights(c, p, False)
    write_llama2c(d("bad_l2c_trunc.bin"), c, M, False)
    os.truncate(d("bad_l2c_trunc.bin"), os.path.getsize(d("bad_l2c_trunc.bin")) - 100)
    write_llama2c(d("bad_l2c_long.bin"), c, M, False)
    with open(d("bad_l2c_long.bin"), "ab") as f:
        f.write(b"\0" * 12)
    write_llama2c(d("bad_l2c_tied.bin"), c, M, False,
                  header=[c["D"], c["F"], c["L"], c["NH"], c["NKV"], c["V"], c["MAXT"]])  # says tied: too long
    write_llama2c(d("bad_l2c_heads.bin"), c, M, False,
                  header=[c["D"], c["F"], c["L"], 5, c["NKV"], -c["V"], c["MAXT"]])
    with open(d("bad_l2c_magic.bin"), "wb") as f:
        f.write(struct.pack("<Ii", 0x616b3432, 2) + b"\0" * 248)
    with open(d("bad_l2c_short.bin"), "wb") as f:
        f.write(b"\1\0\0\0" * 3)


def main():
    out = os.path.join(sys.argv[1], "llama")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(4321)
    pa = make_params(A, rng)
    pb = make_params(B_, rng)

    # model a in every layout
    ents = [f32(n, pa[k]) for n, k in zip(hf_names(pa, "model."), pa)]
    inv = [f32(f"model.layers.{l}.self_attn.rotary_emb.inv_freq", inv_freq(A).numpy()) for l in range(A["L"])]
    write_hf(os.path.join(out, "a"), A, ents + inv)
    write_hf(os.path.join(out, "a_sharded"), A, ents, shards=3)
    write_hf(os.path.join(out, "a_f16"), A, [f16(n, pa[k]) for n, k in zip(hf_names(pa, "model."), pa)], shards=2)
    write_llama2c(os.path.join(out, "a.bin"), A, meta_weights(A, pa, False), False)
    write_llama2c(os.path.join(out, "a_tied.bin"), A, meta_weights(A, pa, True), True)
    # model b: no prefix, tied
    write_hf(os.path.join(out, "b"), B_, [f32(k, v) for k, v in pb.items()])
    write_hf(os.path.join(out, "b_bf16"), B_,
             [bf16(k, v) for k, v in pb.items()] + [bf16("lm_head.weight", pb["embed_tokens.weight"])])
    bad_checkpoints(out, A, pa, ents)

    # references
    Pa, ids_a, soft_a, ref = reference(A, pa, rng, "a", 2, 70, 5,
                                       [(0, 3, 0), (0, 4, 1), (1, 0, 2), (1, 10, 3), (1, 11, 4), (0, 60, 2)])
    Pb, ids_b, soft_b, refb = reference(B_, pb, rng, "b", 2, 40, 3, [(0, 0, 0), (1, 7, 1), (1, 30, 2)])
    ref += refb
    ref += scoring(A, Pa, soft_a, rng)
    with torch.no_grad():
        Pa16 = {k: torch.tensor(up16(v), dtype=torch.float64) for k, v in pa.items()}
        Pbbf = {k: torch.tensor(upbf16(v), dtype=torch.float64) for k, v in pb.items()}
        ref.append(f32("a.logits_f16", forward_emb(A, Pa16, embed(A, Pa16, ids_a, soft_a))[1].numpy()))
        ref.append(f32("b.logits_bf16", forward_emb(B_, Pbbf, embed(B_, Pbbf, ids_b, soft_b))[1].numpy()))
        At = dict(A, TIED=True)
        ref.append(f32("a.logits_tied", forward_emb(At, Pa, embed(At, Pa, ids_a, soft_a))[1].numpy()))
        # the Meta-layout forward agrees with HF's on the permuted weights
        x = embed(A, Pa, ids_a, soft_a)
        Ma = {k: torch.tensor(v, dtype=torch.float64) for k, v in meta_weights(A, pa, False).items()}
        dm = (forward_meta(A, Ma, x) - forward_emb(A, Pa, x)[1]).abs().max().item()
        assert dm < 1e-9, f"Meta and HF forwards differ by {dm}"
        w = pa["layers.0.self_attn.q_proj.weight"]
        assert np.array_equal(meta_to_hf(hf_to_meta(w, A["NH"]), A["NH"]), w)
        ref.append(f32("perm.hf", w))
        ref.append(f32("perm.meta", hf_to_meta(w, A["NH"])))
    ref.append(f32("norm", np.array([NORM])))
    write_safetensors(os.path.join(out, "ref.safetensors"), ref)
    print(f"llama reference: Meta vs HF forward {dm:.2g}; a: {len(ents)} tensors, b: {len(pb)} tensors")


if __name__ == "__main__":
    main()
