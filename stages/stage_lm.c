/* stage_lm.c: `dynmm lm`: the frozen language model of the pipeline.
 *
 * With lm.checkpoint set, the checkpoint is loaded and checked (every rank), and its location
 * recorded: a Hugging Face GPT-2 or Llama directory, or a llama2.c .bin file (lm.arch; src/lm/lm.h). Otherwise a small GPT-2 is pretrained here on the catalogue's own text
 * and saved in the same layout (the embedded default):
 *   corpus    one document per item title, brand line and category path, rationale sentences
 *             from explain.templates filled with catalogue values, and (histories) one per training
 *             interaction in the prompt's words, its user's history before it and its title
 *             (lm.corpus selects the kinds);
 *             lm.val_frac of the documents (by a keyed hash) are held out for validation
 *   tokenizer byte-level BPE learned on the training documents (lm.vocab entries), GPT-2's format
 *   training documents joined by <|endoftext|> into one token stream; every step draws lm.batch
 *             windows of lm.seq_len + 1 tokens at offsets keyed by (seed, step, window), splits them
 *             over the ranks, sums the gradient slab in one allreduce (the loss is divided by the
 *             global token count), clips the global norm, AdamW with warm-up and cosine decay
 *   logging   loss, ms/step, tokens/s and achieved FLOP/s every lm.log_every steps; validation
 *             loss and perplexity on the held-out documents
 *   resume    <run.dir>/ckpt_lm.h5 every few hundred steps and on SIGTERM/SIGUSR1
 * Output: <run.dir>/lm/ (config.json, model.safetensors, vocab.json, merges.txt; or lm.save_dir)
 * and <run.dir>/lm.h5 (format "dynmm-lm": where the model is, its shape, the training curve).
 *
 * The model (GPT-2, its BPE tokenizer, the Hugging Face layout) lives in src/lm; this file builds
 * the corpus, shares the steps out among the ranks, checkpoints and writes lm.h5. The stage body is
 * a table of contents (stage_lm): lm_loaded for a given checkpoint; otherwise lm_corpus, lm_setup,
 * lm_train (per step lm_step, lm_log_point, lm_interrupted) and lm_save_dir; then lm_write and
 * lm_ws_free. Everything lives in one workspace (lm_ws).
 */
#include "../mpi/cli.h"
#include "cands.h"
#include "ckpt.h"
#include "dataset_io.h"
#include "../mpi/h5io.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/data/text.h"
#include "../src/lm/lm.h"
#include "../src/prompt/llmrec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LM_FORMAT "dynmm-lm"
#define LM_CKPT_FORMAT "dynmm-lm-checkpoint"

static const char USAGE[] =
    "usage: dynmm lm CONFIG.cfg [--set group.key=value ...]\n\n"
    "Provides the frozen language model. With lm.checkpoint = \"DIR\" (a Hugging Face GPT-2 directory:\n"
    "config.json, model.safetensors, vocab.json, merges.txt, e.g. a local copy of gpt2; or a Llama one:\n"
    "config.json, model.safetensors or its shards, tokenizer.json; or a llama2.c .bin file; lm.arch)\n"
    "it is loaded and checked. Otherwise a small GPT-2 (lm.layers, lm.heads, lm.width, lm.context) and its byte-level BPE\n"
    "tokenizer (lm.vocab) are pretrained on the dataset's own text (titles, brands, categories and\n"
    "rationale templates), data parallel over the ranks, and saved in the same layout to <run.dir>/lm/.\n"
    "Writes <run.dir>/lm.h5 with the model's location, shape and training curve.\n";

static const char *const lm_config_groups[] = {"lm", "explain.templates", NULL};

/* ---- corpus ------------------------------------------------------------------------------- */

static int want_kind(const dm_cfg *cfg, const char *kind)
{
    for (size_t k = 0; k < dm_cfg_len(cfg, "lm.corpus"); k++)
        if (!strcmp(dm_cfg_str_at(cfg, "lm.corpus", k), kind)) return 1;
    return 0;
}

static int add_doc(dm_strtab *t, const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\n')) s++, n--;
    return n ? dm_strtab_add(t, s, n) : DM_OK;
}

/* a template with its slots filled from item i's neighbourhood in the catalogue */
static int fill_template(const dm_dataset *d, const char *tpl, size_t tl, dm_rng *r, dm_buf *out)
{
    dm_buf_reset(out);
    for (size_t k = 0; k < tl;) {
        if (tpl[k] == '{') {
            size_t e = k;
            while (e < tl && tpl[e] != '}') e++;
            size_t sl = e - k - 1;
            const char *slot = tpl + k + 1;
            size_t l = 0, i = dm_rng_below(r, d->n_items);
            const char *v = "";
            char num[32];
            if (sl == 4 && !memcmp(slot, "item", 4)) {
                for (int tries = 0; tries < 8 && !l; tries++) v = dm_strtab_get(&d->title, dm_rng_below(r, d->n_items), &l);
            } else if (sl == 5 && !memcmp(slot, "brand", 5)) {
                for (int tries = 0; tries < 8 && !l; tries++) v = dm_strtab_get(&d->brand, dm_rng_below(r, d->n_items), &l);
            } else if (sl == 8 && !memcmp(slot, "category", 8)) {
                /* the last level of the first path */
                const char *c = dm_strtab_get(&d->category, i, &l);
                const char *bar = memchr(c, '|', l);
                size_t pl = bar ? (size_t)(bar - c) : l;
                size_t st = pl;
                while (st >= 3 && memcmp(c + st - 3, " > ", 3)) st--;
                v = c + (st >= 3 ? st : 0);
                l = pl - (st >= 3 ? st : 0);
                while (l && v[l - 1] == ' ') l--;
            } else if (sl == 5 && !memcmp(slot, "price", 5)) {
                double p = d->price ? d->price[i] : NAN;
                if (isnan(p)) l = (size_t)snprintf(num, sizeof num, "affordable");
                else l = (size_t)snprintf(num, sizeof num, "$%.2f", p);
                v = num;
            } else if (sl == 1 && slot[0] == 'n') {
                l = (size_t)snprintf(num, sizeof num, "%d", 1 + (int)dm_rng_below(r, 5));
                v = num;
            }
            DM_CALL(dm_buf_add(out, v, l));
            k = e < tl ? e + 1 : e;
        } else
            DM_CALL(dm_buf_addc(out, tpl[k++]));
    }
    return DM_OK;
}

/* the documents of the catalogue's items: titles, brand lines, category paths (as lm.corpus asks) */
static int corpus_items(const dm_cfg *cfg, const dm_dataset *d, dm_strtab *all, dm_buf *b)
{
    int titles = want_kind(cfg, "titles"), brands = want_kind(cfg, "brands"), cats = want_kind(cfg, "categories");
    for (size_t i = 0; i < d->n_items; i++) {
        size_t l;
        const char *s;
        if (titles) {
            s = dm_strtab_get(&d->title, i, &l);
            DM_CALL(add_doc(all, s, l));
        }
        if (brands) {
            s = dm_strtab_get(&d->brand, i, &l);
            if (l) {
                dm_buf_reset(b);
                DM_CALL(dm_buf_printf(b, "Brand: %.*s", (int)l, s));
                DM_CALL(add_doc(all, b->data, b->len));
            }
        }
        if (cats) {
            s = dm_strtab_get(&d->category, i, &l);
            DM_CALL(add_doc(all, s, l));
        }
    }
    return DM_OK;
}

/* as many rationale sentences as items, spread over the templates of explain.templates */
static int corpus_templates(const dm_cfg *cfg, const dm_dataset *d, uint64_t seed, dm_strtab *all, dm_buf *b)
{
    const char *t = dm_cfg_str(cfg, "explain.templates");
    size_t nt = 1;
    for (const char *p = t; *p; p++) nt += *p == '|';
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, 0x7E3, 0));
    for (size_t i = 0; i < d->n_items; i++) {
        size_t k = dm_rng_below(&r, nt), q = 0;
        const char *p = t;
        while (q < k) {
            if (*p++ == '|') q++;
        }
        const char *e = strchr(p, '|');
        size_t tl = e ? (size_t)(e - p) : strlen(p);
        DM_CALL(fill_template(d, p, tl, &r, b));
        DM_CALL(add_doc(all, b->data, b->len));
    }
    return DM_OK;
}

/* every kind of lm.corpus is one this stage writes (check_lm: before the stage or a run starts) */
static int check_corpus(const dm_cfg *cfg)
{
    static const char *const kinds[] = {"titles", "brands", "categories", "templates", "histories"};
    for (size_t k = 0; k < dm_cfg_len(cfg, "lm.corpus"); k++) {
        const char *v = dm_cfg_str_at(cfg, "lm.corpus", k);
        size_t j = 0;
        while (j < sizeof kinds / sizeof *kinds && strcmp(kinds[j], v)) j++;
        if (j == sizeof kinds / sizeof *kinds) {
            char wh[256];
            DM_ERR(DM_ECONFIG, "%s: unknown corpus '%s'; expected titles, brands, categories, templates or histories",
                   dm_cfg_where(cfg, "lm.corpus", wh, sizeof wh), v);
            return DM_ECONFIG;
        }
    }
    return DM_OK;
}

/* the corpus of lm.corpus, split into training and held-out documents by a keyed hash */
static int build_corpus(const dm_cfg *cfg, const dm_dataset *d, uint64_t seed, dm_strtab *train, dm_strtab *val)
{
    dm_strtab all = {0};
    dm_buf b = {0};
    int rc = corpus_items(cfg, d, &all, &b);
    if (!rc && want_kind(cfg, "templates")) rc = corpus_templates(cfg, d, seed, &all, &b);
    if (!rc && want_kind(cfg, "histories")) {
        const int8_t *roles;
        rc = cands_split(cfg, d, &roles);
        if (!rc)
            rc = pm_history_docs(d, roles, dm_cfg_str(cfg, "prompt.prefix"), dm_cfg_str(cfg, "prompt.separator"), dm_cfg_str(cfg, "prompt.query"),
                                 (size_t)dm_cfg_int(cfg, "prompt.history"), &all);
    }
    double vf = dm_cfg_float(cfg, "lm.val_frac");
    for (size_t k = 0; k < all.n && !rc; k++) {
        size_t l;
        const char *s = dm_strtab_get(&all, k, &l);
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(seed, 0x7A1, k));
        rc = dm_strtab_add(dm_rng_uniform(&r) < vf ? val : train, s, l);
    }
    dm_strtab_free(&all);
    dm_buf_free(&b);
    return rc;
}

/* token stream of documents joined by <|endoftext|> (which also starts the stream) */
static int tokenize_docs(const bpe_tokenizer *t, const dm_strtab *docs, bpe_ids *out)
{
    DM_CALL(bpe_ids_push(out, t->eot));
    for (size_t k = 0; k < docs->n; k++) {
        size_t l;
        const char *s = dm_strtab_get(docs, k, &l);
        DM_CALL(bpe_encode(t, s, l, out));
        DM_CALL(bpe_ids_push(out, t->eot));
    }
    return DM_OK;
}

/* ---- checkpoints: <run.dir>/ckpt_lm.h5 every 10 log points and on SIGTERM/SIGUSR1 ---- */

static int lm_ckpt_write(const ckpt *c, const gpt2_model *m, long step)
{
    h5file f;
    DM_CALL(ckpt_create(c, &f));
    int rc = h5_write_all(&f, "/params", H5_F32, m->num_params, 0, m->param_slab);
    if (!rc) rc = h5_write_all(&f, "/adam_m", H5_F32, m->num_params, 0, m->adam_m);
    if (!rc) rc = h5_write_all(&f, "/adam_v", H5_F32, m->num_params, 0, m->adam_v);
    if (!rc) rc = h5_attr_i64(&f, "/", "step", step);
    return ckpt_commit(c, &f, rc);
}

/* the parameters, moments and step of the checkpoint, when run.resume is on and there is one made
 * with the same settings */
static int lm_ckpt_read(const ckpt *c, gpt2_model *m, long *step)
{
    h5file f;
    int found;
    DM_CALL(ckpt_open(c, &f, &found));
    if (!found) return DM_OK;
    int64_t s = 0;
    int rc = h5_read_rows(&f, "/params", H5_F32, 0, m->num_params, m->param_slab);
    if (!rc) rc = h5_read_rows(&f, "/adam_m", H5_F32, 0, m->num_params, m->adam_m);
    if (!rc) rc = h5_read_rows(&f, "/adam_v", H5_F32, 0, m->num_params, m->adam_v);
    if (!rc) rc = h5_get_attr_i64(&f, "/", "step", &s);
    h5_close(&f);
    DM_CALL(par_agree(c->ctx, rc));
    *step = (long)s;
    dm_log("  resuming from %s at step %ld", c->path, *step);
    return DM_OK;
}

/* ---- training ----------------------------------------------------------------------------- */

/* fills n windows of T + 1 tokens (inputs and shifted targets) keyed by (seed, step, window) */
static void draw_windows(const bpe_ids *stream, int T, uint64_t seed, uint64_t step, size_t g0, int n, int *in, int *tg)
{
    size_t span = stream->n > (size_t)T + 1 ? stream->n - (size_t)T - 1 : 1;
    for (int b = 0; b < n; b++) {
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(seed, step, g0 + (size_t)b));
        size_t o = dm_rng_below(&r, span);
        for (int t = 0; t < T; t++) {
            size_t p = o + (size_t)t;
            in[b * T + t] = p < stream->n ? stream->v[p] : 0;
            tg[b * T + t] = p + 1 < stream->n ? stream->v[p + 1] : -1;
        }
    }
}

/* mean validation loss per token over the held-out stream, windows split over ranks */
static int validate(par_ctx *ctx, gpt2_model *m, const bpe_ids *val, int T, int Bmax, int *in, int *tg, double *loss)
{
    size_t nwin = val->n > 1 ? (val->n - 1 + (size_t)T - 1) / (size_t)T : 0, lo, hi;
    if (nwin > 256) nwin = 256; /* a fixed, bounded sample: the first 256 windows */
    dm_shard_even(nwin, ctx->size, ctx->rank, &lo, &hi);
    double acc[2] = {0, 0};
    int rc = DM_OK;
    for (size_t w0 = lo; w0 < hi && !rc; w0 += (size_t)Bmax) {
        int n = (int)(hi - w0 < (size_t)Bmax ? hi - w0 : (size_t)Bmax);
        size_t cnt = 0;
        for (int b = 0; b < n; b++)
            for (int t = 0; t < T; t++) {
                size_t p = (w0 + (size_t)b) * (size_t)T + (size_t)t;
                in[b * T + t] = p < val->n ? val->v[p] : 0;
                tg[b * T + t] = p + 1 < val->n ? val->v[p + 1] : -1;
                cnt += tg[b * T + t] >= 0;
            }
        rc = gpt2_forward(m, in, NULL, 0, tg, n, T, 1.0f, 0);
        if (!rc) {
            acc[0] += m->loss;
            acc[1] += (double)cnt;
        }
    }
    DM_CALL(par_agree(ctx, rc));
    DM_CALL(par_allreduce_sum_f64(ctx, acc, 2));
    *loss = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    return DM_OK;
}

static int mkdir_p(const char *p)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *q = buf + 1;; q++)
        if (*q == '/' || !*q) {
            char c = *q;
            *q = 0;
            if (mkdir(buf, 0775) && errno != EEXIST) return DM_ERR(DM_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            *q = c;
            if (!c) break;
        }
    return DM_OK;
}

/* ---- the stage: a workspace and its steps ---- */

/* The stage's workspace: the model, the corpus streams, the training state and the curve. Shapes:
 * Bmax windows of T tokens per rank at most, ncurve log points. lm_ws_free releases everything. */
typedef struct {
    stage_run *sr;
    par_ctx *ctx;
    const dm_cfg *cfg;
    const char *hf;             /* lm.checkpoint (a checkpoint directory or .bin); "" to pretrain */
    char mdir[4096];            /* where the model is, or is saved */
    ckpt ck;                    /* <run.dir>/ckpt_lm.h5 */
    lm_model lm;
    uint64_t seed;
    /* ---- corpus (lm_corpus) ---- */
    bpe_ids ts, vs;             /* training and validation token streams */
    /* ---- training (lm_setup) ---- */
    gpt2_config gc;
    int T, G, Bmax;             /* window length, windows per step (global), per rank at most */
    long steps, step, warm, log_every;
    gpt2_adamw opt;
    double lr_max, lr_min, clip;
    double flops_tok;           /* forward + backward FLOPs per token */
    int *in, *tg;               /* (Bmax, T) */
    double lr, gn;              /* the last step's learning rate and gradient norm (before clipping) */
    double tw, loss_acc;        /* since the last log point: its time, the summed window losses */
    long nacc;                  /* and the steps */
    /* ---- results ---- */
    double *curve;              /* (ncurve, 5) step, train loss, validation loss, lr, tokens/s */
    size_t ncurve;
    double val_first, val_last; /* validation loss before and after training */
} lm_ws;

/* The checkpoint of lm.checkpoint as lm.arch, loaded and checked on every rank. */
static int lm_loaded(lm_ws *w)
{
    lm_model *lm = &w->lm;
    snprintf(w->mdir, sizeof w->mdir, "%s", w->hf);
    DM_CALL(par_agree(w->ctx, lm_load_as(lm, w->hf, dm_cfg_str(w->cfg, "lm.arch"))));
    dm_log("  lm: loaded %s: %d layers, %d heads, width %d, context %d, vocabulary %d (%zu parameters; %s, %d key/value heads)", w->hf,
           lm_layers(lm), lm_heads(lm), lm_width(lm), lm_context(lm), lm_vocab(lm), lm_num_params(lm), lm_arch_name(lm->arch),
           lm_kv_heads(lm));
    return DM_OK;
}

/* The corpus of the dataset's text, the BPE tokenizer learned on its training documents (every
 * rank learns the same one from the same documents: deterministic) and both token streams. */
static int lm_corpus(lm_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_cfg *cfg = w->cfg;
    dm_dataset d;
    memset(&d, 0, sizeof d);
    dm_strtab train = {0}, val = {0};
    int rc = ds_read(ctx, stage_input(w->sr, "dataset.h5"), &d);
    if (!rc) rc = par_agree(ctx, build_corpus(cfg, &d, w->seed, &train, &val));
    double tt = dm_wtime();
    static const char *const specials[] = {"<|endoftext|>", NULL};
    if (!rc) rc = par_agree(ctx, bpe_train(&w->lm.tok, &train, (int)dm_cfg_int(cfg, "lm.vocab") - 257, specials));
    if (!rc) rc = par_agree(ctx, tokenize_docs(&w->lm.tok, &train, &w->ts));
    if (!rc) rc = par_agree(ctx, tokenize_docs(&w->lm.tok, &val, &w->vs));
    if (!rc)
        dm_log("  lm: corpus of %zu training and %zu validation documents; BPE vocabulary %d (%.1fs); %zu + %zu tokens", train.n, val.n,
               w->lm.tok.n_vocab, dm_wtime() - tt, w->ts.n, w->vs.n);
    dm_dataset_free(&d);
    dm_strtab_free(&train);
    dm_strtab_free(&val);
    return rc;
}

/* The GPT-2 of lm.* with random weights (or those of its checkpoint, run.resume), the optimiser
 * and schedule, the window buffers and the curve. Agreed. */
static int lm_setup(lm_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_cfg *cfg = w->cfg;
    gpt2_model *m = &w->lm.model;
    int ctxlen = (int)dm_cfg_int(cfg, "lm.context"), rc = DM_OK;
    w->T = (int)dm_cfg_int(cfg, "lm.seq_len");
    if (w->T > ctxlen) {
        char wh[256];
        rc = DM_ERR(DM_ECONFIG, "%s = %d exceeds lm.context = %d", dm_cfg_where(cfg, "lm.seq_len", wh, sizeof wh), w->T, ctxlen);
    }
    w->gc = gpt2_config_make((int)dm_cfg_int(cfg, "lm.layers"), (int)dm_cfg_int(cfg, "lm.heads"), (int)dm_cfg_int(cfg, "lm.width"), ctxlen,
                             w->lm.tok.n_vocab);
    if (dm_cfg_int(cfg, "lm.inner") > 0) w->gc.inner = (int)dm_cfg_int(cfg, "lm.inner");
    if (!rc) rc = gpt2_config_check(&w->gc, "the lm.* settings");
    if (!rc) rc = gpt2_init(m, &w->gc);
    if (!rc) {
        gpt2_init_random(m, w->seed);
        rc = gpt2_train_init(m);
    }
    w->G = (int)dm_cfg_int(cfg, "lm.batch");
    size_t blo, bhi;
    dm_shard_even((size_t)w->G, ctx->size, 0, &blo, &bhi); /* rank 0 holds the most */
    w->Bmax = (int)(bhi - blo) > 0 ? (int)(bhi - blo) : 1;
    if (!rc) rc = gpt2_reserve(m, w->Bmax, w->T, GPT2_KEEP);
    rc = par_agree(ctx, rc);
    w->steps = (long)dm_cfg_int(cfg, "lm.steps");
    w->log_every = (long)dm_cfg_int(cfg, "lm.log_every");
    w->warm = (long)dm_cfg_int(cfg, "lm.warmup");
    if (!rc) rc = lm_ckpt_read(&w->ck, m, &w->step);
    w->in = malloc((size_t)w->Bmax * (size_t)w->T * sizeof *w->in);
    w->tg = malloc((size_t)w->Bmax * (size_t)w->T * sizeof *w->tg);
    w->curve = calloc((size_t)(w->steps / w->log_every + 2) * 5, sizeof *w->curve);
    if (!rc && (!w->in || !w->tg || !w->curve)) rc = DM_ERR(DM_ENOMEM, "out of memory");
    w->opt = (gpt2_adamw){(float)dm_cfg_float(cfg, "lm.lr"), (float)dm_cfg_float(cfg, "lm.beta1"), (float)dm_cfg_float(cfg, "lm.beta2"),
                          (float)dm_cfg_float(cfg, "lm.eps"), (float)dm_cfg_float(cfg, "lm.weight_decay")};
    w->lr_max = w->opt.lr, w->lr_min = w->lr_max * dm_cfg_float(cfg, "lm.lr_min_frac"), w->clip = dm_cfg_float(cfg, "lm.grad_clip");
    w->flops_tok = 3.0 * (double)gpt2_num_flops_per_token(&w->gc, w->T);
    return par_agree(ctx, rc);
}

/* The learning rate of step s: linear warm-up over lm.warmup steps, then cosine decay from lr_max
 * to lr_min at the last step. */
static double lm_lr(const lm_ws *w, long s)
{
    if (s < w->warm) return w->lr_max * (double)(s + 1) / (double)w->warm;
    double span = (double)(w->steps - w->warm > 0 ? w->steps - w->warm : 1);
    return w->lr_min + 0.5 * (w->lr_max - w->lr_min) * (1.0 + cos(M_PI * (double)(s - w->warm) / span));
}

/* One step: this rank's windows, one allreduce of the gradient slab, the clipped AdamW update. */
static int lm_step(lm_ws *w)
{
    gpt2_model *m = &w->lm.model;
    size_t lo, hi;
    dm_shard_even((size_t)w->G, w->ctx->size, w->ctx->rank, &lo, &hi);
    int B = (int)(hi - lo), rc = DM_OK;
    draw_windows(&w->ts, w->T, w->seed, (uint64_t)w->step, lo, B, w->in, w->tg);
    gpt2_zero_grad(m);
    if (B > 0) {
        rc = gpt2_forward(m, w->in, NULL, 0, w->tg, B, w->T, (float)((double)w->G * w->T), GPT2_KEEP);
        if (!rc) rc = gpt2_backward(m, NULL, NULL, NULL, GPT2_WEIGHT_GRADS);
    }
    DM_CALL(par_agree(w->ctx, rc));
    double lsum = B > 0 ? m->loss : 0.0;
    DM_CALL(par_allreduce_sum_f32(w->ctx, m->grad_slab, m->num_params));
    w->gn = gpt2_grad_norm(m);
    if (w->clip > 0 && w->gn > w->clip) gpt2_grad_scale(m, (float)(w->clip / w->gn));
    w->lr = lm_lr(w, w->step);
    w->opt.lr = (float)w->lr;
    gpt2_adamw_step(m, &w->opt, (int)w->step + 1);
    w->loss_acc += lsum;
    w->nacc++;
    return DM_OK;
}

/* After step w->step: the mean training loss since the last point, the validation loss, the log
 * line and the curve row; a checkpoint every 10 points (but the last). */
static int lm_log_point(lm_ws *w)
{
    double la = w->loss_acc;
    par_allreduce_sum_f64(w->ctx, &la, 1);
    double dt = dm_wtime() - w->tw, tok = (double)w->nacc * w->G * w->T, vl = NAN;
    DM_CALL(validate(w->ctx, &w->lm.model, &w->vs, w->T, w->Bmax, w->in, w->tg, &vl));
    long s = w->step + 1;
    w->val_last = vl;
    dm_log("  step %6ld  loss %.4f  val loss %.4f  ppl %.1f  lr %.2e  |g| %.2f  %.1f ms/step  %.0f tok/s  %.2f GFLOP/s", s,
           la / (double)w->nacc, vl, exp(vl), w->lr, w->gn, 1e3 * dt / (double)w->nacc, tok / dt, w->flops_tok * tok / dt / 1e9);
    double *c = w->curve + w->ncurve * 5;
    c[0] = (double)s;
    c[1] = la / (double)w->nacc;
    c[2] = vl;
    c[3] = w->lr;
    c[4] = tok / dt;
    w->ncurve++;
    w->loss_acc = 0;
    w->nacc = 0;
    w->tw = dm_wtime();
    if (s % (w->log_every * 10) == 0 && s < w->steps) return lm_ckpt_write(&w->ck, &w->lm.model, s);
    return DM_OK;
}

/* On SIGTERM/SIGUSR1 at any rank: the checkpoint after step w->step, and an error. Collective. */
static int lm_interrupted(lm_ws *w)
{
    int stop;
    DM_CALL(ckpt_stop_requested(w->ctx, &stop));
    if (!stop) return DM_OK;
    DM_CALL(lm_ckpt_write(&w->ck, &w->lm.model, w->step + 1));
    return ckpt_interrupted(&w->ck, "lm", "at step %ld", w->step + 1);
}

/* Pretraining from w->step to lm.steps, with the validation loss before it. */
static int lm_train(lm_ws *w)
{
    const gpt2_config *gc = &w->gc;
    dm_log("  lm: GPT-2 %d layers, %d heads, width %d, context %d, %zu parameters; %ld steps of %d x %d tokens (%d per rank)", gc->num_layers,
           gc->num_heads, gc->channels, gc->max_seq_len, w->lm.model.num_params, w->steps, w->G, w->T, w->Bmax);
    int rc = validate(w->ctx, &w->lm.model, &w->vs, w->T, w->Bmax, w->in, w->tg, &w->val_first);
    if (!rc) dm_log("  step %6ld  val loss %.4f  ppl %.1f", w->step, w->val_first, exp(w->val_first));
    w->val_last = w->val_first;
    ckpt_signals_install();
    w->tw = dm_wtime(), w->loss_acc = 0, w->nacc = 0;
    for (; w->step < w->steps && !rc; w->step++) {
        rc = lm_step(w);
        if (!rc && ((w->step + 1) % w->log_every == 0 || w->step + 1 == w->steps)) rc = lm_log_point(w);
        if (!rc && (w->step + 1) % 16 == 0) rc = lm_interrupted(w);
    }
    ckpt_signals_restore();
    return rc;
}

/* The pretrained model in the Hugging Face layout: rank 0 writes the directory (each file
 * atomically). */
static int lm_save_dir(lm_ws *w)
{
    int rc = DM_OK;
    if (w->ctx->rank == 0) {
        rc = mkdir_p(w->mdir);
        if (!rc) rc = lm_save(&w->lm, w->mdir);
    }
    DM_CALL(par_agree(w->ctx, rc));
    dm_log("  lm: pretrained in %.1fs; validation perplexity %.1f -> %.1f; saved to %s/", dm_wtime() - w->sr->t0, exp(w->val_first),
           exp(w->val_last), w->mdir);
    return DM_OK;
}

/* The in-suite GPT-2: corpus, model, training, saved. */
static int lm_pretrain(lm_ws *w)
{
    const char *sd = dm_cfg_str(w->cfg, "lm.save_dir");
    if (sd[0]) snprintf(w->mdir, sizeof w->mdir, "%s", sd);
    else DM_CALL(cli_run_path(w->ctx, w->cfg, "lm", w->mdir, sizeof w->mdir));
    w->seed = dm_rng_key((uint64_t)dm_cfg_int(w->cfg, "run.seed"), 0x1A9, 0);
    DM_CALL(lm_corpus(w));
    DM_CALL(lm_setup(w));
    DM_CALL(lm_train(w));
    return lm_save_dir(w);
}

/* lm.h5 (with rc == DM_OK on every rank): where the model is, its shape, the curve; committed, or
 * discarded after a failure. The checkpoint is removed once it is committed. */
static int lm_write(lm_ws *w, int rc)
{
    const lm_model *lm = &w->lm;
    int trained = !w->hf[0];
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(w->sr, LM_FORMAT, 1, &f);
    if (!rc) rc = h5_attr_str(&f, "/", "model_dir", w->mdir);
    if (!rc) rc = h5_attr_str(&f, "/", "arch", lm_arch_name(lm->arch));
    if (!rc) rc = h5_attr_i64(&f, "/", "layers", lm_layers(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "heads", lm_heads(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "kv_heads", lm_kv_heads(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "width", lm_width(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "context", lm_context(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "vocab", lm_vocab(lm));
    if (!rc) rc = h5_attr_i64(&f, "/", "parameters", (int64_t)lm_num_params(lm));
    if (!rc) rc = h5_attr_str(&f, "/", "origin", trained ? "pretrained in-suite" : "loaded checkpoint");
    if (!rc && w->ncurve) rc = h5_write_all(&f, "/curve", H5_F64, w->ncurve, 5, w->curve);
    if (!rc && w->ncurve) rc = h5_attr_str(&f, "/curve", "columns", "step, train loss, validation loss, lr, tokens/s");
    if (!rc && trained) rc = h5_attr_f64(&f, "/", "val_loss_initial", w->val_first);
    if (!rc && trained) rc = h5_attr_f64(&f, "/", "val_loss_final", w->val_last);
    rc = stage_output_finish(w->sr, &f, rc);
    if (!rc) ckpt_remove(&w->ck);
    return rc;
}

static void lm_ws_free(lm_ws *w)
{
    DM_FREE_ALL(w->in, w->tg, w->curve);
    bpe_ids_free(&w->ts);
    bpe_ids_free(&w->vs);
    lm_free(&w->lm);
}

static int stage_lm(stage_run *sr)
{
    lm_ws w;
    memset(&w, 0, sizeof w);
    w.sr = sr, w.ctx = sr->ctx, w.cfg = sr->cfg;
    w.val_first = w.val_last = NAN;
    w.hf = dm_cfg_str(w.cfg, "lm.checkpoint");
    DM_CALL(ckpt_init(&w.ck, w.ctx, w.cfg, "ckpt_lm.h5", LM_CKPT_FORMAT, "lm", sr->hash));
    int rc = w.hf[0] ? lm_loaded(&w) : lm_pretrain(&w); /* a given checkpoint, or corpus, setup, train, save */
    rc = lm_write(&w, rc);                               /* lm.h5 */
    lm_ws_free(&w);
    return rc;
}

/* ---- the stage's contract (stage.h) ---- */

/* lm.corpus names kinds this stage writes (checked before a run's first stage); lm.arch = "llama"
   needs a checkpoint: the in-suite model is a GPT-2. */
static int check_lm(const dm_cfg *cfg)
{
    DM_CALL(check_corpus(cfg));
    if (strcmp(dm_cfg_str(cfg, "lm.arch"), "llama") || dm_cfg_str(cfg, "lm.checkpoint")[0]) return DM_OK;
    char wh[256];
    DM_ERR(DM_ECONFIG, "%s = \"llama\" but lm.checkpoint is empty: the in-suite model pretrained without a checkpoint is a GPT-2",
           dm_cfg_where(cfg, "lm.arch", wh, sizeof wh));
    DM_HINT("set lm.checkpoint to a Llama checkpoint (a Hugging Face directory or a llama2.c .bin), or lm.arch = \"auto\"");
    return DM_ECONFIG;
}

/* the users' histories (lm.corpus "histories") are read in the split's training roles and written in
   the prompt's words: only then do those settings make the LM */
static const char *const *lm_groups_if(const dm_cfg *cfg)
{
    static const char *const hist[] = {"split.protocol", "prompt.prefix", "prompt.separator", "prompt.query", "prompt.history", NULL};
    return want_kind(cfg, "histories") ? hist : NULL;
}

const stage_def stage_lm_def = {
    .name = "lm",
    .output = "lm.h5",
    .inputs = {"dataset.h5", NULL},
    .groups = lm_config_groups,
    .groups_if = lm_groups_if,
    .check = check_lm,
    .run = stage_lm,
    .summary = "load a GPT-2 or Llama checkpoint, or pretrain the in-suite GPT-2 on the catalogue's text",
    .usage = USAGE,
};
