/* lm.c: the architecture-neutral LM runtime (dispatch to gpt2_* or llama_*) and the operations on
 * text; see lm.h. */
#include "lm.h"

#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"
#include "gpt2_ckpt.h"
#include "llama_ckpt.h"
#include "lm_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert((int)LM_KEEP == (int)GPT2_KEEP && (int)LM_KEEP == (int)LLAMA_KEEP, "forward flags differ");
_Static_assert((int)LM_NOLOGITS == (int)GPT2_NOLOGITS && (int)LM_NOLOGITS == (int)LLAMA_NOLOGITS, "forward flags differ");
_Static_assert((int)LM_TARGET_ROWS == (int)GPT2_TARGET_ROWS && (int)LM_TARGET_ROWS == (int)LLAMA_TARGET_ROWS,
               "forward flags differ");
_Static_assert(LM_SOFT(7) == GPT2_SOFT(7) && LM_SOFT(7) == LLAMA_SOFT(7), "soft input codes differ");

/* ---- loading ---- */

int lm_arch_parse(const char *name)
{
    if (!name || !strcmp(name, "auto")) return -1;
    if (!strcmp(name, "gpt2")) return LM_GPT2;
    if (!strcmp(name, "llama")) return LM_LLAMA;
    return -2;
}

const char *lm_arch_name(int arch) { return arch == LM_GPT2 ? "gpt2" : arch == LM_LLAMA ? "llama" : "?"; }

static int is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISREG(st.st_mode); }

/* the architecture config.json names: model_type, else the key only one of the two has */
static int detect_config(const dm_json *root, void *out, const char *path)
{
    int *arch = out, rc = DM_OK;
    const dm_json *mt = dm_json_get(root, "model_type");
    if (mt && mt->type == DM_JSTR && !strcmp(mt->str, "gpt2")) {
        *arch = LM_GPT2;
    } else if (mt && mt->type == DM_JSTR && !strcmp(mt->str, "llama")) {
        *arch = LM_LLAMA;
    } else if (mt) {
        rc = DM_ERR(DM_EINPUT, "'%s': model_type '%s' is neither 'gpt2' nor 'llama'", path, mt->type == DM_JSTR ? mt->str : "(not a string)");
        DM_HINT("the LM runtime implements GPT2LMHeadModel and LlamaForCausalLM (lm.arch)");
    } else {
        *arch = dm_json_get(root, "hidden_size") && !dm_json_get(root, "n_embd") ? LM_LLAMA : LM_GPT2;
    }
    return rc;
}

int lm_detect_arch(const char *path, int *arch)
{
    if (is_dir(path)) return lmc_read_config(path, 1, detect_config, arch);
    size_t n = strlen(path);
    if (is_file(path) && n > 4 && !strcmp(path + n - 4, ".bin")) {
        *arch = LM_LLAMA;
        return DM_OK;
    }
    struct stat st;
    int rc = stat(path, &st) != 0 ? DM_ERR(DM_EIO, "lm checkpoint '%s': %s", path, strerror(errno))
                                  : DM_ERR(DM_EINPUT, "lm checkpoint '%s' is a file but not a llama2.c .bin checkpoint", path);
    DM_HINT("give a Hugging Face checkpoint directory (config.json, model.safetensors and the tokenizer's files) "
            "or a llama2.c .bin file with its tokenizer.bin beside it");
    return rc;
}

/* the Llama tokenizer of dir: tokenizer.json, else llama2.c's tokenizer.bin */
static int load_sptok(lm_model *lm, const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (is_file(p)) return sptok_load_json(&lm->sp, p);
    snprintf(p, sizeof p, "%s/tokenizer.bin", dir);
    if (is_file(p)) return sptok_load_llama2c(&lm->sp, p, lm->llama.cfg.vocab_size);
    DM_ERR(DM_EINPUT, "'%s' has neither tokenizer.json nor tokenizer.bin for the Llama checkpoint", dir);
    DM_HINT("copy the model's tokenizer.json (Hugging Face) or tokenizer.bin (llama2.c) beside it");
    return DM_EINPUT;
}

static int load_llama(lm_model *lm, const char *path)
{
    if (is_dir(path)) {
        DM_CALL(llama_load_hf(&lm->llama, path));
        return load_sptok(lm, path);
    }
    DM_CALL(llama_load_llama2c(&lm->llama, path));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    return load_sptok(lm, dir);
}

int lm_load_as(lm_model *lm, const char *path, const char *arch)
{
    memset(lm, 0, sizeof *lm);
    int want = lm_arch_parse(arch), got = -1;
    if (want == -2) {
        DM_ERR(DM_ECONFIG, "lm.arch: unknown architecture '%s'", arch);
        DM_HINT("lm.arch is \"auto\", \"gpt2\" or \"llama\"");
        return DM_ECONFIG;
    }
    DM_CALL(lm_detect_arch(path, &got));
    if (want >= 0 && want != got) {
        char what[4096];
        snprintf(what, sizeof what, "%s%s", path, is_dir(path) ? "/config.json" : "");
        DM_ERR(DM_ECONFIG, "lm.arch = \"%s\" but '%s' is a %s checkpoint", lm_arch_name(want), what, lm_arch_name(got));
        DM_HINT("set lm.arch = \"%s\" (or \"auto\"), or point lm.checkpoint at a %s checkpoint", lm_arch_name(got), lm_arch_name(want));
        return DM_ECONFIG;
    }
    lm->arch = got;
    int rc, nt, nv;
    if (got == LM_GPT2) {
        rc = gpt2_load(&lm->model, path);
        if (!rc) rc = bpe_load_dir(&lm->tok, path);
        nt = lm->tok.n_vocab, nv = lm->model.cfg.vocab_size;
    } else {
        rc = load_llama(lm, path);
        nt = lm->sp.n_vocab, nv = lm->llama.cfg.vocab_size;
    }
    if (rc == DM_OK && nt > nv) {
        rc = DM_ERR(DM_EINPUT, "'%s': the tokenizer has %d tokens but the model's vocabulary is %d", path, nt, nv);
        DM_HINT(got == LM_GPT2 ? "vocab.json and merges.txt must belong to the checkpoint in the same directory"
                               : "tokenizer.json (or tokenizer.bin) must belong to the checkpoint beside it");
    }
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        lm_free(lm);
    }
    return rc;
}

int lm_load(lm_model *lm, const char *path) { return lm_load_as(lm, path, NULL); }

/* the precision codes pass through unchanged to either architecture */
_Static_assert((int)LLAMA_F32 == (int)LM_F32 && (int)LLAMA_BF16 == (int)LM_BF16, "Llama and GPT-2 precision codes differ");

int lm_set_precision(lm_model *lm, const char *precision)
{
    int p = gpt2_precision_parse(precision);
    if (p < 0) {
        DM_ERR(DM_ECONFIG, "lm.precision: unknown precision '%s'", precision);
        DM_HINT("lm.precision is \"f32\" or \"bf16\"");
        return DM_ECONFIG;
    }
    return lm->arch == LM_GPT2 ? gpt2_set_precision(&lm->model, p) : llama_set_precision(&lm->llama, p);
}

int lm_precision(const lm_model *lm) { return lm->arch == LM_GPT2 ? lm->model.precision : lm->llama.precision; }

int lm_save(const lm_model *lm, const char *dir)
{
    if (lm->arch != LM_GPT2) return DM_ERR(DM_EINTERNAL, "lm_save: only the GPT-2 layout is written (a Llama model is loaded only)");
    DM_CALL(gpt2_save(&lm->model, dir));
    DM_CALL(bpe_save(&lm->tok, dir));
    return DM_OK;
}

void lm_free(lm_model *lm)
{
    gpt2_free(&lm->model);
    bpe_free(&lm->tok);
    llama_free(&lm->llama);
    sptok_free(&lm->sp);
}

/* ---- shape ---- */

#define GPT2(lm) ((lm)->arch == LM_GPT2)

int lm_width(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.channels : lm->llama.cfg.dim; }
int lm_context(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.max_seq_len : lm->llama.cfg.max_seq; }
int lm_vocab(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.vocab_size : lm->llama.cfg.vocab_size; }
int lm_layers(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.num_layers : lm->llama.cfg.n_layers; }
int lm_heads(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.num_heads : lm->llama.cfg.n_heads; }
int lm_kv_heads(const lm_model *lm) { return GPT2(lm) ? lm->model.cfg.num_heads : lm->llama.cfg.n_kv_heads; }
size_t lm_num_params(const lm_model *lm) { return GPT2(lm) ? lm->model.num_params : lm->llama.num_params; }
const float *lm_embeddings(const lm_model *lm) { return GPT2(lm) ? lm->model.params.wte : lm->llama.params.emb; }
const float *lm_head(const lm_model *lm) { return GPT2(lm) ? lm->model.params.wte : lm->llama.params.head; }

int lm_embed_tokens(const lm_model *lm, const int *ids, int n, float *out)
{
    int C = lm_width(lm), V = lm_vocab(lm);
    const float *e = lm_embeddings(lm);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) return DM_ERR(DM_EINPUT, "token %d: id %d is outside the vocabulary of %d", i, ids[i], V);
        memcpy(out + (size_t)i * C, e + (size_t)ids[i] * C, (size_t)C * sizeof *out);
    }
    return DM_OK;
}

/* ---- tokens ---- */

int lm_eot(const lm_model *lm) { return GPT2(lm) ? lm->tok.eot : lm->sp.eos; }
int lm_bos(const lm_model *lm) { return GPT2(lm) || lm->sp.n_pre < 1 ? -1 : lm->sp.pre[0]; }

int lm_encode(const lm_model *lm, const char *text, size_t len, bpe_ids *out)
{
    return GPT2(lm) ? bpe_encode(&lm->tok, text, len, out) : sptok_encode(&lm->sp, text, len, SPTOK_CONTINUE, out);
}

int lm_decode(const lm_model *lm, const int *ids, size_t n, dm_buf *out)
{
    return GPT2(lm) ? bpe_decode(&lm->tok, ids, n, out) : sptok_decode(&lm->sp, ids, n, SPTOK_CONTINUE, out);
}

/* ---- batch forward and backward ---- */

int lm_reserve(lm_model *lm, int B, int T, int flags)
{
    return GPT2(lm) ? gpt2_reserve(&lm->model, B, T, flags) : llama_reserve(&lm->llama, B, T, flags);
}

void lm_set_target_weights(lm_model *lm, const float *w)
{
    if (GPT2(lm)) lm->model.target_w = w;
    else lm->llama.target_w = w;
}

int lm_forward(lm_model *lm, const int *inputs, const float *soft, int n_soft, const int *targets, int B, int T,
               float norm, int flags)
{
    if (GPT2(lm)) return gpt2_forward(&lm->model, inputs, soft, n_soft, targets, B, T, norm, flags);
    return llama_forward(&lm->llama, inputs, soft, n_soft, targets, B, T, norm, flags);
}

int lm_backward(lm_model *lm, const float *dhidden, float *dsoft)
{
    if (GPT2(lm)) return gpt2_backward(&lm->model, NULL, dhidden, dsoft, 0);
    return llama_backward(&lm->llama, NULL, dhidden, dsoft);
}

lm_out lm_last(const lm_model *lm)
{
    lm_out o;
    if (GPT2(lm)) {
        const gpt2_model *m = &lm->model;
        o = (lm_out){m->n_rows, m->rows, m->acts.logits, m->acts.lse, m->acts.lnf, m->loss};
    } else {
        const llama_model *m = &lm->llama;
        o = (lm_out){m->n_rows, m->rows, m->acts.logits, m->acts.lse, m->acts.xf, m->loss};
    }
    return o;
}

/* ---- KV cache ---- */

static int cache_sync(lm_cache *c, int rc)
{
    c->len = c->arch == LM_GPT2 ? c->g.len : c->l.len;
    c->cap = c->arch == LM_GPT2 ? c->g.cap : c->l.cap;
    c->max_rows = c->arch == LM_GPT2 ? c->g.max_rows : c->l.max_rows;
    return rc;
}

int lm_cache_init(lm_cache *c, const lm_model *lm, int cap, int max_rows)
{
    memset(c, 0, sizeof *c);
    c->arch = lm->arch;
    int rc = GPT2(lm) ? gpt2_cache_init(&c->g, &lm->model, cap, max_rows) : llama_cache_init(&c->l, &lm->llama, cap, max_rows);
    return cache_sync(c, rc);
}

void lm_cache_free(lm_cache *c)
{
    if (c->arch == LM_GPT2) gpt2_cache_free(&c->g);
    else llama_cache_free(&c->l);
    memset(c, 0, sizeof *c);
}

int lm_cache_append(lm_cache *c, const int *inputs, const float *soft, int n_soft, int n)
{
    int rc = c->arch == LM_GPT2 ? gpt2_cache_append(&c->g, inputs, soft, n_soft, n) : llama_cache_append(&c->l, inputs, soft, n_soft, n);
    return cache_sync(c, rc);
}

int lm_cache_truncate(lm_cache *c, int len)
{
    int rc = c->arch == LM_GPT2 ? gpt2_cache_truncate(&c->g, len) : llama_cache_truncate(&c->l, len);
    return cache_sync(c, rc);
}

const float *lm_cache_logp(const lm_cache *c) { return c->arch == LM_GPT2 ? c->g.logp : c->l.logp; }

const float *lm_cache_hidden(const lm_cache *c, int pos)
{
    DM_ASSERT(pos >= 0 && pos < c->len);
    return c->arch == LM_GPT2 ? c->g.hid + (size_t)pos * (size_t)c->g.m->cfg.channels
                              : c->l.hid + (size_t)pos * (size_t)c->l.m->cfg.dim;
}

int lm_cache_score(lm_cache *c, const int *tokens, const int64_t *offsets, int n_cand, double *ll)
{
    if (c->arch == LM_GPT2) return gpt2_cache_score(&c->g, tokens, offsets, n_cand, ll);
    return llama_cache_score(&c->l, tokens, offsets, n_cand, ll);
}

int lm_cache_score_mixed(lm_cache *c, const int *tokens, const int64_t *offsets, int n_cand, const float *csoft,
                         int n_csoft, const float *esoft, double *ll, double *ll_soft)
{
    if (c->arch == LM_GPT2) return gpt2_cache_score_mixed(&c->g, tokens, offsets, n_cand, csoft, n_csoft, esoft, ll, ll_soft);
    return llama_cache_score_mixed(&c->l, tokens, offsets, n_cand, csoft, n_csoft, esoft, ll, ll_soft);
}

int lm_cache_generate(lm_cache *c, int max_new, int stop_token, int *out, int *n_out)
{
    int rc = c->arch == LM_GPT2 ? gpt2_generate_greedy(&c->g, max_new, stop_token, out, n_out)
                                : llama_generate_greedy(&c->l, max_new, stop_token, out, n_out);
    return cache_sync(c, rc);
}

/* ---- text ---- */

int lm_append_text(const lm_model *lm, lm_cache *c, const char *text)
{
    bpe_ids ids = {0};
    int rc = lm_encode(lm, text, strlen(text), &ids);
    if (rc == DM_OK && ids.n) rc = lm_cache_append(c, ids.v, NULL, 0, (int)ids.n);
    bpe_ids_free(&ids);
    return rc;
}

/* tokens of n strings back to back, with offsets (n + 1) */
static int encode_all(const lm_model *lm, const char *const *s, int n, bpe_ids *ids, int64_t *off)
{
    off[0] = 0;
    for (int i = 0; i < n; i++) {
        DM_CALL(lm_encode(lm, s[i], strlen(s[i]), ids));
        off[i + 1] = (int64_t)ids->n;
    }
    return DM_OK;
}

int lm_score_texts(const lm_model *lm, lm_cache *c, const char *const *cands, int n, double *ll)
{
    bpe_ids ids = {0};
    int64_t *off;
    DM_ALLOC(off, (size_t)n + 1);
    int rc = encode_all(lm, cands, n, &ids, off);
    if (rc == DM_OK) rc = lm_cache_score(c, ids.v, off, n, ll);
    bpe_ids_free(&ids);
    free(off);
    return rc;
}

int lm_generate_text(const lm_model *lm, lm_cache *c, int max_new, dm_buf *out)
{
    int *tok;
    DM_ALLOC(tok, max_new > 0 ? (size_t)max_new : 1);
    int n = 0;
    int eot = lm_eot(lm);
    int rc = lm_cache_generate(c, max_new, eot, tok, &n);
    if (rc == DM_OK) {
        if (n > 0 && tok[n - 1] == eot && eot >= 0) n--;
        rc = lm_decode(lm, tok, (size_t)n, out);
    }
    free(tok);
    return rc;
}

int lm_fill_template(const lm_model *lm, lm_cache *c, const lm_part *parts, int n_parts, int *choice,
                     double *choice_ll, dm_buf *out)
{
    int rc = DM_OK;
    bpe_ids ids = {0};
    int64_t *off = NULL;
    double *ll = NULL;
    for (int k = 0; k < n_parts && rc == DM_OK; k++) {
        if (choice) choice[k] = -1;
        if (choice_ll) choice_ll[k] = 0.0;
        if (parts[k].text) {
            rc = lm_append_text(lm, c, parts[k].text);
            if (rc == DM_OK) rc = dm_buf_adds(out, parts[k].text);
            continue;
        }
        int nv = parts[k].n_values;
        if (nv <= 0) {
            rc = DM_ERR(DM_EINPUT, "template part %d is a slot without allowed values", k);
            break;
        }
        free(off);
        free(ll);
        off = malloc(((size_t)nv + 1) * sizeof *off);
        ll = malloc((size_t)nv * sizeof *ll);
        if (!off || !ll) { rc = DM_ERR(DM_ENOMEM, "out of memory"); break; }
        ids.n = 0;
        if ((rc = encode_all(lm, parts[k].values, nv, &ids, off)) != DM_OK) break;
        /* the values that fit after the prefix, scored; the others left out */
        int nfit = 0;
        int64_t *fo = malloc(((size_t)nv + 1) * sizeof *fo);
        int *fi = malloc((size_t)nv * sizeof *fi), *ft = malloc(ids.n ? ids.n * sizeof *ft : 1);
        if (!fo || !fi || !ft) rc = DM_ERR(DM_ENOMEM, "out of memory");
        fo[0] = 0;
        for (int i = 0; i < nv && rc == DM_OK; i++) {
            int64_t nt = off[i + 1] - off[i];
            if (c->len + nt > c->cap || nt > c->max_rows) continue;
            memcpy(ft + fo[nfit], ids.v + off[i], (size_t)nt * sizeof *ft);
            fo[nfit + 1] = fo[nfit] + nt;
            fi[nfit++] = i;
        }
        if (rc == DM_OK && nfit > 0) rc = lm_cache_score(c, ft, fo, nfit, ll);
        int best = nfit > 0 ? fi[0] : -1;
        double bll = nfit > 0 ? ll[0] : 0.0;
        for (int j = 1; j < nfit; j++)
            if (ll[j] > bll) {
                bll = ll[j];
                best = fi[j];
            }
        free(fo);
        free(fi);
        free(ft);
        if (rc != DM_OK) break;
        if (best < 0) {
            if (choice) {
                choice[k] = -2;
                break;
            }
            rc = DM_ERR(DM_EINPUT, "template part %d: none of its %d value%s fits after the %d tokens before it (context %d)", k, nv,
                        nv == 1 ? "" : "s", c->len, c->cap);
            break;
        }
        ll[0] = bll;
        if (choice) choice[k] = best;
        if (choice_ll) choice_ll[k] = ll[0];
        int nt = (int)(off[best + 1] - off[best]);
        if (nt > 0 && (rc = lm_cache_append(c, ids.v + off[best], NULL, 0, nt)) != DM_OK) break;
        rc = dm_buf_adds(out, parts[k].values[best]);
    }
    free(off);
    free(ll);
    bpe_ids_free(&ids);
    return rc;
}
