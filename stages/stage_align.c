/* stage_align.c: `dynmm align`: the multimodal base aligner (DESIGN.md idea 2) into align.h5.
 *
 * Inputs (align_inputs.h): e_cf and user states from cf.h5, text (imported or LSA), visual and
 * audio features with their presence masks. Training examples are one per user: the SASRec state
 * of the user's training history without its last item, and that last item as the positive, with
 * align.negatives negatives the user never touched. Each step's global batch of examples is split
 * over the ranks; a rank's items are its examples' positives and negatives; the modality latents
 * of every rank's items are all-gathered so InfoNCE's negatives are the global batch; the bank's
 * gradient is summed back to the owning ranks and the parameter gradient allreduced (one fused
 * buffer). The epoch with the best validation score (full ranking, align z_base against h from the
 * SASRec state) is kept.
 *
 * align.h5 (format "dynmm-align" v1): /align/weights/<tensor>, the inputs it was trained on
 * (/align/inputs/<modality>/{x,present}, so stress tests can rebuild z_base with modalities
 * dropped or perturbed), /align/z_base (items, d), /align/h_valid and /align/h_test (users, d),
 * /align/curve; the model's shape as attributes of /align (align_io.h: the model's part of the
 * format, and align_load, the reader of every later stage).
 *
 * The stage body is a table of contents (stage_align): align_load_inputs, align_setup,
 * align_examples, align_train (per epoch align_shuffle, align_step with align_sample, then
 * align_validate), align_final_latents, align_write. Every buffer lives in one workspace
 * (align_ws); the step's batch buffers (align_bufs) are allocated once per training.
 */
#include "align_inputs.h"
#include "align_io.h"
#include "cands.h"
#include "cf_sasrec.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "models.h"
#include "stage.h"
#include "trainer.h"

#include "../src/align/align.h"
#include "../src/core/err.h"
#include "../src/core/sort.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: dynmm align CONFIG.cfg [--set group.key=value ...]\n\n"
    "Trains the multimodal base aligner on <run.dir>/dataset.h5 and <run.dir>/cf.h5: per-modality\n"
    "encoders (cf, text, visual, audio; align.modalities), one shared projector into align.dim, InfoNCE\n"
    "over every pair of modalities an item has (negatives gathered from all ranks), reconstruction,\n"
    "CF-text matching and a recommendation loss. Text comes from imported features, or from LSA of the\n"
    "item titles, brands and categories (lsa.*, ScaLAPACK). Writes <run.dir>/align.h5 with z_base\n"
    "(items) and h_base (users).\n";

static const char *const align_config_groups[] = {"align",           "lsa",       "modal.pca_dim",  "modal.pca_above", "modal.pca_whiten",
                                                   "split.protocol", "eval.seed", "eval.pop_power", NULL};

typedef struct {
    const float *z;  /* (n_items, d) */
    const float *h;  /* (n_users, d) by split: h[split] */
    const float *hs[3];
    size_t d, n_items;
} latent_model;

static int latent_score(void *mv, const ev_split *s, const size_t *users, size_t B, float *scores)
{
    latent_model *m = mv;
    const float *h = m->hs[s->split];
    float *u = malloc(B * m->d * sizeof *u + 4);
    if (!u) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) memcpy(u + b * m->d, h + users[b] * m->d, m->d * sizeof *u);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)m->n_items, (int)m->d, 1.0f, u, (int)m->d, m->z,
                (int)m->d, 0.0f, scores, (int)m->n_items);
    free(u);
    return DM_OK;
}

/* latents of all items and of the users of one split under the model's current weights */
static int latents(align_model *m, align_acts *ai, const ai_inputs *in, const uint8_t *pres, size_t n_items,
                   const float *state, size_t n_users, float *z, float *h)
{
    const float *x[ALIGN_K];
    for (int k = 0; k < ALIGN_K; k++) x[k] = m->cfg.dim_in[k] ? in->x[k] : NULL;
    DM_CALL(align_item_latents(m, ai, x, NULL, pres, (int)n_items, z, NULL));
    if (h) DM_CALL(align_user_latents(m, ai, state, (int)n_users, h));
    return DM_OK;
}

/* ---- the stage body: a workspace and the steps over it ---- */

/* Everything the steps of stage_align share. Shapes: n_users, n_items, n_inter of the dataset;
 * C the SASRec width; d = align.dim; nex the examples; G = align.batch examples per step, nn =
 * align.negatives, Rmax a rank's most examples per step. */
typedef struct {
    stage_run *sr;
    par_ctx *ctx;
    const dm_cfg *cfg;
    /* align_load_inputs */
    dm_dataset d;
    int have_d;
    const int8_t *roles;        /* (n_inter) split roles */
    float *e_cf;                /* (n_items, C) SASRec item embeddings */
    float *st_valid, *st_test;  /* (n_users, C) SASRec states before the valid / test item */
    size_t C;
    ai_inputs in;
    /* align_setup */
    int dim_in[ALIGN_K];        /* feature width of each modality used, 0 = not used */
    align_config ac;            /* training: a rank's share of the global batch, the bank of all */
    int G, nn, Rmax;
    uint64_t seed;
    align_model m;
    align_acts a, ai;           /* training; inference in batches of align.eval_batch */
    uint8_t *pres;              /* (n_items, ALIGN_K) presence of the modalities used */
    float *zb;                  /* (n_items, d) z_base */
    float *hv, *ht;             /* (n_users, d) user latents from the valid / test state */
    float *best;                /* (nparams) the weights of the best epoch */
    /* align_examples: one per user with two or more training items */
    size_t nex;
    size_t *ex_u;               /* (nex) user */
    int32_t *ex_p;              /* (nex) positive: the user's last training item */
    int64_t *soff;              /* (n_users + 1) offsets into sset */
    int32_t *sset;              /* (n_inter) each user's training items, sorted (never negatives) */
    float *r_ex;                /* (nex, C) SASRec state of the training items but the last */
    /* align_train */
    long epochs, best_epoch;    /* best_epoch 0: none validated */
    double best_v, t_train;     /* best valid ndcg@10 (align.select_protocol); training seconds */
    dm_dataset dv;              /* a shallow copy of d holding this rank's validation candidates */
    double *curve;              /* (epochs, 8) epoch, loss, nce, recon, match, rank, valid ndcg@10, seconds */
} align_ws;

/* One step's batch on this rank: R examples, B = R (1 + nn) items (each example's positive, then
 * its negatives); buffers sized for the largest. */
typedef struct {
    size_t *perm;               /* (nex) the epoch's order of the examples */
    int64_t *items;             /* (B) item ids */
    uint8_t *bp;                /* (B, ALIGN_K) their presence */
    int32_t *exu, *exp_, *exn;  /* (R), (R), (R, nn) user, positive and negative rows of each example */
    float *rr;                  /* (R, C) the examples' user states */
    float *dbank;               /* (G (1 + nn), ALIGN_K, d) gradient of the negative bank */
    uint8_t *nflag;             /* (G (1 + nn)) 1 = bank row is a positive */
    int nce_pos;                /* align.nce_rows = "positives": InfoNCE over positive rows only */
} align_bufs;

/* The dataset, the SASRec embeddings and states of cf.h5, the aligner's inputs (align_inputs.h). */
static int align_load_inputs(align_ws *w)
{
    par_ctx *ctx = w->ctx;
    const char *cpath = stage_input(w->sr, "cf.h5");
    DM_CALL(ds_read(ctx, stage_input(w->sr, "dataset.h5"), &w->d));
    w->have_d = 1;
    int rc = par_agree(ctx, cands_split(w->cfg, &w->d, &w->roles));
    size_t r, c2;
    if (!rc) {
        rc = h5_read_file_f32(ctx, cpath, "/sasrec/e_cf", &w->e_cf, &r, &w->C);
        if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_valid", &w->st_valid, &r, &c2);
        if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_test", &w->st_test, &r, &c2);
        if (rc) DM_HINT("rerun train-cf with sasrec in cf.models");
    }
    if (!rc) rc = ai_build(ctx, w->cfg, &w->d, w->roles, w->e_cf, w->C, &w->in);
    return rc;
}

/* The aligner's configuration from align.* (align_config_from: the modalities listed in
 * align.modalities with the widths of their features, the user states' width): w->ac sized for
 * training (a rank's share of the global batch of G examples, the bank of all of them), *ic for
 * inference in batches of align.eval_batch. */
static int align_configs(align_ws *w, align_config *ic)
{
    const dm_cfg *cfg = w->cfg;
    align_config *ac = &w->ac;
    int avail[ALIGN_K];
    for (int k = 0; k < ALIGN_K; k++) avail[k] = (int)w->in.dim[k];
    DM_CALL(align_config_from(cfg, avail, (int)w->C, ac));
    memcpy(w->dim_in, ac->dim_in, sizeof w->dim_in);
    w->G = (int)dm_cfg_int(cfg, "align.batch");
    w->nn = ac->n_neg;
    size_t glo, ghi;
    dm_shard_even((size_t)w->G, w->ctx->size, 0, &glo, &ghi);
    w->Rmax = (int)(ghi - glo);
    ac->max_rank = w->Rmax;
    ac->max_users = w->Rmax;
    ac->max_batch = w->Rmax * (1 + w->nn);
    ac->max_bank = w->G * (1 + w->nn);
    long long sd = dm_cfg_int(cfg, "align.seed");
    w->seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xA11, 0);
    *ic = *ac;
    int eb = (int)dm_cfg_int(cfg, "align.eval_batch");
    ic->max_batch = eb;
    ic->max_users = eb;
    ic->max_rank = 1;
    ic->max_bank = eb;
    return DM_OK;
}

/* The model (configuration checked, weights seeded, activations), the items' presence of the
 * modalities used and the latent buffers. Agreed. */
static int align_setup(align_ws *w)
{
    par_ctx *ctx = w->ctx;
    size_t nu = w->d.n_users, ni = w->d.n_items;
    align_config ic;
    int rc = align_configs(w, &ic);
    if (!rc) rc = align_init(&w->m, &w->ac);
    if (!rc) rc = align_acts_init(&w->a, &w->ac);
    if (!rc) rc = align_acts_init(&w->ai, &ic);
    rc = par_agree(ctx, rc);
    if (rc) return rc;
    align_init_weights(&w->m, w->seed);
    size_t dd = (size_t)w->ac.d;
    w->pres = calloc(ni * ALIGN_K + 1, 1);
    w->zb = malloc(ni * dd * sizeof *w->zb + 4);
    w->hv = malloc(nu * dd * sizeof *w->hv + 4);
    w->ht = malloc(nu * dd * sizeof *w->ht + 4);
    w->best = malloc(w->m.nparams * sizeof *w->best + 4);
    if (!w->pres || !w->zb || !w->hv || !w->ht || !w->best) rc = DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ni; i++)
        for (int k = 0; k < ALIGN_K; k++)
            w->pres[i * ALIGN_K + (size_t)k] = w->dim_in[k] && w->in.present[k] ? w->in.present[k][i] : 0;
    return par_agree(ctx, rc);
}

/* The SASRec states of the examples' prefixes (training items but the last), 256 users at a time;
 * every rank computes all (cheap), so no exchange is needed. */
static int align_prefix_states(align_ws *w, sasrec *sm, sasrec_acts *sa)
{
    const dm_dataset *d = &w->d;
    int T = sm->cfg.T;
    int32_t *seq = calloc((size_t)256 * (size_t)T, sizeof *seq), *tmp = malloc((d->n_inter + 1) * sizeof *tmp);
    int rc = seq && tmp ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t e0 = 0; e0 < w->nex && !rc; e0 += 256) {
        int nb = (int)(w->nex - e0 < 256 ? w->nex - e0 : 256);
        memset(seq, 0, (size_t)nb * (size_t)T * sizeof *seq);
        for (int b = 0; b < nb; b++) {
            size_t u = w->ex_u[e0 + (size_t)b], n = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (w->roles[j] == DM_TRAIN) tmp[n++] = d->item[j];
            n--; /* drop the positive */
            size_t mm = n < (size_t)T ? n : (size_t)T;
            for (size_t j = 0; j < mm; j++) seq[(size_t)b * (size_t)T + (size_t)T - mm + j] = tmp[n - mm + j] + 1;
        }
        rc = cf_sasrec_states(sm, sa, seq, nb, w->r_ex + e0 * w->C);
    }
    free(tmp);
    free(seq);
    return rc;
}

/* The training examples: per user with two or more training items, the SASRec state of its
 * training items but the last, and that last item as the positive; each user's training items,
 * sorted, for drawing negatives. Agreed. */
static int align_examples(align_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_dataset *d = &w->d;
    size_t nu = d->n_users;
    w->ex_u = malloc((nu + 1) * sizeof *w->ex_u);
    w->ex_p = malloc((nu + 1) * sizeof *w->ex_p);
    w->soff = calloc(nu + 1, sizeof *w->soff);
    w->sset = malloc((d->n_inter + 1) * sizeof *w->sset);
    w->r_ex = malloc((nu + 1) * w->C * sizeof *w->r_ex);
    int rc = DM_OK;
    if (!w->ex_u || !w->ex_p || !w->soff || !w->sset || !w->r_ex) rc = DM_ERR(DM_ENOMEM, "out of memory");
    DM_CALL(par_agree(ctx, rc));
    sasrec sm;
    sasrec_acts sa;
    memset(&sm, 0, sizeof sm);
    memset(&sa, 0, sizeof sa);
    rc = cf_sasrec_load(ctx, stage_input(w->sr, "cf.h5"), d->n_items, 256, &sm, &sa);
    if (!rc) {
        size_t q = 0;
        for (size_t u = 0; u < nu; u++) {
            size_t s0 = q;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (w->roles[j] == DM_TRAIN) w->sset[q++] = d->item[j];
            w->soff[u + 1] = (int64_t)q;
            if (q - s0 >= 2) {
                w->ex_u[w->nex] = u;
                w->ex_p[w->nex] = w->sset[q - 1];
                w->nex++;
            }
            qsort(w->sset + s0, q - s0, sizeof *w->sset, dm_cmp_i32);
        }
        rc = align_prefix_states(w, &sm, &sa);
    }
    sasrec_acts_free(&sa);
    sasrec_free(&sm);
    return par_agree(ctx, rc);
}

static void align_bufs_free(align_bufs *b)
{
    void *own[] = {b->perm, b->items, b->bp, b->exu, b->exp_, b->exn, b->rr, b->dbank, b->nflag};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++) free(own[k]);
    memset(b, 0, sizeof *b);
}

static int align_bufs_init(const align_ws *w, align_bufs *b)
{
    memset(b, 0, sizeof *b);
    size_t B_max = (size_t)w->ac.max_batch, bank_max = (size_t)w->ac.max_bank, Rmax = (size_t)w->Rmax;
    b->perm = malloc((w->nex + 1) * sizeof *b->perm);
    b->items = malloc(B_max * sizeof *b->items + 8);
    b->bp = malloc(B_max * ALIGN_K + 8);
    b->exu = malloc(Rmax * sizeof *b->exu + 8);
    b->exp_ = malloc(Rmax * sizeof *b->exp_ + 8);
    b->exn = malloc(Rmax * (size_t)w->nn * sizeof *b->exn + 8);
    b->rr = malloc(Rmax * w->C * sizeof *b->rr + 8);
    b->dbank = malloc(bank_max * ALIGN_K * (size_t)w->ac.d * sizeof *b->dbank + 8);
    b->nflag = malloc(bank_max + 8);
    b->nce_pos = !strcmp(dm_cfg_str(w->cfg, "align.nce_rows"), "positives");
    if (!b->perm || !b->items || !b->bp || !b->exu || !b->exp_ || !b->exn || !b->rr || !b->dbank || !b->nflag)
        return DM_ERR(DM_ENOMEM, "out of memory");
    /* align.nce_rows = positives: every rank's rows are its examples' (positive, negatives...)
     * groups, so bank row j is a positive exactly when j % (1 + nn) == 0 */
    for (size_t j = 0; j < bank_max; j++) b->nflag[j] = j % (size_t)(1 + w->nn) == 0;
    return DM_OK;
}

/* The epoch's order of the examples: a shuffle keyed by (seed, epoch). */
static void align_shuffle(const align_ws *w, size_t *perm, long ep)
{
    for (size_t k = 0; k < w->nex; k++) perm[k] = k;
    dm_rng pr;
    dm_rng_seed(&pr, dm_rng_key(w->seed ^ 0x5EED, 0xE90C, (uint64_t)ep));
    for (size_t k = w->nex; k > 1; k--) {
        size_t j = dm_rng_below(&pr, k), x = perm[k - 1];
        perm[k - 1] = perm[j];
        perm[j] = x;
    }
}

/* This rank's R examples of the step, from position g0 of the epoch's order: each example's
 * positive and nn negatives the user never took in training (keyed by seed, step and position, so
 * independent of the rank count), their presence and the user states. */
static void align_sample(const align_ws *w, align_bufs *b, size_t g0, int R, long step)
{
    int nn = w->nn;
    size_t C = w->C, ni = w->d.n_items;
    for (int e = 0; e < R; e++) {
        size_t gi = g0 + (size_t)e, x = b->perm[gi], u = w->ex_u[x];
        dm_rng rn;
        dm_rng_seed(&rn, dm_rng_key(w->seed ^ 0x6E65, (uint64_t)step, gi));
        int64_t *it = b->items + (size_t)e * (size_t)(1 + nn);
        it[0] = w->ex_p[x];
        const int32_t *ss = w->sset + w->soff[u];
        size_t sn = (size_t)(w->soff[u + 1] - w->soff[u]);
        for (int j = 0; j < nn; j++) {
            int32_t y;
            do y = (int32_t)dm_rng_below(&rn, ni);
            while (sn < ni && dm_in_sorted_i32(ss, sn, y));
            it[1 + j] = y;
        }
        b->exu[e] = e;
        b->exp_[e] = e * (1 + nn);
        for (int j = 0; j < nn; j++) b->exn[e * nn + j] = e * (1 + nn) + 1 + j;
        memcpy(b->rr + (size_t)e * C, w->r_ex + x * C, C * sizeof *b->rr);
    }
    for (int k = 0; k < R * (1 + nn); k++) memcpy(b->bp + (size_t)k * ALIGN_K, w->pres + (size_t)b->items[k] * ALIGN_K, ALIGN_K);
}

/* Step s of the epoch (global step `step`): this rank's share of the global batch forward; the
 * negative bank of every rank's item latents, in rank order; the losses; the bank's gradient summed
 * back to its rows' ranks; backward; the gradient summed over the ranks; Adam. Adds the loss
 * parts (total, nce, recon, match, rank) to lsum. Agreed. */
static int align_step(align_ws *w, align_bufs *b, long s, long step, double lsum[5])
{
    par_ctx *ctx = w->ctx;
    align_model *m = &w->m;
    size_t G = (size_t)w->G, dd = (size_t)w->ac.d, lo, hi;
    size_t b0 = (size_t)s * G, bn = w->nex - b0 < G ? w->nex - b0 : G;
    dm_shard_even(bn, ctx->size, ctx->rank, &lo, &hi);
    int R = (int)(hi - lo), B = R * (1 + w->nn);
    align_sample(w, b, b0 + lo, R, step);
    align_batch bt;
    memset(&bt, 0, sizeof bt);
    bt.B = B;
    for (int k = 0; k < ALIGN_K; k++) bt.x[k] = w->dim_in[k] ? w->in.x[k] : NULL;
    bt.xrow = b->items;
    bt.present = b->bp;
    bt.item = b->items;
    bt.seed = w->seed;
    bt.step = (uint64_t)step;
    bt.train = 1;
    bt.U = R;
    bt.r = b->rr;
    bt.R = R;
    bt.ex_user = b->exu;
    bt.ex_pos = b->exp_;
    bt.ex_neg = b->exn;
    bt.norm.rank = (double)bn;
    align_zero_grad(m);
    DM_CALL(par_agree(ctx, align_forward(m, &w->a, &bt)));
    void *zall = NULL, *mall = NULL, *iall = NULL;
    size_t *zc = NULL, *mc = NULL, *ic = NULL;
    int rc = par_allgatherv(ctx, w->a.z, (size_t)B * ALIGN_K * dd * sizeof(float), &zall, &zc);
    if (!rc) rc = par_allgatherv(ctx, w->a.mask, (size_t)B * ALIGN_K, &mall, &mc);
    if (!rc) rc = par_allgatherv(ctx, b->items, (size_t)B * sizeof(int64_t), &iall, &ic);
    int64_t lo_row = 0, Gtot = 0;
    if (!rc) rc = par_exscan_i64(ctx, B, &lo_row, &Gtot);
    align_losses L;
    memset(&L, 0, sizeof L);
    if (!rc) {
        align_bank bank = {(int)Gtot, (int)lo_row, zall, mall, iall, b->nce_pos ? b->nflag : NULL};
        rc = align_loss(m, &w->a, &bt, &bank, b->dbank, &L);
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_sum_f32(ctx, b->dbank, (size_t)Gtot * ALIGN_K * dd);
    if (!rc) rc = align_backward(m, &w->a, &bt, b->dbank + (size_t)lo_row * ALIGN_K * dd);
    rc = par_agree(ctx, rc);
    if (!rc) rc = par_allreduce_sum_f32(ctx, m->grads_mem, m->nparams);
    if (!rc) align_adam_step(m);
    lsum[0] += L.total;
    lsum[1] += L.nce;
    lsum[2] += L.recon;
    lsum[3] += L.match;
    lsum[4] += L.rank;
    void *gathered[] = {zall, mall, iall, zc, mc, ic};
    for (size_t k = 0; k < sizeof gathered / sizeof *gathered; k++) free(gathered[k]);
    return rc;
}

/* align.select_protocol's candidates of this rank's users into w->dv (none for "full"). Agreed. */
static int align_valid_cands(align_ws *w)
{
    size_t ulo, uhi;
    const char *vp = dm_cfg_str(w->cfg, "align.select_protocol");
    w->dv = w->d;
    w->dv.n_cand = 0;
    memset(w->dv.cand, 0, sizeof w->dv.cand);
    dm_shard_even(w->d.n_users, w->ctx->size, w->ctx->rank, &ulo, &uhi);
    return cands_draw(w->ctx, w->cfg, &w->dv, &vp, 1, ulo, uhi);
}

/* the candidate scorer beside latent_score: the fixed-order kernel of eval over the listed items */
static int latent_score_items(void *mv, const ev_split *s, const size_t *users, size_t B, const int32_t *items, size_t n, float *scores)
{
    latent_model *m = mv;
    return model_dot_items(m->z, m->n_items, m->d, m->hs[s->split], users, B, items, n, scores);
}

/* The validation score of the current weights, ndcg@10 of z_base against the user latents from the
 * SASRec state before the validation item under align.select_protocol (full ranking by default), in
 * *vm; the best epoch's weights are kept in w->best. Agreed. */
static int align_validate(align_ws *w, const metrics_spec *spec, long ep, double *vm)
{
    par_ctx *ctx = w->ctx;
    size_t nu = w->d.n_users, ni = w->d.n_items, ulo, uhi;
    latent_model lm = {w->zb, NULL, {NULL, w->hv, NULL}, (size_t)w->ac.d, ni};
    ev_split vs = {&w->dv, w->roles, DM_VALID, NULL};
    int rc = latents(&w->m, &w->ai, &w->in, w->pres, ni, w->st_valid, nu, w->zb, w->hv);
    dm_shard_even(nu, ctx->size, ctx->rank, &ulo, &uhi);
    double *rows = malloc((uhi - ulo + 1) * spec->ncols * sizeof *rows), mean[8];
    int64_t cnt = 0;
    if (!rc)
        rc = rows ? ev_score_users_items(&vs, spec, dm_cfg_str(w->cfg, "align.select_protocol"), latent_score, latent_score_items, &lm, ulo,
                                         uhi, 256, rows)
                  : DM_ERR(DM_ENOMEM, "out of memory");
    rc = par_agree(ctx, rc);
    if (!rc) rc = ev_mean(ctx, spec, rows, uhi - ulo, mean, &cnt);
    free(rows);
    if (rc) return rc;
    *vm = mean[metrics_col(spec, METRICS_NDCG, 0)];
    if (*vm > w->best_v) {
        w->best_v = *vm;
        w->best_epoch = ep + 1;
        memcpy(w->best, w->m.params_mem, w->m.nparams * sizeof *w->best);
    }
    return DM_OK;
}

/* Training: align.epochs epochs over the examples in a seeded order, each followed by the
 * validation score when the split has validation items; the weights of the best epoch kept. */
static int align_train(align_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_dataset *d = &w->d;
    metrics_spec spec;
    int64_t ks[1] = {10};
    int have_spec = metrics_spec_init(&spec, ks, 1, METRICS_TIES_EXPECTED) == DM_OK;
    int has_valid = 0;
    for (size_t i = 0; i < d->n_inter && !has_valid; i++) has_valid = w->roles[i] == DM_VALID;
    w->epochs = (long)dm_cfg_int(w->cfg, "align.epochs");
    long steps_per_epoch = (long)((w->nex + (size_t)w->G - 1) / (size_t)w->G), step = 0;
    w->best_v = -INFINITY;
    w->curve = calloc((size_t)w->epochs * 8 + 8, sizeof *w->curve);
    align_bufs b;
    int rc = align_bufs_init(w, &b);
    if (!rc && !w->curve) rc = DM_ERR(DM_ENOMEM, "out of memory");
    rc = par_agree(ctx, rc);
    if (!rc && has_valid) rc = align_valid_cands(w);
    if (!rc)
        dm_log("  align: %zu examples, %zu items, modalities%s%s%s%s, d=%d, hidden %d, global batch %d x (1 + %d), %ld steps/epoch",
               w->nex, d->n_items, w->dim_in[0] ? " cf" : "", w->dim_in[1] ? " text" : "", w->dim_in[2] ? " visual" : "",
               w->dim_in[3] ? " audio" : "", w->ac.d, w->ac.hidden, w->G, w->nn, steps_per_epoch);
    for (long ep = 0; ep < w->epochs && !rc; ep++) {
        double te = dm_wtime(), lsum[5] = {0, 0, 0, 0, 0}, vm = NAN;
        align_shuffle(w, b.perm, ep);
        double t_note = te;
        for (long s = 0; s < steps_per_epoch && !rc; s++, step++) {
            rc = align_step(w, &b, s, step, lsum);
            trainer_progress(1, "align", ep + 1, s + 1, steps_per_epoch, te, &t_note);
        }
        if (rc) break;
        par_allreduce_sum_f64(ctx, lsum, 5);
        double dt = dm_wtime() - te, ns = (double)steps_per_epoch;
        w->t_train += dt;
        if (has_valid && have_spec) rc = align_validate(w, &spec, ep, &vm);
        double *cv = w->curve + (size_t)ep * 8;
        cv[0] = (double)(ep + 1);
        for (int k = 0; k < 5; k++) cv[1 + k] = lsum[k] / ns;
        cv[6] = vm;
        cv[7] = dt;
        dm_log("  epoch %3ld  loss %.4f (nce %.3f recon %.3f match %.4f rank %.3f)  %.0f ms/step%s%.4f", ep + 1, cv[1], cv[2],
               cv[3], cv[4], cv[5], 1e3 * dt / ns, has_valid ? "  valid ndcg@10 " : "  ", vm);
    }
    if (!rc && w->best_epoch > 0) memcpy(w->m.params_mem, w->best, w->m.nparams * sizeof *w->best);
    if (have_spec) metrics_spec_free(&spec);
    align_bufs_free(&b);
    return rc;
}

/* The latents of the kept weights: z_base of every item, h of every user from the SASRec state
 * before the validation and the test item. Agreed. */
static int align_final_latents(align_ws *w)
{
    size_t nu = w->d.n_users;
    int rc = latents(&w->m, &w->ai, &w->in, w->pres, w->d.n_items, w->st_valid, nu, w->zb, w->hv);
    if (!rc) rc = align_user_latents(&w->m, &w->ai, w->st_test, (int)nu, w->ht);
    return par_agree(w->ctx, rc);
}

/* The inputs the aligner was trained on (/align/inputs/<modality>/{x,present} and their source), so
 * stress tests can rebuild z_base with modalities dropped or perturbed. */
static int align_write_inputs(h5file *f, const align_ws *w)
{
    size_t ni = w->d.n_items;
    int rc = DM_OK;
    for (int k = 0; !rc && k < ALIGN_K; k++) {
        if (!w->dim_in[k]) continue;
        char nm[128];
        snprintf(nm, sizeof nm, "/align/inputs/%s/x", ai_names[k]);
        rc = h5_write_all(f, nm, H5_F32, ni, w->in.dim[k], w->in.x[k]);
        snprintf(nm, sizeof nm, "/align/inputs/%s/present", ai_names[k]);
        if (!rc) {
            uint8_t *pk = malloc(ni + 1);
            for (size_t i = 0; pk && i < ni; i++) pk[i] = w->pres[i * ALIGN_K + (size_t)k];
            rc = pk ? h5_write_all(f, nm, H5_U8, ni, 0, pk) : DM_ERR(DM_ENOMEM, "out of memory");
            free(pk);
        }
        snprintf(nm, sizeof nm, "/align/inputs/%s", ai_names[k]);
        if (!rc) rc = h5_attr_str(f, nm, "source", w->in.source[k]);
    }
    return rc;
}

/* align.h5: the model (align_io.h), its inputs, the latents, the training curve and how it was
 * trained; committed when rc is DM_OK on every rank, discarded otherwise. */
static int align_write(align_ws *w, int rc)
{
    size_t ni = w->d.n_items, nu = w->d.n_users, dd = (size_t)w->ac.d;
    h5file f;
    memset(&f, 0, sizeof f);
    f.id = -1;
    if (!rc) rc = stage_output_create(w->sr, ALIGN_FORMAT, ALIGN_VERSION, &f);
    if (!rc) rc = align_write_model(&f, &w->m);
    if (!rc) rc = align_write_inputs(&f, w);
    if (!rc) rc = h5_write_all(&f, "/align/z_base", H5_F32, ni, dd, w->zb);
    if (!rc) rc = h5_write_all(&f, "/align/h_valid", H5_F32, nu, dd, w->hv);
    if (!rc) rc = h5_write_all(&f, "/align/h_test", H5_F32, nu, dd, w->ht);
    if (!rc && w->epochs > 0) rc = h5_write_all(&f, "/align/curve", H5_F64, (size_t)w->epochs, 8, w->curve);
    char cols[160];
    snprintf(cols, sizeof cols, "epoch, loss, nce, recon, match, rank, valid ndcg@10 (%s), seconds", dm_cfg_str(w->cfg, "align.select_protocol"));
    if (!rc) rc = h5_attr_str(&f, "/align/curve", "columns", cols);
    if (!rc && w->in.n_lsa_s) rc = h5_attr_f64s(&f, "/align", "lsa_singular_values", w->in.lsa_s, (size_t)w->in.n_lsa_s);
    if (!rc) rc = h5_attr_i64(&f, "/align", "best_epoch", (int64_t)w->best_epoch);
    if (!rc) rc = h5_attr_i64(&f, "/align", "seed", (int64_t)w->seed);
    if (!rc) rc = h5_attr_f64(&f, "/align", "best_valid", w->best_v);
    if (!rc) rc = h5_attr_f64(&f, "/align", "train_seconds", w->t_train);
    rc = stage_output_finish(w->sr, &f, rc);
    if (!rc) dm_log("  align: kept epoch %ld, valid ndcg@10 %.4f", w->best_epoch, w->best_v);
    return rc;
}

static void align_ws_free(align_ws *w)
{
    void *own[] = {w->e_cf, w->st_valid, w->st_test, w->pres, w->zb, w->hv, w->ht, w->best,
                   w->ex_u, w->ex_p, w->soff, w->sset, w->r_ex, w->curve};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++) free(own[k]);
    align_acts_free(&w->a);
    align_acts_free(&w->ai);
    align_free(&w->m);
    ai_free(&w->in);
    for (int c = 0; c < w->dv.n_cand; c++) free(w->dv.cand[c].rows);
    if (w->have_d) dm_dataset_free(&w->d);
    memset(w, 0, sizeof *w);
}

/* The stage body, as a table of contents: inputs, the model, the examples, training, the latents
 * of the kept weights, align.h5. */
static int stage_align(stage_run *sr)
{
    align_ws w = {.sr = sr, .ctx = sr->ctx, .cfg = sr->cfg};
    int rc = align_load_inputs(&w);
    if (!rc) rc = align_setup(&w);
    if (!rc) {
        rc = align_examples(&w);
        if (!rc) rc = align_train(&w);
        if (!rc) rc = align_final_latents(&w);
        rc = align_write(&w, rc);
    }
    align_ws_free(&w);
    return par_agree(sr->ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

/* The settings that need no file: align.modalities names known modalities. */
static int check_align(const dm_cfg *cfg)
{
    align_config c;
    DM_CALL(cands_check_key(cfg, "align.select_protocol"));
    return align_config_from(cfg, NULL, 0, &c);
}

const stage_def stage_align_def = {
    .name = "align",
    .output = "align.h5",
    .inputs = {"dataset.h5", "cf.h5", NULL},
    .groups = align_config_groups,
    .check = check_align,
    .run = stage_align,
    .summary = "train the multimodal base aligner (z_base, h_base) into align.h5",
    .usage = USAGE,
};
