/* cmd_lm.c: `dynmm lm`: the frozen language model of the pipeline.
 *
 * With lm.checkpoint set, the Hugging Face-layout checkpoint is loaded and checked (every rank),
 * and its directory recorded. Otherwise a small GPT-2 is pretrained here on the catalogue's own text
 * and saved in the same layout (the embedded default):
 *   corpus    one document per item title, brand line and category path, and rationale sentences
 *             from explain.templates filled with catalogue values (lm.corpus selects the kinds);
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
 */
#include "../mpi/cli.h"
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

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LM_FORMAT "dynmm-lm"
#define LM_CKPT_FORMAT "dynmm-lm-checkpoint"

static const char USAGE[] =
    "usage: dynmm lm CONFIG.cfg [--set group.key=value ...]\n\n"
    "Provides the frozen language model. With lm.checkpoint = \"DIR\" (a Hugging Face GPT-2 directory:\n"
    "config.json, model.safetensors, vocab.json, merges.txt, e.g. a local copy of gpt2) it is loaded and\n"
    "checked. Otherwise a small GPT-2 (lm.layers, lm.heads, lm.width, lm.context) and its byte-level BPE\n"
    "tokenizer (lm.vocab) are pretrained on the dataset's own text (titles, brands, categories and\n"
    "rationale templates), data parallel over the ranks, and saved in the same layout to <run.dir>/lm/.\n"
    "Writes <run.dir>/lm.h5 with the model's location, shape and training curve.\n";

static const char *const lm_config_groups[] = {"lm", "explain.templates", NULL};

static volatile sig_atomic_t g_stop;
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

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

static int build_corpus(const dm_cfg *cfg, const dm_dataset *d, uint64_t seed, dm_strtab *train, dm_strtab *val)
{
    dm_strtab all = {0};
    dm_buf b = {0};
    int titles = want_kind(cfg, "titles"), brands = want_kind(cfg, "brands"), cats = want_kind(cfg, "categories"),
        tpls = want_kind(cfg, "templates");
    for (size_t i = 0; i < d->n_items; i++) {
        size_t l;
        const char *s;
        if (titles) {
            s = dm_strtab_get(&d->title, i, &l);
            DM_CALL(add_doc(&all, s, l));
        }
        if (brands) {
            s = dm_strtab_get(&d->brand, i, &l);
            if (l) {
                dm_buf_reset(&b);
                DM_CALL(dm_buf_printf(&b, "Brand: %.*s", (int)l, s));
                DM_CALL(add_doc(&all, b.data, b.len));
            }
        }
        if (cats) {
            s = dm_strtab_get(&d->category, i, &l);
            DM_CALL(add_doc(&all, s, l));
        }
    }
    if (tpls) {
        const char *t = dm_cfg_str(cfg, "explain.templates");
        size_t nt = 1;
        for (const char *p = t; *p; p++) nt += *p == '|';
        /* as many rationale sentences as items, spread over the templates */
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
            DM_CALL(fill_template(d, p, tl, &r, &b));
            DM_CALL(add_doc(&all, b.data, b.len));
        }
    }
    double vf = dm_cfg_float(cfg, "lm.val_frac");
    for (size_t k = 0; k < all.n; k++) {
        size_t l;
        const char *s = dm_strtab_get(&all, k, &l);
        dm_rng r;
        dm_rng_seed(&r, dm_rng_key(seed, 0x7A1, k));
        DM_CALL(dm_strtab_add(dm_rng_uniform(&r) < vf ? val : train, s, l));
    }
    dm_strtab_free(&all);
    dm_buf_free(&b);
    return DM_OK;
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

/* ---- checkpoints -------------------------------------------------------------------------- */

static int ckpt_write(par_ctx *ctx, const char *path, const gpt2_model *m, long step, const char *hash)
{
    h5file f;
    DM_CALL(par_agree(ctx, h5_create(ctx, path, 0, 1 << 20, &f)));
    int rc = h5_write_provenance(&f, LM_CKPT_FORMAT, 1, "lm", NULL, hash);
    if (!rc) rc = h5_write_all(&f, "/params", H5_F32, m->num_params, 0, m->param_slab);
    if (!rc) rc = h5_write_all(&f, "/adam_m", H5_F32, m->num_params, 0, m->adam_m);
    if (!rc) rc = h5_write_all(&f, "/adam_v", H5_F32, m->num_params, 0, m->adam_v);
    if (!rc) rc = h5_attr_i64(&f, "/", "step", step);
    rc = par_agree(ctx, rc);
    if (rc) {
        h5_discard(&f);
        return rc;
    }
    return h5_commit(&f);
}

static int ckpt_read(par_ctx *ctx, const char *path, gpt2_model *m, long *step, const char *hash, int *found)
{
    h5file f;
    DM_CALL(h5_open_checkpoint(ctx, path, LM_CKPT_FORMAT, hash, &f, found));
    if (!*found) return DM_OK;
    int64_t s = 0;
    int rc = h5_read_rows(&f, "/params", H5_F32, 0, m->num_params, m->param_slab);
    if (!rc) rc = h5_read_rows(&f, "/adam_m", H5_F32, 0, m->num_params, m->adam_m);
    if (!rc) rc = h5_read_rows(&f, "/adam_v", H5_F32, 0, m->num_params, m->adam_v);
    if (!rc) rc = h5_get_attr_i64(&f, "/", "step", &s);
    h5_close(&f);
    DM_CALL(par_agree(ctx, rc));
    *step = (long)s;
    dm_log("  resuming from %s at step %ld", path, *step);
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

static int stage_lm(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    double t0 = sr->t0;
    const char *hash = sr->hash, *dpath = stage_input(sr, "dataset.h5");
    char mdir[4096], ckpath[4096];
    DM_CALL(cli_run_path(ctx, cfg, "ckpt_lm.h5", ckpath, sizeof ckpath));
    const char *ck = dm_cfg_str(cfg, "lm.checkpoint");
    lm_model lm;
    memset(&lm, 0, sizeof lm);
    int rc = DM_OK;
    double *curve = NULL;
    size_t ncurve = 0;
    double val_first = NAN, val_last = NAN;
    long steps = 0;
    if (ck[0]) {
        snprintf(mdir, sizeof mdir, "%s", ck);
        rc = par_agree(ctx, lm_load(&lm, ck));
        if (!rc)
            dm_log("  lm: loaded %s: %d layers, %d heads, width %d, context %d, vocabulary %d (%zu parameters)", ck,
                   lm.model.cfg.num_layers, lm.model.cfg.num_heads, lm.model.cfg.channels, lm.model.cfg.max_seq_len,
                   lm.model.cfg.vocab_size, lm.model.num_params);
    } else {
        const char *sd = dm_cfg_str(cfg, "lm.save_dir");
        if (sd[0]) snprintf(mdir, sizeof mdir, "%s", sd);
        else rc = cli_run_path(ctx, cfg, "lm", mdir, sizeof mdir);
        dm_dataset d;
        memset(&d, 0, sizeof d);
        if (!rc) rc = ds_read(ctx, dpath, &d);
        uint64_t seed = dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x1A9, 0);
        dm_strtab train = {0}, val = {0};
        bpe_ids ts = {0}, vs = {0};
        if (!rc) rc = par_agree(ctx, build_corpus(cfg, &d, seed, &train, &val));
        double tt = dm_wtime();
        int V = (int)dm_cfg_int(cfg, "lm.vocab");
        static const char *const specials[] = {"<|endoftext|>", NULL};
        /* every rank learns the same tokenizer from the same documents (deterministic) */
        if (!rc) rc = par_agree(ctx, bpe_train(&lm.tok, &train, V - 257, specials));
        if (!rc) rc = par_agree(ctx, tokenize_docs(&lm.tok, &train, &ts));
        if (!rc) rc = par_agree(ctx, tokenize_docs(&lm.tok, &val, &vs));
        if (!rc)
            dm_log("  lm: corpus of %zu training and %zu validation documents; BPE vocabulary %d (%.1fs); %zu + %zu tokens",
                   train.n, val.n, lm.tok.n_vocab, dm_wtime() - tt, ts.n, vs.n);
        dm_dataset_free(&d);
        dm_strtab_free(&train);
        dm_strtab_free(&val);
        int T = (int)dm_cfg_int(cfg, "lm.seq_len"), ctxlen = (int)dm_cfg_int(cfg, "lm.context");
        if (!rc && T > ctxlen) {
            char w[256];
            rc = DM_ERR(DM_ECONFIG, "%s = %d exceeds lm.context = %d", dm_cfg_where(cfg, "lm.seq_len", w, sizeof w), T, ctxlen);
        }
        gpt2_config gc = gpt2_config_make((int)dm_cfg_int(cfg, "lm.layers"), (int)dm_cfg_int(cfg, "lm.heads"),
                                          (int)dm_cfg_int(cfg, "lm.width"), ctxlen, lm.tok.n_vocab);
        if (dm_cfg_int(cfg, "lm.inner") > 0) gc.inner = (int)dm_cfg_int(cfg, "lm.inner");
        if (!rc) rc = gpt2_config_check(&gc, "the lm.* settings");
        if (!rc) rc = gpt2_init(&lm.model, &gc);
        if (!rc) {
            gpt2_init_random(&lm.model, seed);
            rc = gpt2_train_init(&lm.model);
        }
        int G = (int)dm_cfg_int(cfg, "lm.batch");
        size_t blo, bhi;
        dm_shard_even((size_t)G, ctx->size, 0, &blo, &bhi);
        int Bmax = (int)(bhi - blo) > 0 ? (int)(bhi - blo) : 1;
        if (!rc) rc = gpt2_reserve(&lm.model, Bmax, T, GPT2_KEEP);
        rc = par_agree(ctx, rc);
        steps = (long)dm_cfg_int(cfg, "lm.steps");
        long step = 0;
        int found = 0;
        if (!rc && dm_cfg_bool(cfg, "run.resume")) rc = ckpt_read(ctx, ckpath, &lm.model, &step, hash, &found);
        int *in = malloc((size_t)Bmax * (size_t)T * sizeof *in), *tg = malloc((size_t)Bmax * (size_t)T * sizeof *tg);
        curve = calloc((size_t)(steps / (long)dm_cfg_int(cfg, "lm.log_every") + 2) * 5, sizeof *curve);
        if (!rc && (!in || !tg || !curve)) rc = DM_ERR(DM_ENOMEM, "out of memory");
        rc = par_agree(ctx, rc);
        gpt2_adamw opt = {(float)dm_cfg_float(cfg, "lm.lr"), (float)dm_cfg_float(cfg, "lm.beta1"), (float)dm_cfg_float(cfg, "lm.beta2"),
                          (float)dm_cfg_float(cfg, "lm.eps"), (float)dm_cfg_float(cfg, "lm.weight_decay")};
        double lr_max = opt.lr, lr_min = lr_max * dm_cfg_float(cfg, "lm.lr_min_frac"), clip = dm_cfg_float(cfg, "lm.grad_clip");
        long warm = (long)dm_cfg_int(cfg, "lm.warmup"), log_every = (long)dm_cfg_int(cfg, "lm.log_every");
        double flops_tok = 3.0 * (double)gpt2_num_flops_per_token(&gc, T); /* forward + backward */
        if (!rc) {
            dm_log("  lm: GPT-2 %d layers, %d heads, width %d, context %d, %zu parameters; %ld steps of %d x %d tokens (%d per rank)",
                   gc.num_layers, gc.num_heads, gc.channels, gc.max_seq_len, lm.model.num_params, steps, G, T, Bmax);
            rc = validate(ctx, &lm.model, &vs, T, Bmax, in, tg, &val_first);
            if (!rc) dm_log("  step %6ld  val loss %.4f  ppl %.1f", step, val_first, exp(val_first));
            val_last = val_first;
        }
        g_stop = 0;
        struct sigaction sa, o1, o2;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, &o1);
        sigaction(SIGUSR1, &sa, &o2);
        double tw = dm_wtime(), loss_acc = 0;
        long nacc = 0;
        for (; step < steps && !rc; step++) {
            size_t lo, hi;
            dm_shard_even((size_t)G, ctx->size, ctx->rank, &lo, &hi);
            int B = (int)(hi - lo);
            draw_windows(&ts, T, seed, (uint64_t)step, lo, B, in, tg);
            gpt2_zero_grad(&lm.model);
            float norm = (float)((double)G * T);
            if (B > 0) {
                rc = gpt2_forward(&lm.model, in, NULL, 0, tg, B, T, norm, GPT2_KEEP);
                if (!rc) rc = gpt2_backward(&lm.model, NULL, NULL, NULL, GPT2_WEIGHT_GRADS);
            }
            rc = par_agree(ctx, rc);
            if (rc) break;
            double lsum = B > 0 ? lm.model.loss : 0.0;
            rc = par_allreduce_sum_f32(ctx, lm.model.grad_slab, lm.model.num_params);
            if (rc) break;
            double gn = gpt2_grad_norm(&lm.model);
            if (clip > 0 && gn > clip) gpt2_grad_scale(&lm.model, (float)(clip / gn));
            double lr = step < warm ? lr_max * (double)(step + 1) / (double)warm
                                    : lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(M_PI * (double)(step - warm) / (double)(steps - warm > 0 ? steps - warm : 1)));
            opt.lr = (float)lr;
            gpt2_adamw_step(&lm.model, &opt, (int)step + 1);
            loss_acc += lsum;
            nacc++;
            if ((step + 1) % log_every == 0 || step + 1 == steps) {
                double la = loss_acc;
                par_allreduce_sum_f64(ctx, &la, 1);
                double dt = dm_wtime() - tw, tok = (double)nacc * G * T;
                double vl = NAN;
                rc = validate(ctx, &lm.model, &vs, T, Bmax, in, tg, &vl);
                if (rc) break;
                val_last = vl;
                dm_log("  step %6ld  loss %.4f  val loss %.4f  ppl %.1f  lr %.2e  |g| %.2f  %.1f ms/step  %.0f tok/s  %.2f GFLOP/s",
                       step + 1, la / (double)nacc, vl, exp(vl), lr, gn, 1e3 * dt / (double)nacc, tok / dt, flops_tok * tok / dt / 1e9);
                double *c = curve + ncurve * 5;
                c[0] = (double)(step + 1);
                c[1] = la / (double)nacc;
                c[2] = vl;
                c[3] = lr;
                c[4] = tok / dt;
                ncurve++;
                loss_acc = 0;
                nacc = 0;
                tw = dm_wtime();
                if ((step + 1) % (log_every * 10) == 0 && step + 1 < steps) rc = ckpt_write(ctx, ckpath, &lm.model, step + 1, hash);
            }
            if (!rc && (step + 1) % 16 == 0) {
                int64_t stop = g_stop;
                rc = par_allreduce_max_i64(ctx, &stop, 1);
                if (!rc && stop) {
                    rc = ckpt_write(ctx, ckpath, &lm.model, step + 1, hash);
                    if (!rc) {
                        rc = DM_ERR(DM_EIO, "interrupted by a signal at step %ld; checkpoint written", step + 1);
                        DM_HINT("rerun the same command (run.resume = true) to continue from it");
                    }
                }
            }
        }
        sigaction(SIGTERM, &o1, NULL);
        sigaction(SIGUSR1, &o2, NULL);
        free(in);
        free(tg);
        bpe_ids_free(&ts);
        bpe_ids_free(&vs);
        /* the saved model: rank 0 writes the directory (each file atomically) */
        int wrc = DM_OK;
        if (!rc && ctx->rank == 0) {
            wrc = mkdir_p(mdir);
            if (!wrc) wrc = lm_save(&lm, mdir);
        }
        if (!rc) rc = par_agree(ctx, wrc);
        if (!rc) dm_log("  lm: pretrained in %.1fs; validation perplexity %.1f -> %.1f; saved to %s/", dm_wtime() - t0, exp(val_first),
                        exp(val_last), mdir);
    }
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(sr, LM_FORMAT, 1, &f);
    if (!rc) rc = h5_attr_str(&f, "/", "model_dir", mdir);
    if (!rc) rc = h5_attr_i64(&f, "/", "layers", lm.model.cfg.num_layers);
    if (!rc) rc = h5_attr_i64(&f, "/", "heads", lm.model.cfg.num_heads);
    if (!rc) rc = h5_attr_i64(&f, "/", "width", lm.model.cfg.channels);
    if (!rc) rc = h5_attr_i64(&f, "/", "context", lm.model.cfg.max_seq_len);
    if (!rc) rc = h5_attr_i64(&f, "/", "vocab", lm.model.cfg.vocab_size);
    if (!rc) rc = h5_attr_i64(&f, "/", "parameters", (int64_t)lm.model.num_params);
    if (!rc) rc = h5_attr_str(&f, "/", "origin", ck[0] ? "loaded checkpoint" : "pretrained in-suite");
    if (!rc && ncurve) rc = h5_write_all(&f, "/curve", H5_F64, ncurve, 5, curve);
    if (!rc && ncurve) rc = h5_attr_str(&f, "/curve", "columns", "step, train loss, validation loss, lr, tokens/s");
    if (!rc && !ck[0]) rc = h5_attr_f64(&f, "/", "val_loss_initial", val_first);
    if (!rc && !ck[0]) rc = h5_attr_f64(&f, "/", "val_loss_final", val_last);
    rc = stage_output_finish(sr, &f, rc);
    if (!rc && ctx->rank == 0) unlink(ckpath);
    free(curve);
    lm_free(&lm);
    (void)steps;
    return rc;
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_lm_def = {
    .name = "lm",
    .output = "lm.h5",
    .inputs = {"dataset.h5", NULL},
    .groups = lm_config_groups,
    .uses = NULL,
    .check = NULL,
    .run = stage_lm,
    .prepare = NULL,
    .summary = "load a Hugging Face GPT-2 checkpoint, or pretrain the in-suite GPT-2 on the catalogue's text",
    .usage = USAGE,
};
