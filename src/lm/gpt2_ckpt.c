/* gpt2_ckpt.c: loading and saving Hugging Face GPT-2 checkpoints; see gpt2_ckpt.h. */
#include "gpt2_ckpt.h"

#include "../core/buf.h"
#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"
#include "lm_common.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* HF name (after "h.N.") of each slab view; per-layer views have a '.'-free C name in slab order. */
static const struct {
    const char *hf;
    int per_layer;
} hf_names[GPT2_NUM_PARAMS] = {
    {"wte.weight", 0},         {"wpe.weight", 0},        {"ln_1.weight", 1},      {"ln_1.bias", 1},
    {"attn.c_attn.weight", 1}, {"attn.c_attn.bias", 1},  {"attn.c_proj.weight", 1}, {"attn.c_proj.bias", 1},
    {"ln_2.weight", 1},        {"ln_2.bias", 1},         {"mlp.c_fc.weight", 1},  {"mlp.c_fc.bias", 1},
    {"mlp.c_proj.weight", 1},  {"mlp.c_proj.bias", 1},   {"ln_f.weight", 0},      {"ln_f.bias", 0}};

/* shape of one (per-layer) tensor of view p */
static int hf_shape(const gpt2_config *c, int p, int64_t *s)
{
    int64_t V = c->vocab_size, C = c->channels, T = c->max_seq_len, F = c->inner;
    switch (p) {
    case 0: s[0] = V; s[1] = C; return 2;
    case 1: s[0] = T; s[1] = C; return 2;
    case 4: s[0] = C; s[1] = 3 * C; return 2;
    case 5: s[0] = 3 * C; return 1;
    case 6: s[0] = C; s[1] = C; return 2;
    case 10: s[0] = C; s[1] = F; return 2;
    case 11: s[0] = F; return 1;
    case 12: s[0] = F; s[1] = C; return 2;
    default: s[0] = C; return 1;
    }
}

static void shape_str(char *out, size_t cap, const int64_t *s, int nd)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (int i = 0; i < nd && o < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

static int get_int(const dm_json *root, const char *key, int64_t *out, int required, const char *path)
{
    const dm_json *v = dm_json_get(root, key);
    if (!v || v->type == DM_JNULL) {
        if (required) return DM_ERR(DM_EINPUT, "'%s': missing \"%s\"", path, key);
        return 1;
    }
    if (dm_json_int(v, out) || *out <= 0 || *out > (1 << 30))
        return DM_ERR(DM_EINPUT, "'%s': \"%s\" must be a positive integer", path, key);
    return DM_OK;
}

static int parse_config(const dm_json *root, void *out, const char *path)
{
    gpt2_config *cfg = out;
    const dm_json *mt = dm_json_get(root, "model_type");
    if (mt && mt->type == DM_JSTR && strcmp(mt->str, "gpt2"))
        return DM_ERR(DM_EINPUT, "'%s': model_type is '%s', only 'gpt2' is supported", path, mt->str);
    int rc;
    int64_t C, NH, L, T, V, F;
    if ((rc = get_int(root, "n_embd", &C, 1, path)) || (rc = get_int(root, "n_head", &NH, 1, path)) ||
        (rc = get_int(root, "n_layer", &L, 1, path)) || (rc = get_int(root, "vocab_size", &V, 1, path)))
        return rc;
    int r = get_int(root, "n_positions", &T, 0, path);
    if (r == 1) r = get_int(root, "n_ctx", &T, 1, path);
    if (r) return r;
    r = get_int(root, "n_inner", &F, 0, path);
    if (r == 1) F = 4 * C;
    else if (r) return r;
    double eps = 1e-5;
    const dm_json *e = dm_json_get(root, "layer_norm_epsilon");
    if (e && dm_json_double(e, &eps)) return DM_ERR(DM_EINPUT, "'%s': \"layer_norm_epsilon\" must be a number", path);
    const dm_json *act = dm_json_get(root, "activation_function");
    if (act && (act->type != DM_JSTR || (strcmp(act->str, "gelu_new") && strcmp(act->str, "gelu_pytorch_tanh") &&
                                         strcmp(act->str, "gelu_fast")))) {
        rc = DM_ERR(DM_EINPUT, "'%s': activation_function '%s' is not supported", path,
                    act->type == DM_JSTR ? act->str : "(not a string)");
        DM_HINT("the runtime implements GPT-2's tanh GELU (gelu_new)");
        return rc;
    }
    const dm_json *b;
    if ((b = dm_json_get(root, "scale_attn_weights")) && b->type == DM_JBOOL && !b->boolean)
        return DM_ERR(DM_EINPUT, "'%s': scale_attn_weights false is not supported", path);
    if ((b = dm_json_get(root, "scale_attn_by_inverse_layer_idx")) && b->type == DM_JBOOL && b->boolean)
        return DM_ERR(DM_EINPUT, "'%s': scale_attn_by_inverse_layer_idx true is not supported", path);
    if ((b = dm_json_get(root, "tie_word_embeddings")) && b->type == DM_JBOOL && !b->boolean)
        return DM_ERR(DM_EINPUT, "'%s': tie_word_embeddings false (an untied output head) is not supported", path);
    cfg->channels = (int)C;
    cfg->num_heads = (int)NH;
    cfg->num_layers = (int)L;
    cfg->max_seq_len = (int)T;
    cfg->vocab_size = (int)V;
    cfg->inner = (int)F;
    cfg->ln_eps = (float)eps;
    return gpt2_config_check(cfg, path);
}

int gpt2_load_config(const char *dir, gpt2_config *cfg)
{
    return lmc_read_config(dir, 1, parse_config, cfg);
}

/* Is `name` (prefix stripped) an attention mask buffer we ignore? */
static int is_buffer(const char *name)
{
    const char *d;
    if (strncmp(name, "h.", 2)) return 0;
    d = strchr(name + 2, '.');
    return d && (!strcmp(d, ".attn.bias") || !strcmp(d, ".attn.masked_bias"));
}

int gpt2_load(gpt2_model *m, const char *dir)
{
    gpt2_config cfg;
    DM_CALL(gpt2_load_config(dir, &cfg));
    DM_CALL(gpt2_init(m, &cfg));
    char path[4096], name[256], exp[64], got[64];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    safetensors_file sf;
    int rc = safetensors_open(&sf, path);
    float *head = NULL;
    if (rc) { dm_error_trace(__FILE__, __LINE__); gpt2_free(m); return rc; }
    const char *prefix = safetensors_find(&sf, "transformer.wte.weight") ? "transformer." : "";
    size_t plen = strlen(prefix);

    /* every tensor of the file must be known */
    for (size_t i = 0; i < sf.n; i++) {
        const char *n = sf.t[i].name;
        if (plen && !strncmp(n, prefix, plen)) n += plen;
        else if (plen && strcmp(n, "lm_head.weight")) goto unknown;
        if (!strcmp(n, "lm_head.weight") || is_buffer(n)) continue;
        for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
            if (!hf_names[p].per_layer) {
                if (!strcmp(n, hf_names[p].hf)) goto known;
                continue;
            }
            int l, off = 0;
            if (sscanf(n, "h.%d.%n", &l, &off) == 1 && off > 0 && !strcmp(n + off, hf_names[p].hf)) {
                if (l >= 0 && l < cfg.num_layers) goto known;
                rc = DM_ERR(DM_EINPUT, "'%s': tensor '%s' belongs to layer %d but config.json says n_layer %d", path,
                            sf.t[i].name, l, cfg.num_layers);
                goto done;
            }
        }
    unknown:
        rc = DM_ERR(DM_EINPUT, "'%s': unexpected tensor '%s' for a GPT-2 language model", path, sf.t[i].name);
        DM_HINT("expected wte, wpe, h.N.{ln_1,attn,ln_2,mlp}.*, ln_f.* and optionally lm_head.weight");
        goto done;
    known:;
    }

    /* read each view, layer by layer */
    float *dst = m->param_slab;
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        int64_t shape[2] = {0, 0};
        int nd = hf_shape(&cfg, p, shape);
        size_t per = (size_t)shape[0] * (nd > 1 ? (size_t)shape[1] : 1);
        int nl = hf_names[p].per_layer ? cfg.num_layers : 1;
        for (int l = 0; l < nl; l++) {
            if (hf_names[p].per_layer) snprintf(name, sizeof name, "%sh.%d.%s", prefix, l, hf_names[p].hf);
            else snprintf(name, sizeof name, "%s%s", prefix, hf_names[p].hf);
            const safetensors_tensor *t = safetensors_find(&sf, name);
            if (!t) {
                rc = DM_ERR(DM_EINPUT, "'%s': tensor '%s' is missing", path, name);
                goto done;
            }
            int same = t->ndim == nd;
            for (int d = 0; same && d < nd; d++) same = t->shape[d] == shape[d];
            if (!same) {
                shape_str(exp, sizeof exp, shape, nd);
                shape_str(got, sizeof got, t->shape, t->ndim);
                rc = DM_ERR(DM_EINPUT,
                            "'%s': tensor '%s' has shape %s, expected %s from config.json (n_embd %d, n_head %d, "
                            "n_layer %d, n_positions %d, vocab_size %d, n_inner %d)", path, name, got, exp,
                            cfg.channels, cfg.num_heads, cfg.num_layers, cfg.max_seq_len, cfg.vocab_size, cfg.inner);
                goto done;
            }
            if ((rc = safetensors_read_f32(&sf, t, dst)) != DM_OK) goto done;
            dst += per;
        }
    }
    /* a stored head must be the tied one */
    snprintf(name, sizeof name, "%slm_head.weight", prefix);
    const safetensors_tensor *t = safetensors_find(&sf, name);
    if (!t) t = safetensors_find(&sf, "lm_head.weight");
    if (t) {
        size_t n = m->param_sizes[0];
        if (t->ndim != 2 || t->shape[0] != cfg.vocab_size || t->shape[1] != cfg.channels) {
            rc = DM_ERR(DM_EINPUT, "'%s': tensor '%s' does not have wte's shape [%d, %d]", path, t->name,
                        cfg.vocab_size, cfg.channels);
            goto done;
        }
        head = malloc(n * sizeof *head);
        if (!head) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
        if ((rc = safetensors_read_f32(&sf, t, head)) != DM_OK) goto done;
        if (memcmp(head, m->params.wte, n * sizeof *head)) {
            rc = DM_ERR(DM_EINPUT, "'%s': tensor '%s' differs from wte.weight: untied output heads are not supported",
                        path, t->name);
            goto done;
        }
    }
done:
    free(head);
    safetensors_close(&sf);
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        gpt2_free(m);
    }
    return rc;
}

int gpt2_save(const gpt2_model *m, const char *dir)
{
    const gpt2_config *c = &m->cfg;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return DM_ERR(DM_EIO, "cannot create directory '%s': %s", dir, strerror(errno));
    char path[4096];
    dm_buf js = {0};
    int rc = dm_buf_printf(&js,
                           "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                           "  \"activation_function\": \"gelu_new\",\n  \"n_embd\": %d,\n  \"n_head\": %d,\n"
                           "  \"n_layer\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n"
                           "  \"n_inner\": %d,\n  \"layer_norm_epsilon\": %.9g,\n  \"tie_word_embeddings\": true,\n"
                           "  \"scale_attn_weights\": true,\n  \"torch_dtype\": \"float32\"\n}\n",
                           c->channels, c->num_heads, c->num_layers, c->max_seq_len, c->max_seq_len, c->vocab_size,
                           c->inner, (double)c->ln_eps);
    if (rc) { dm_buf_free(&js); return rc; }
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = safetensors_write_file_atomic(path, js.data, js.len);
    dm_buf_free(&js);
    DM_CALL(rc);

    size_t n = 4 + (size_t)(GPT2_NUM_PARAMS - 4) * c->num_layers;
    safetensors_entry *e;
    char *names;
    DM_ALLOC(e, n);
    names = calloc(n, 64);
    if (!names) { free(e); return DM_ERR(DM_ENOMEM, "out of memory"); }
    size_t k = 0;
    const float *src = m->param_slab;
    for (int p = 0; p < GPT2_NUM_PARAMS; p++) {
        int64_t shape[2] = {0, 0};
        int nd = hf_shape(c, p, shape);
        size_t per = (size_t)shape[0] * (nd > 1 ? (size_t)shape[1] : 1);
        int nl = hf_names[p].per_layer ? c->num_layers : 1;
        for (int l = 0; l < nl; l++, k++) {
            char *nm = names + 64 * k;
            if (hf_names[p].per_layer) snprintf(nm, 64, "h.%d.%s", l, hf_names[p].hf);
            else snprintf(nm, 64, "%s", hf_names[p].hf);
            e[k].name = nm;
            e[k].data = src;
            e[k].ndim = nd;
            e[k].shape[0] = shape[0];
            e[k].shape[1] = nd > 1 ? shape[1] : 0;
            src += per;
        }
    }
    static const char *const meta[] = {"format", "pt", NULL};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = safetensors_write_f32(path, e, k, meta);
    free(e);
    free(names);
    return rc;
}
