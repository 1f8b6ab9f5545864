/* llama_ckpt.c: loading Hugging Face (single or sharded safetensors) and llama2.c Llama checkpoints;
 * see llama_ckpt.h. */
#include "llama_ckpt.h"

#include "../core/err.h"
#include "../core/json.h"
#include "../core/lines.h"
#include "lm_common.h"
#include "safetensors.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void llama_permute_meta_to_hf(float *out, const float *w, int n_heads, int hd, int in)
{
    int h2 = hd / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < h2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hd + (size_t)j * h2 + i) * in, w + ((size_t)h * hd + 2 * i + j) * in,
                       (size_t)in * sizeof(float));
}

void llama_permute_hf_to_meta(float *out, const float *w, int n_heads, int hd, int in)
{
    int h2 = hd / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < h2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hd + 2 * i + j) * in, w + ((size_t)h * hd + (size_t)j * h2 + i) * in,
                       (size_t)in * sizeof(float));
}

static void shape_str(char *out, size_t cap, const int64_t *s, int nd)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < nd && o < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

/* ---------------------------------------------------------------------------------------------
 * config.json */

/* 0: set; 1: absent (or null) and not required; an error code otherwise */
static int cfg_int(const dm_json *root, const char *key, int *out, int required, const char *path)
{
    const dm_json *v = dm_json_get(root, key);
    int64_t x;
    if (!v || v->type == DM_JNULL) {
        if (required) return DM_ERR(DM_EINPUT, "'%s': missing \"%s\"", path, key);
        return 1;
    }
    if (dm_json_int(v, &x) || x <= 0 || x > (1 << 30))
        return DM_ERR(DM_EINPUT, "'%s': \"%s\" must be a positive integer", path, key);
    *out = (int)x;
    return DM_OK;
}

static int cfg_num(const dm_json *root, const char *key, double *out, const char *path)
{
    const dm_json *v = dm_json_get(root, key);
    if (!v || v->type == DM_JNULL) return DM_OK; /* keep the default */
    if (dm_json_double(v, out)) return DM_ERR(DM_EINPUT, "'%s': \"%s\" must be a number", path, key);
    return DM_OK;
}

/* true / false, or *out unchanged when absent */
static int cfg_bool(const dm_json *root, const char *key, int *out, const char *path)
{
    const dm_json *v = dm_json_get(root, key);
    if (!v || v->type == DM_JNULL) return DM_OK;
    if (v->type != DM_JBOOL) return DM_ERR(DM_EINPUT, "'%s': \"%s\" must be true or false", path, key);
    *out = v->boolean;
    return DM_OK;
}

static int parse_rope_scaling(const dm_json *rs, llama_config *cfg, const char *path)
{
    if (!rs || rs->type == DM_JNULL) return DM_OK;
    if (rs->type != DM_JOBJ) return DM_ERR(DM_EINPUT, "'%s': \"rope_scaling\" must be an object or null", path);
    const dm_json *t = dm_json_get(rs, "rope_type");
    if (!t) t = dm_json_get(rs, "type");
    const char *type = t && t->type == DM_JSTR ? t->str : "(none)";
    if (!strcmp(type, "default")) return DM_OK;
    if (strcmp(type, "llama3")) {
        DM_ERR(DM_EINPUT, "'%s': rope_scaling type '%s' is not supported", path, type);
        DM_HINT("the runtime implements unscaled RoPE and Llama 3.1's \"llama3\" scaling");
        return DM_EINPUT;
    }
    double f = 0, lo = 0, hi = 0;
    int orig = 0;
    DM_CALL(cfg_num(rs, "factor", &f, path));
    DM_CALL(cfg_num(rs, "low_freq_factor", &lo, path));
    DM_CALL(cfg_num(rs, "high_freq_factor", &hi, path));
    if (cfg_int(rs, "original_max_position_embeddings", &orig, 1, path)) return DM_EINPUT;
    cfg->rope_factor = (float)f;
    cfg->rope_low_freq_factor = (float)lo;
    cfg->rope_high_freq_factor = (float)hi;
    cfg->rope_orig_max_pos = orig;
    return DM_OK;
}

static int parse_config(const dm_json *root, void *out, const char *path)
{
    llama_config *cfg = out;
    memset(cfg, 0, sizeof *cfg);
    if (root->type != DM_JOBJ) return DM_ERR(DM_EINPUT, "'%s': expected a JSON object", path);
    const dm_json *mt = dm_json_get(root, "model_type");
    if (mt && (mt->type != DM_JSTR || strcmp(mt->str, "llama"))) {
        DM_ERR(DM_EINPUT, "'%s': model_type is '%s', expected 'llama'", path,
               mt->type == DM_JSTR ? mt->str : "(not a string)");
        DM_HINT("the Llama runtime implements LlamaForCausalLM only");
        return DM_EINPUT;
    }
    if (cfg_int(root, "hidden_size", &cfg->dim, 1, path) ||
        cfg_int(root, "intermediate_size", &cfg->hidden_dim, 1, path) ||
        cfg_int(root, "num_hidden_layers", &cfg->n_layers, 1, path) ||
        cfg_int(root, "num_attention_heads", &cfg->n_heads, 1, path) ||
        cfg_int(root, "vocab_size", &cfg->vocab_size, 1, path) ||
        cfg_int(root, "max_position_embeddings", &cfg->max_seq, 1, path))
        return DM_EINPUT;
    int r = cfg_int(root, "num_key_value_heads", &cfg->n_kv_heads, 0, path);
    if (r == 1) cfg->n_kv_heads = cfg->n_heads;
    else if (r) return r;
    r = cfg_int(root, "head_dim", &cfg->head_dim, 0, path);
    if (r == 1) {
        if (cfg->dim % cfg->n_heads)
            return DM_ERR(DM_EINPUT, "'%s': hidden_size %d is not divisible by num_attention_heads %d", path,
                          cfg->dim, cfg->n_heads);
        cfg->head_dim = cfg->dim / cfg->n_heads;
    } else if (r) {
        return r;
    }
    double theta = 10000.0, eps = 1e-6;
    DM_CALL(cfg_num(root, "rope_theta", &theta, path));
    DM_CALL(cfg_num(root, "rms_norm_eps", &eps, path));
    cfg->rope_theta = (float)theta;
    cfg->norm_eps = (float)eps;
    cfg->tied = 0; /* LlamaConfig's default */
    DM_CALL(cfg_bool(root, "tie_word_embeddings", &cfg->tied, path));
    const dm_json *act = dm_json_get(root, "hidden_act");
    if (act && (act->type != DM_JSTR || strcmp(act->str, "silu"))) {
        DM_ERR(DM_EINPUT, "'%s': hidden_act '%s' is not supported", path, act->type == DM_JSTR ? act->str : "(not a string)");
        DM_HINT("the runtime implements Llama's SwiGLU MLP (hidden_act \"silu\")");
        return DM_EINPUT;
    }
    static const char *const biases[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        int b = 0;
        DM_CALL(cfg_bool(root, biases[i], &b, path));
        if (b) return DM_ERR(DM_EINPUT, "'%s': %s true is not supported (Llama projections have no bias)", path, biases[i]);
    }
    DM_CALL(parse_rope_scaling(dm_json_get(root, "rope_scaling"), cfg, path));
    return llama_config_check(cfg, path);
}

int llama_load_hf_config(const char *dir, llama_config *cfg)
{
    return lmc_read_config(dir, 0, parse_config, cfg);
}

/* ---------------------------------------------------------------------------------------------
 * tensor sources: one model.safetensors, or the shards of an index */

typedef struct {
    char where[4200];          /* the file that lists the tensors: for messages */
    int sharded;
    safetensors_file *files;   /* (n_files) */
    char **file_names;         /* (n_files) as the index names them */
    size_t n_files;
    char **map_name;           /* (n_map) tensor names of the index */
    int *map_file;             /* (n_map) their shard */
    size_t n_map;
} tsrc;

static void tsrc_close(tsrc *s)
{
    for (size_t i = 0; i < s->n_files; i++) {
        safetensors_close(&s->files[i]);
        free(s->file_names[i]);
    }
    for (size_t i = 0; i < s->n_map; i++) free(s->map_name[i]);
    DM_FREE_ALL(s->files, s->file_names, s->map_name, s->map_file);
    memset(s, 0, sizeof *s);
}

/* a shard file name must stay inside the checkpoint directory */
static int plain_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int tsrc_open_index(tsrc *s, const char *dir, const char *index)
{
    char *text;
    dm_jdoc doc = {0};
    dm_json *root;
    DM_CALL(dm_json_load(index, 0, &doc, &text, &root));
    int rc = DM_OK;
    const dm_json *wm = root->type == DM_JOBJ ? dm_json_get(root, "weight_map") : NULL;
    if (!wm || wm->type != DM_JOBJ || wm->len == 0) {
        rc = DM_ERR(DM_EINPUT, "'%s': expected an object with a non-empty \"weight_map\" {tensor: shard file}", index);
        goto done;
    }
    s->map_name = calloc(wm->len, sizeof *s->map_name);
    s->map_file = calloc(wm->len, sizeof *s->map_file);
    s->files = calloc(wm->len, sizeof *s->files);
    s->file_names = calloc(wm->len, sizeof *s->file_names);
    if (!s->map_name || !s->map_file || !s->files || !s->file_names) {
        rc = DM_ERR(DM_ENOMEM, "out of memory reading '%s'", index);
        goto done;
    }
    for (const dm_json *e = wm->child; e; e = e->next) {
        if (e->type != DM_JSTR || !plain_name(e->str)) {
            rc = DM_ERR(DM_EINPUT, "'%s': weight_map entry '%s' must name a file of the checkpoint directory", index,
                        e->key);
            goto done;
        }
        size_t k = 0;
        while (k < s->n_files && strcmp(s->file_names[k], e->str)) k++;
        if (k == s->n_files) {
            char path[8400];
            snprintf(path, sizeof path, "%s/%s", dir, e->str);
            s->file_names[k] = strdup(e->str);
            if (!s->file_names[k]) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
            struct stat st;
            if (stat(path, &st) != 0) {
                rc = DM_ERR(DM_EIO, "'%s': shard '%s' (listed for tensor '%s') cannot be opened: %s", index, path,
                            e->key, strerror(errno));
                DM_HINT("a shard is missing: copy every model-*.safetensors file the index lists");
                free(s->file_names[k]);
                goto done;
            }
            if ((rc = safetensors_open(&s->files[k], path)) != DM_OK) {
                free(s->file_names[k]);
                goto done;
            }
            s->n_files++;
        }
        s->map_name[s->n_map] = strdup(e->key);
        if (!s->map_name[s->n_map]) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
        s->map_file[s->n_map++] = (int)k;
    }
done:
    dm_jdoc_free(&doc);
    free(text);
    return rc;
}

static int tsrc_open(tsrc *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    char single[4200];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(s->where, sizeof s->where, "%s/model.safetensors.index.json", dir);
    struct stat st;
    int rc;
    if (stat(s->where, &st) == 0) {
        s->sharded = 1;
        rc = tsrc_open_index(s, dir, s->where);
    } else {
        snprintf(s->where, sizeof s->where, "%s", single);
        DM_ALLOC(s->files, 1);
        DM_ALLOC(s->file_names, 1);
        rc = safetensors_open(&s->files[0], single);
        if (rc == DM_OK) {
            s->n_files = 1;
            s->file_names[0] = strdup("model.safetensors");
            if (!s->file_names[0]) rc = DM_ERR(DM_ENOMEM, "out of memory");
        } else {
            DM_HINT("a Hugging Face checkpoint holds model.safetensors or model.safetensors.index.json and its shards");
        }
    }
    if (rc) tsrc_close(s);
    return rc;
}

/* the tensor `name`: *t = NULL when absent; an error when the index lists it in a shard without it */
static int tsrc_find(tsrc *s, const char *name, safetensors_file **f, const safetensors_tensor **t)
{
    *t = NULL;
    if (!s->sharded) {
        *f = &s->files[0];
        *t = safetensors_find(*f, name);
        return DM_OK;
    }
    for (size_t i = 0; i < s->n_map; i++)
        if (!strcmp(s->map_name[i], name)) {
            *f = &s->files[s->map_file[i]];
            *t = safetensors_find(*f, name);
            if (!*t)
                return DM_ERR(DM_EINPUT, "'%s': tensor '%s' is listed in shard '%s', which does not hold it", s->where,
                              name, (*f)->path);
            return DM_OK;
        }
    return DM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Hugging Face loader */

enum { T_EMB, T_NORM, T_HEAD, T_IN_NORM, T_Q, T_K, T_V, T_O, T_POST_NORM, T_GATE, T_UP, T_DOWN, T_INV_FREQ, T_KINDS };
static const char *const layer_names[T_KINDS] = {
    [T_IN_NORM] = "input_layernorm.weight", [T_Q] = "self_attn.q_proj.weight",
    [T_K] = "self_attn.k_proj.weight",      [T_V] = "self_attn.v_proj.weight",
    [T_O] = "self_attn.o_proj.weight",      [T_POST_NORM] = "post_attention_layernorm.weight",
    [T_GATE] = "mlp.gate_proj.weight",      [T_UP] = "mlp.up_proj.weight",
    [T_DOWN] = "mlp.down_proj.weight",      [T_INV_FREQ] = "self_attn.rotary_emb.inv_freq"};

/* the kind of tensor `name` and its layer (-1 for global ones); -1 when unknown */
static int classify(const char *name, const char *prefix, int *layer)
{
    size_t pl = strlen(prefix);
    *layer = -1;
    if (!strcmp(name, "lm_head.weight")) return T_HEAD;
    if (strncmp(name, prefix, pl)) return -1;
    const char *n = name + pl;
    if (!strcmp(n, "embed_tokens.weight")) return T_EMB;
    if (!strcmp(n, "norm.weight")) return T_NORM;
    int l, off = 0;
    if (sscanf(n, "layers.%d.%n", &l, &off) == 1 && off > 0)
        for (int k = T_IN_NORM; k < T_KINDS; k++)
            if (!strcmp(n + off, layer_names[k])) {
                *layer = l;
                return k;
            }
    return -1;
}

static int check_name(const char *file, const char *name, const char *prefix, int L)
{
    int l, k = classify(name, prefix, &l);
    if (k < 0) {
        DM_ERR(DM_EINPUT, "'%s': unexpected tensor '%s' for a Llama language model", file, name);
        DM_HINT("expected %sembed_tokens.weight, %slayers.N.{input_layernorm,self_attn.{q,k,v,o}_proj,"
                "post_attention_layernorm,mlp.{gate,up,down}_proj}.weight, %snorm.weight and lm_head.weight",
                prefix, prefix, prefix);
        return DM_EINPUT;
    }
    if (l >= L)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' belongs to layer %d but config.json says num_hidden_layers %d",
                      file, name, l, L);
    return DM_OK;
}

typedef struct {
    tsrc src;
    const llama_config *cfg;
    char cfg_path[4200];
} hf_ctx;

/* reads tensor `name` of shape (s0[, s1]) into dst */
static int read_tensor(hf_ctx *h, const char *name, int nd, int64_t s0, int64_t s1, float *dst)
{
    safetensors_file *f;
    const safetensors_tensor *t;
    DM_CALL(tsrc_find(&h->src, name, &f, &t));
    if (!t)
        return DM_ERR(DM_EINPUT, "'%s': tensor '%s' is missing", h->src.where, name);
    int64_t want[2] = {s0, s1};
    int same = t->ndim == nd;
    for (int d = 0; same && d < nd; d++) same = t->shape[d] == want[d];
    if (!same) {
        char exp[64], got[64];
        const llama_config *c = h->cfg;
        shape_str(exp, sizeof exp, want, nd);
        shape_str(got, sizeof got, t->shape, t->ndim);
        return DM_ERR(DM_EINPUT,
                      "'%s': tensor '%s' has shape %s, expected %s from '%s' (hidden_size %d, intermediate_size %d, "
                      "num_attention_heads %d, num_key_value_heads %d, head_dim %d, vocab_size %d)", f->path, name,
                      got, exp, h->cfg_path, c->dim, c->hidden_dim, c->n_heads, c->n_kv_heads, c->head_dim,
                      c->vocab_size);
    }
    return safetensors_read_f32(f, t, dst);
}

static int load_hf_tensors(llama_model *m, hf_ctx *h)
{
    const llama_config *c = &m->cfg;
    llama_params *p = &m->params;
    int64_t V = c->vocab_size, D = c->dim, F = c->hidden_dim, QD = llama_qdim(c), KD = llama_kvdim(c);
    int64_t S = QD + 2 * KD;
    safetensors_file *f;
    const safetensors_tensor *t;
    const char *prefix = "model.";
    DM_CALL(tsrc_find(&h->src, "model.embed_tokens.weight", &f, &t));
    if (!t) {
        DM_CALL(tsrc_find(&h->src, "embed_tokens.weight", &f, &t));
        if (t) prefix = "";
    }
    /* every tensor the files hold, and every name the index lists, must be known */
    for (size_t k = 0; k < h->src.n_files; k++)
        for (size_t i = 0; i < h->src.files[k].n; i++)
            DM_CALL(check_name(h->src.files[k].path, h->src.files[k].t[i].name, prefix, c->n_layers));
    for (size_t i = 0; i < h->src.n_map; i++) DM_CALL(check_name(h->src.where, h->src.map_name[i], prefix, c->n_layers));

    char name[512];
    snprintf(name, sizeof name, "%sembed_tokens.weight", prefix);
    DM_CALL(read_tensor(h, name, 2, V, D, p->emb));
    for (int l = 0; l < c->n_layers; l++) {
        float *qkv = p->wqkv + (size_t)l * S * D, *w13 = p->w13 + (size_t)l * 2 * F * D;
        struct { int kind; int nd; int64_t s0, s1; float *dst; } part[] = {
            {T_IN_NORM, 1, D, 0, p->attn_norm + (size_t)l * D},
            {T_Q, 2, QD, D, qkv},
            {T_K, 2, KD, D, qkv + QD * D},
            {T_V, 2, KD, D, qkv + (QD + KD) * D},
            {T_O, 2, D, QD, p->wo + (size_t)l * D * QD},
            {T_POST_NORM, 1, D, 0, p->ffn_norm + (size_t)l * D},
            {T_GATE, 2, F, D, w13},
            {T_UP, 2, F, D, w13 + F * D},
            {T_DOWN, 2, D, F, p->w2 + (size_t)l * D * F}};
        for (size_t i = 0; i < sizeof part / sizeof part[0]; i++) {
            snprintf(name, sizeof name, "%slayers.%d.%s", prefix, l, layer_names[part[i].kind]);
            DM_CALL(read_tensor(h, name, part[i].nd, part[i].s0, part[i].s1, part[i].dst));
        }
    }
    snprintf(name, sizeof name, "%snorm.weight", prefix);
    DM_CALL(read_tensor(h, name, 1, D, 0, p->norm));
    DM_CALL(tsrc_find(&h->src, "lm_head.weight", &f, &t));
    if (!c->tied) {
        if (!t) {
            DM_ERR(DM_EINPUT, "'%s': tensor 'lm_head.weight' is missing", h->src.where);
            DM_HINT("'%s' says tie_word_embeddings false (or leaves it at LlamaConfig's default, false)", h->cfg_path);
            return DM_EINPUT;
        }
        return read_tensor(h, "lm_head.weight", 2, V, D, p->head);
    }
    if (t) { /* a tied checkpoint may carry the head: it must be the embeddings */
        float *tmp = malloc((size_t)V * D * sizeof *tmp);
        if (!tmp) return DM_ERR(DM_ENOMEM, "out of memory");
        int rc = read_tensor(h, "lm_head.weight", 2, V, D, tmp);
        if (rc == DM_OK && memcmp(tmp, p->emb, (size_t)V * D * sizeof *tmp))
            rc = DM_ERR(DM_EINPUT, "'%s': tensor 'lm_head.weight' differs from %sembed_tokens.weight but '%s' says "
                        "tie_word_embeddings true", f->path, prefix, h->cfg_path);
        free(tmp);
        return rc;
    }
    return DM_OK;
}

int llama_load_hf(llama_model *m, const char *dir)
{
    llama_config cfg;
    memset(m, 0, sizeof *m);
    DM_CALL(llama_load_hf_config(dir, &cfg));
    hf_ctx h;
    memset(&h, 0, sizeof h);
    snprintf(h.cfg_path, sizeof h.cfg_path, "%s/config.json", dir);
    DM_CALL(tsrc_open(&h.src, dir));
    int rc = llama_init(m, &cfg);
    if (rc == DM_OK) {
        h.cfg = &m->cfg;
        rc = load_hf_tensors(m, &h);
    }
    tsrc_close(&h.src);
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        llama_free(m);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * llama2.c legacy .bin */

#define LLAMA2C_MAGIC 0x616b3432 /* "ak42": the versioned exports of llama2.c's export.py */

static int read_f32(FILE *f, float *dst, size_t n, const char *path, const char *what)
{
    if (fread(dst, sizeof(float), n, f) != n)
        return DM_ERR(DM_EIO, "'%s': short read of tensor '%s'", path, what);
    return DM_OK;
}

int llama_load_llama2c(llama_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return DM_ERR(DM_EIO, "cannot open '%s': %s", path, strerror(errno));
    int rc = DM_OK;
    float *tmp = NULL;
    struct stat st;
    int32_t hd7[7];
    if (fstat(fileno(f), &st) != 0) {
        rc = DM_ERR(DM_EIO, "cannot stat '%s': %s", path, strerror(errno));
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < sizeof hd7 || fread(hd7, sizeof hd7, 1, f) != 1) {
        rc = DM_ERR(DM_EINPUT, "'%s': file of %llu bytes is too short for the llama2.c header (7 int32)", path,
                    (unsigned long long)size);
        goto done;
    }
    if ((uint32_t)hd7[0] == LLAMA2C_MAGIC) {
        rc = DM_ERR(DM_EINPUT, "'%s' is a versioned llama2.c export (magic \"ak42\", version %d); only the legacy "
                    "format is read", path, hd7[1]);
        DM_HINT("re-export it with llama2.c's export.py --version 0");
        goto done;
    }
    llama_config cfg = {0};
    cfg.dim = hd7[0];
    cfg.hidden_dim = hd7[1];
    cfg.n_layers = hd7[2];
    cfg.n_heads = hd7[3];
    cfg.n_kv_heads = hd7[4];
    cfg.vocab_size = hd7[5] < 0 ? -hd7[5] : hd7[5];
    cfg.tied = hd7[5] > 0;
    cfg.max_seq = hd7[6];
    cfg.rope_theta = 10000.0f;
    cfg.norm_eps = 1e-5f;
    if (cfg.dim <= 0 || cfg.n_heads <= 0 || cfg.dim % cfg.n_heads) {
        rc = DM_ERR(DM_EINPUT, "'%s': header dim %d, n_heads %d: dim must be a positive multiple of n_heads", path,
                    cfg.dim, cfg.n_heads);
        DM_HINT("not a llama2.c checkpoint?");
        goto done;
    }
    cfg.head_dim = cfg.dim / cfg.n_heads;
    if ((rc = llama_config_check(&cfg, path)) != DM_OK) goto done;
    uint64_t D = (uint64_t)cfg.dim, F = (uint64_t)cfg.hidden_dim, L = (uint64_t)cfg.n_layers,
             V = (uint64_t)cfg.vocab_size, QD = (uint64_t)llama_qdim(&cfg), KD = (uint64_t)llama_kvdim(&cfg),
             hd = (uint64_t)cfg.head_dim, T = (uint64_t)cfg.max_seq;
    static const char *const names[] = {"token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo",
                                        "rms_ffn_weight", "w1", "w2", "w3", "rms_final_weight", "freq_cis_real",
                                        "freq_cis_imag", "wcls"};
    uint64_t count[] = {V * D, L * D, L * QD * D, L * KD * D, L * KD * D, L * D * QD, L * D,
                        L * F * D, L * D * F, L * F * D, D, T * hd / 2, T * hd / 2, cfg.tied ? 0 : V * D};
    uint64_t end = sizeof hd7;
    for (int i = 0; i < 14; i++) {
        uint64_t b = end;
        end += 4 * count[i];
        if (end > size) {
            rc = DM_ERR(DM_EINPUT, "'%s': tensor '%s' needs bytes [%llu, %llu) but the file has %llu bytes", path,
                        names[i], (unsigned long long)b, (unsigned long long)end, (unsigned long long)size);
            DM_HINT("the file is truncated, or its header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads "
                    "%d, vocab_size %d, seq_len %d) does not describe it", hd7[0], hd7[1], hd7[2], hd7[3], hd7[4],
                    hd7[5], hd7[6]);
            goto done;
        }
    }
    if (end != size) {
        rc = DM_ERR(DM_EINPUT, "'%s': %llu bytes follow the last tensor ('%s', ending at byte %llu)", path,
                    (unsigned long long)(size - end), cfg.tied ? "freq_cis_imag" : "wcls", (unsigned long long)end);
        DM_HINT("the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d (negative: "
                "untied classifier), seq_len %d) does not describe this file", hd7[0], hd7[1], hd7[2], hd7[3],
                hd7[4], hd7[5], hd7[6]);
        goto done;
    }
    if ((rc = llama_init(m, &cfg)) != DM_OK) goto done;
    llama_params *p = &m->params;
    uint64_t S = QD + 2 * KD, ntmp = QD * D > T * hd / 2 ? QD * D : T * hd / 2; /* KD <= QD */
    tmp = malloc((size_t)ntmp * sizeof *tmp);
    if (!tmp) { rc = DM_ERR(DM_ENOMEM, "out of memory"); goto done; }
#define RD(dst, n, what) do { if ((rc = read_f32(f, (dst), (size_t)(n), path, (what))) != DM_OK) goto done; } while (0)
    RD(p->emb, V * D, names[0]);
    for (uint64_t l = 0; l < L; l++) RD(p->attn_norm + l * D, D, names[1]);
    for (uint64_t l = 0; l < L; l++) { /* Meta's q rows -> HF's */
        RD(tmp, QD * D, names[2]);
        llama_permute_meta_to_hf(p->wqkv + l * S * D, tmp, cfg.n_heads, cfg.head_dim, cfg.dim);
    }
    for (uint64_t l = 0; l < L; l++) {
        RD(tmp, KD * D, names[3]);
        llama_permute_meta_to_hf(p->wqkv + l * S * D + QD * D, tmp, cfg.n_kv_heads, cfg.head_dim, cfg.dim);
    }
    for (uint64_t l = 0; l < L; l++) RD(p->wqkv + l * S * D + (QD + KD) * D, KD * D, names[4]);
    RD(p->wo, L * D * QD, names[5]);
    RD(p->ffn_norm, L * D, names[6]);
    for (uint64_t l = 0; l < L; l++) RD(p->w13 + l * 2 * F * D, F * D, names[7]);
    RD(p->w2, L * D * F, names[8]);
    for (uint64_t l = 0; l < L; l++) RD(p->w13 + l * 2 * F * D + F * D, F * D, names[9]);
    RD(p->norm, D, names[10]);
    RD(tmp, T * hd / 2, names[11]);
    RD(tmp, T * hd / 2, names[12]);
    if (!cfg.tied) RD(p->head, V * D, names[13]);
#undef RD
done:
    free(tmp);
    fclose(f);
    if (rc) {
        dm_error_trace(__FILE__, __LINE__);
        llama_free(m);
    }
    return rc;
}
