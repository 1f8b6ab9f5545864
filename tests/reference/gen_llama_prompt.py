#!/usr/bin/python3
"""gen_llama_prompt.py: a tiny random Hugging Face Llama checkpoint with a SentencePiece-style
tokenizer.json for the LM runtime's Llama path in the prompt and explain stages, and the PyTorch
reference of the LLM recommender's scores on it.

  gen_llama_prompt.py OUT
      writes OUT/llama_prompt/lm/ (config.json, model.safetensors in F32, tokenizer.json): a Llama
      with grouped-query attention (4 query heads, 2 key/value heads) and an untied output head;
      the tokenizer is Llama 2's layout (Prepend/Replace normaliser, byte fallback, <s> template)
      over single characters, the 256 byte tokens and a few merges; and OUT/llama_prompt/ref.json:
      the ids of some texts encoded as continuations (no "▁" prefix, as lm_encode does)
  gen_llama_prompt.py --check RUN_DIR PROTOCOL
      the PyTorch reference of model `llm` of RUN_DIR/prompt.h5 on the test split under PROTOCOL
      (topN: the LM re-ranks the aligner's top N outside the user's history): for every scored user
      whose test item is among the N candidates, each candidate's score (mean log-likelihood of its
      title tokens and of its soft token scored through the output head as one more vocabulary
      entry) from the stored projector weights, the aligner's latents and the prompt layout
      [<s>] [L user tokens] prefix (title [item] sep) x n query (the strings of the run's stored
      config), and the test item's MRR from
      those scores (the stage places the top N above every other item in the order of these
      scores); it must equal the stored row. Exits 1 on a mismatch, 77 when no user can be checked.

No transformers, tokenizers or safetensors packages: the forward is gen_llama.py's (HF
LlamaForCausalLM), the tokenizer a direct implementation of the BPE the file describes.
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_llama as gl  # noqa: E402
from st_io import read_safetensors_f32  # noqa: E402

SP = "\u2581"
SPECIAL = ["<unk>", "<s>", "</s>"]
CHARS = [SP] + [chr(c) for c in range(0x21, 0x7F)]
# merges in rank order; each result is a vocabulary piece
MERGES = [("e", "r"), (SP, "t"), ("h", "e"), (SP + "t", "he"), ("i", "n"), ("a", "n"), ("o", "n"), (SP, "a"),
          (SP, "s"), (SP, "c"), ("r", "e"), ("o", "u"), (SP, "b"), (SP + "b", "ou"), ("u", "s"), (SP, "us"),
          (SP + "us", "er"), ("e", "x"), (SP, "N"), (SP + "N", "ex"), (SP + "Nex", "t"), ("a", "r"), ("o", "r"),
          ("a", "l"), ("in", "g"), (SP, "o"), ("e", "s"), (SP, "p"), (SP, "m")]


def vocab_list():
    v = list(SPECIAL) + ["<0x%02X>" % b for b in range(256)] + CHARS
    for a, b in MERGES:
        if a + b not in v:
            v.append(a + b)
    return v


def tokenizer_json(vocab):
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, s in enumerate(SPECIAL)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SP},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": SP}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"},
                                                     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": {s: i for i, s in enumerate(vocab)}, "merges": ["%s %s" % m for m in MERGES]},
    }


class Tok:
    """the BPE of tokenizer_json, encoding a text as a continuation (spaces to "▁", no prefix)"""

    def __init__(self, tj):
        self.vocab = tj["model"]["vocab"]
        self.rank = {}
        for r, m in enumerate(tj["model"]["merges"]):
            a, b = m.split(" ")
            self.rank.setdefault((a, b), r)

    def encode(self, text):
        syms = []
        for ch in text.replace(" ", SP):
            if ch in self.vocab:
                syms.append(ch)
            else:
                syms += ["<0x%02X>" % b for b in ch.encode("utf-8")]
        while True:  # the best-ranked adjacent pair, the leftmost of equals
            best, at = None, -1
            for i in range(len(syms) - 1):
                r = self.rank.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                return [self.vocab[s] for s in syms]
            syms[at:at + 2] = [syms[at] + syms[at + 1]]


def config(V):
    return dict(D=32, F=48, L=2, NH=4, NKV=2, HD=8, V=V, MAXT=256, THETA=10000.0, EPS=1e-5, TIED=False, SCALING=None)


def write(out):
    d = os.path.join(out, "llama_prompt")
    vocab = vocab_list()
    c = config(len(vocab))
    p = gl.make_params(c, np.random.default_rng(20270))
    ents = [gl.f32(n, p[k]) for n, k in zip(gl.hf_names(p, "model."), p)]
    gl.write_hf(os.path.join(d, "lm"), c, ents)
    tj = tokenizer_json(vocab)
    with open(os.path.join(d, "lm", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    tok = Tok(tj)
    texts = [" The user bought:", ";", " Next:", " Rara Deep Smooth Perfume, Set of 3", "the user", "caf\u00e9 \u20ac5"]
    with open(os.path.join(d, "ref.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "ids": [tok.encode(t) for t in texts], "vocab": len(vocab)}, f, ensure_ascii=False)
    print("llama_prompt: %d-token vocabulary, %d merges, D=%d L=%d NH=%d NKV=%d" % (len(vocab), len(MERGES), c["D"],
                                                                                    c["L"], c["NH"], c["NKV"]))


# ---- the reference of the LLM recommender's scores -------------------------------------------------

def load_lm(lmdir):
    cj = json.load(open(os.path.join(lmdir, "config.json")))
    c = dict(D=cj["hidden_size"], F=cj["intermediate_size"], L=cj["num_hidden_layers"], NH=cj["num_attention_heads"],
             NKV=cj["num_key_value_heads"], V=cj["vocab_size"], MAXT=cj["max_position_embeddings"],
             THETA=cj["rope_theta"], EPS=cj["rms_norm_eps"], TIED=cj["tie_word_embeddings"], SCALING=None)
    c["HD"] = cj.get("head_dim", c["D"] // c["NH"])
    t = read_safetensors_f32(os.path.join(lmdir, "model.safetensors"))
    P = {(k[6:] if k.startswith("model.") else k): torch.from_numpy(v.astype(np.float64)) for k, v in t.items()}
    tj = json.load(open(os.path.join(lmdir, "tokenizer.json"), encoding="utf-8"))
    return c, P, Tok(tj)


def mlp(w, off, din, H, dout, x):
    """nn_mlp: linear, layer norm (eps 1e-5), tanh GELU, linear; x (N, din) float64"""
    def take(n, shape):
        nonlocal off
        a = w[off:off + n].astype(np.float64).reshape(shape)
        off += n
        return a
    w1, b1, lnw, lnb = take(H * din, (H, din)), take(H, (H,)), take(H, (H,)), take(H, (H,))
    w2, b2 = take(dout * H, (dout, H)), take(dout, (dout,))
    pre = x @ w1.T + b1
    mu, var = pre.mean(-1, keepdims=True), pre.var(-1, keepdims=True)
    ln = (pre - mu) / np.sqrt(var + 1e-5) * lnw + lnb
    act = 0.5 * ln * (1 + np.tanh(math.sqrt(2 / math.pi) * (ln + 0.044715 * ln ** 3)))
    return act @ w2.T + b2, off


def strtab(f, name):
    ch, off = f[name + "/chars"][...].tobytes(), f[name + "/offsets"][...]
    return [ch[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def mrr_expected(s, t):
    """MRR of candidate t among scores s (float32), ties at their expected rank"""
    g, b = int((s > s[t]).sum()), int((s == s[t]).sum())
    return sum(1.0 / (g + k) for k in range(1, b + 1)) / b


def user_scores(c, P, soft_u, hist_codes, soft_hist, cands, titles, e_cand):
    """scores of every candidate after the user's prompt (codes: token ids, or -1 - k for soft row k)"""
    head = gl.head_of(c, P)
    soft = torch.from_numpy(np.concatenate([soft_u, soft_hist], 0))
    out = []
    for k, ci in enumerate(cands):
        ids = hist_codes + titles[ci]
        x = gl.embed(c, P, torch.tensor([ids]), soft)
        hid, logits = gl.forward_emb(c, P, x)
        lp = logits[0].log_softmax(-1)
        P0, m = len(hist_codes), len(titles[ci])
        ll = sum(float(lp[P0 + j - 1, titles[ci][j]]) for j in range(m))
        h = hid[0, P0 + m - 1]
        ls = float(h @ torch.from_numpy(e_cand[k]))
        lv = float(torch.logsumexp(h @ head.T, 0))
        lsoft = ls - np.logaddexp(lv, ls)
        out.append((ll + lsoft) / (m + 1))
    return np.array(out)


def prompt_strings(cfg):
    """prompt.prefix, prompt.separator and prompt.query of a resolved config (libconfig text)"""
    g = re.search(r"^prompt: \{\n(.*?)^\};", cfg, re.M | re.S).group(1)
    val = lambda k: json.loads(re.search(r"^\s*%s = (\"(?:[^\"\\]|\\.)*\");" % k, g, re.M).group(1))
    return val("prefix"), val("separator"), val("query")


def check(run, protocol):
    import h5py
    assert protocol.startswith("top"), "the reference covers the topN protocols"
    N = int(protocol[3:])
    pf, af, df = (h5py.File(os.path.join(run, n), "r") for n in ("prompt.h5", "align.h5", "dataset.h5"))
    cfg = pf["/"].attrs["config"]
    prefix, sep, query = prompt_strings(cfg.decode() if isinstance(cfg, bytes) else cfg)
    at = pf["prompt"].attrs
    L, nh, mt, H = int(at["user_tokens"]), int(at["history"]), int(at["title_tokens"]), int(at["hidden"])
    lmdir = at["lm_dir"]
    lmdir = lmdir.decode() if isinstance(lmdir, bytes) else lmdir
    c, P, tok = load_lm(lmdir)
    C = c["D"]
    z, Ht = af["align/z_base"][...], af["align/h_test"][...]
    dz = z.shape[1]
    w = pf["prompt/llm/weights"][...]
    cols = strtab(pf, "columns")
    rows = pf["test/%s/llm" % protocol][...]
    titles = [(tok.encode(" " + t) if t else [])[:mt] for t in strtab(df, "items/title")]
    off, items, roles = df["users/offsets"][...], df["inter/item"][...], df["split/loo"][...]
    pre, sepi, qi = tok.encode(prefix), tok.encode(sep), tok.encode(query)
    bos = 1
    mrr_col = cols.index("mrr")
    checked = skipped = bad = 0
    worst = 0.0
    for u in range(len(off) - 1):
        if np.isnan(rows[u, mrr_col]):
            continue
        seq, rl = items[off[u]:off[u + 1]], roles[off[u]:off[u + 1]]
        hall, tg = [int(i) for i in seq[rl < 2]], [int(i) for i in seq[rl == 2]]
        hist = hall[len(hall) - min(nh, len(hall)):]
        bs = z.astype(np.float64) @ Ht[u].astype(np.float64)
        mark = np.zeros(len(z), bool)
        mark[hall] = True
        order = [i for i in np.argsort(-bs, kind="stable") if not mark[i]]
        cand = order[:N]
        # the aligner's N-th and N+1-th scores too close to order the same way in float32: skip
        if len(order) > N and abs(bs[order[N - 1]] - bs[order[N]]) < 1e-4 * (1 + abs(bs[order[N]])):
            skipped += 1
            continue
        if len(tg) != 1 or tg[0] not in cand:
            continue
        up, o = mlp(w, 0, dz, H, L * C, Ht[u:u + 1].astype(np.float64))
        soft_u = up.reshape(L, C)
        e_all, _ = mlp(w, o, dz, H, C, z[hist + cand].astype(np.float64))
        codes = [bos] + [-1 - k for k in range(L)] + pre
        for k, it in enumerate(hist):
            codes += titles[it] + [-1 - (L + k)] + sepi
        codes += qi
        s = user_scores(c, P, soft_u, codes, e_all[:len(hist)], cand, titles, e_all[len(hist):])
        # the stage places the top N just above the aligner's best score, their order that of the
        # LM scores; the test item within float32 forward error (1e-4) of another candidate: skip
        t = cand.index(tg[0])
        if np.any(np.abs(np.delete(s, t) - s[t]) < 1e-4):
            skipped += 1
            continue
        ref = mrr_expected(s, t)
        got = rows[u, mrr_col]
        worst = max(worst, abs(ref - got))
        checked += 1
        if abs(ref - got) > 1e-9:
            bad += 1
            print("FAIL: user %d: stored MRR %.6f, PyTorch reference %.6f (scores %s)" % (u, got, ref, np.round(s, 4)))
    print("llama prompt reference: %d users checked against PyTorch (MRR max diff %.2g), %d skipped near ties, "
          "protocol %s" % (checked, worst, skipped, protocol))
    if bad:
        sys.exit(1)
    if checked == 0:
        print("SKIP: no user's test item among the aligner's top %d" % N)
        sys.exit(77)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        check(*sys.argv[2:4])
    else:
        write(sys.argv[1])
