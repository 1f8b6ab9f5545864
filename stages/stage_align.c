/* cmd_align.c: `dynmm align`: the multimodal base aligner (DESIGN.md idea 2) into align.h5.
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
 * /align/curve; the model's shape as attributes of /align.
 */
#include "align_inputs.h"
#include "cands.h"
#include "cf_sasrec.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "stage.h"

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

#define ALIGN_FORMAT "dynmm-align"

static const char USAGE[] =
    "usage: dynmm align CONFIG.cfg [--set group.key=value ...]\n\n"
    "Trains the multimodal base aligner on <run.dir>/dataset.h5 and <run.dir>/cf.h5: per-modality\n"
    "encoders (cf, text, visual, audio; align.modalities), one shared projector into align.dim, InfoNCE\n"
    "over every pair of modalities an item has (negatives gathered from all ranks), reconstruction,\n"
    "CF-text matching and a recommendation loss. Text comes from imported features, or from LSA of the\n"
    "item titles, brands and categories (lsa.*, ScaLAPACK). Writes <run.dir>/align.h5 with z_base\n"
    "(items) and h_base (users).\n";

static const char *const align_config_groups[] = {"align", "lsa", "modal.pca_dim", "modal.pca_above", "modal.pca_whiten", "split.protocol", NULL};

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

static int stage_align(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    const char *dpath = stage_input(sr, "dataset.h5"), *cpath = stage_input(sr, "cf.h5");
    dm_dataset d;
    DM_CALL(ds_read(ctx, dpath, &d));
    const int8_t *roles = NULL;
    int rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    float *e_cf = NULL, *st_valid = NULL, *st_test = NULL;
    size_t r, C = 0, c2;
    if (!rc) {
        rc = h5_read_file_f32(ctx, cpath, "/sasrec/e_cf", &e_cf, &r, &C);
        if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_valid", &st_valid, &r, &c2);
        if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_test", &st_test, &r, &c2);
        if (rc) DM_HINT("rerun train-cf with sasrec in cf.models");
    }
    ai_inputs in;
    memset(&in, 0, sizeof in);
    if (!rc) rc = ai_build(ctx, cfg, &d, roles, e_cf, C, &in);
    if (rc) goto early;
    {
        /* ---- configuration ---- */
        int dim_in[ALIGN_K] = {0, 0, 0, 0};
        for (size_t k = 0; k < dm_cfg_len(cfg, "align.modalities"); k++) {
            const char *mn = dm_cfg_str_at(cfg, "align.modalities", k);
            int m = -1;
            for (int q = 0; q < AI_NMOD; q++)
                if (!strcmp(mn, ai_names[q])) m = q;
            if (m < 0) {
                char w[256];
                rc = DM_ERR(DM_ECONFIG, "%s: unknown modality '%s' (cf, text, visual, audio)",
                            dm_cfg_where(cfg, "align.modalities", w, sizeof w), mn);
                goto early;
            }
            dim_in[m] = (int)in.dim[m];
        }
        align_config ac;
        align_config_default(&ac, dim_in, (int)C);
        ac.d = (int)dm_cfg_int(cfg, "align.dim");
        ac.hidden = (int)dm_cfg_int(cfg, "align.hidden");
        const char *act = dm_cfg_str(cfg, "align.act");
        ac.act = !strcmp(act, "gelu") ? ALIGN_ACT_GELU : !strcmp(act, "tanh") ? ALIGN_ACT_TANH : ALIGN_ACT_RELU;
        ac.fusion = !strcmp(dm_cfg_str(cfg, "align.fusion"), "mean") ? ALIGN_FUSE_MEAN : ALIGN_FUSE_GATE;
        ac.rank_loss = !strcmp(dm_cfg_str(cfg, "align.rank_loss"), "bce") ? ALIGN_RANK_BCE : ALIGN_RANK_SOFTMAX;
        ac.n_neg = (int)dm_cfg_int(cfg, "align.negatives");
        ac.tau = (float)dm_cfg_float(cfg, "align.tau");
        ac.w_nce = (float)dm_cfg_float(cfg, "align.w_nce");
        ac.w_recon = (float)dm_cfg_float(cfg, "align.w_recon");
        ac.w_match = (float)dm_cfg_float(cfg, "align.w_match");
        ac.w_rank = (float)dm_cfg_float(cfg, "align.w_rank");
        ac.modality_dropout = (float)dm_cfg_float(cfg, "align.modality_dropout");
        ac.lr = (float)dm_cfg_float(cfg, "align.lr");
        ac.beta1 = (float)dm_cfg_float(cfg, "align.beta1");
        ac.beta2 = (float)dm_cfg_float(cfg, "align.beta2");
        ac.eps = (float)dm_cfg_float(cfg, "align.eps");
        ac.weight_decay = (float)dm_cfg_float(cfg, "align.weight_decay");
        ac.chunk_floats = (size_t)(dm_cfg_float(cfg, "align.nce_chunk_mb") * 1048576.0 / 4.0);
        int G = (int)dm_cfg_int(cfg, "align.batch"), nn = ac.n_neg;
        size_t glo, ghi;
        dm_shard_even((size_t)G, ctx->size, 0, &glo, &ghi);
        int Rmax = (int)(ghi - glo);
        ac.max_rank = Rmax;
        ac.max_users = Rmax;
        ac.max_batch = Rmax * (1 + nn);
        ac.max_bank = G * (1 + nn);
        long long sd = dm_cfg_int(cfg, "align.seed");
        uint64_t seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0xA11, 0);
        align_config ic = ac;
        int eb = (int)dm_cfg_int(cfg, "align.eval_batch");
        ic.max_batch = eb;
        ic.max_users = eb;
        ic.max_rank = 1;
        ic.max_bank = eb;
        rc = align_config_check(&ac);
        if (!rc) rc = align_config_check(&ic);
        rc = par_agree(ctx, rc);
        if (rc) goto early;

        align_model m;
        align_acts a, ai;
        memset(&m, 0, sizeof m);
        memset(&a, 0, sizeof a);
        memset(&ai, 0, sizeof ai);
        rc = align_init(&m, &ac);
        if (!rc) rc = align_acts_init(&a, &ac);
        if (!rc) rc = align_acts_init(&ai, &ic);
        rc = par_agree(ctx, rc);
        if (!rc) align_init_weights(&m, seed);

        /* ---- examples: (state of train[:-1], last train item) per user ---- */
        size_t nu = d.n_users, ni = d.n_items;
        size_t *ex_u = malloc((nu + 1) * sizeof *ex_u);
        int32_t *ex_p = malloc((nu + 1) * sizeof *ex_p);
        int64_t *soff = calloc(nu + 1, sizeof *soff);
        int32_t *sset = malloc((d.n_inter + 1) * sizeof *sset);
        float *r_ex = malloc((nu + 1) * C * sizeof *r_ex);
        uint8_t *pres = calloc(ni * ALIGN_K + 1, 1);
        float *zb = malloc(ni * (size_t)ac.d * sizeof *zb + 4), *hv = malloc(nu * (size_t)ac.d * sizeof *hv + 4);
        float *best = malloc(m.nparams * sizeof *best + 4);
        size_t nex = 0;
        if (!rc && (!ex_u || !ex_p || !soff || !sset || !r_ex || !pres || !zb || !hv || !best)) rc = DM_ERR(DM_ENOMEM, "out of memory");
        rc = par_agree(ctx, rc);
        for (size_t i = 0; !rc && i < ni; i++)
            for (int k = 0; k < ALIGN_K; k++) pres[i * ALIGN_K + (size_t)k] = dim_in[k] && in.present[k] ? in.present[k][i] : 0;
        sasrec sm;
        sasrec_acts sa;
        memset(&sm, 0, sizeof sm);
        memset(&sa, 0, sizeof sa);
        if (!rc) rc = cf_sasrec_load(ctx, cpath, ni, 256, &sm, &sa);
        if (!rc) {
            int T = sm.cfg.T;
            int32_t *seq = calloc((size_t)256 * (size_t)T, sizeof *seq);
            size_t q = 0;
            for (size_t u = 0; u < nu && !rc; u++) {
                size_t s0 = q;
                for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++)
                    if (roles[j] == DM_TRAIN) sset[q++] = d.item[j];
                soff[u + 1] = (int64_t)q;
                if (q - s0 >= 2) {
                    ex_u[nex] = u;
                    ex_p[nex] = sset[q - 1];
                    nex++;
                }
                qsort(sset + s0, q - s0, sizeof *sset, dm_cmp_i32);
            }
            /* prefix states (train items minus the last), 256 users at a time; every rank
               computes all (cheap) so no exchange is needed */
            int32_t *tmp = malloc((d.n_inter + 1) * sizeof *tmp);
            for (size_t e0 = 0; e0 < nex && !rc; e0 += 256) {
                int nb = (int)(nex - e0 < 256 ? nex - e0 : 256);
                memset(seq, 0, (size_t)nb * (size_t)T * sizeof *seq);
                for (int b = 0; b < nb; b++) {
                    size_t u = ex_u[e0 + (size_t)b], n = 0;
                    for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++)
                        if (roles[j] == DM_TRAIN) tmp[n++] = d.item[j];
                    n--; /* drop the positive */
                    size_t mm = n < (size_t)T ? n : (size_t)T;
                    for (size_t j = 0; j < mm; j++) seq[(size_t)b * (size_t)T + (size_t)T - mm + j] = tmp[n - mm + j] + 1;
                }
                rc = cf_sasrec_states(&sm, &sa, seq, nb, r_ex + e0 * C);
            }
            free(tmp);
            free(seq);
        }
        sasrec_acts_free(&sa);
        sasrec_free(&sm);
        rc = par_agree(ctx, rc);

        /* ---- training ---- */
        metrics_spec spec;
        int64_t ks[1] = {10};
        int have_spec = !rc && metrics_spec_init(&spec, ks, 1, METRICS_TIES_EXPECTED) == DM_OK;
        size_t ncol = have_spec ? metrics_col(&spec, METRICS_NDCG, 0) : 0;
        latent_model lm = {zb, NULL, {NULL, hv, NULL}, (size_t)ac.d, ni};
        ev_split vs = {&d, roles, DM_VALID};
        int has_valid = 0;
        for (size_t i = 0; i < d.n_inter && !has_valid; i++) has_valid = roles[i] == DM_VALID;
        long epochs = (long)dm_cfg_int(cfg, "align.epochs");
        long steps_per_epoch = (long)((nex + (size_t)G - 1) / (size_t)G), step = 0, best_epoch = 0;
        double best_v = -INFINITY;
        double *curve = calloc((size_t)epochs * 8 + 8, sizeof *curve);
        size_t *perm = malloc((nex + 1) * sizeof *perm);
        size_t B_max = (size_t)ac.max_batch, bank_max = (size_t)ac.max_bank;
        int64_t *items = malloc(B_max * sizeof *items + 8);
        int nce_pos = !strcmp(dm_cfg_str(cfg, "align.nce_rows"), "positives");
        /* align.nce_rows = positives: every rank's rows are its examples' (positive, negatives...)
         * groups, so bank row j is a positive exactly when j % (1 + nn) == 0 */
        uint8_t *nflag = malloc(bank_max + 8);
        for (size_t j = 0; nflag && j < bank_max; j++) nflag[j] = j % (size_t)(1 + nn) == 0;
        uint8_t *bp = malloc(B_max * ALIGN_K + 8);
        int32_t *exu = malloc((size_t)Rmax * sizeof *exu + 8), *exp_ = malloc((size_t)Rmax * sizeof *exp_ + 8),
                *exn = malloc((size_t)Rmax * (size_t)nn * sizeof *exn + 8);
        float *rr = malloc((size_t)Rmax * C * sizeof *rr + 8), *dbank = malloc(bank_max * ALIGN_K * (size_t)ac.d * sizeof *dbank + 8);
        if (!rc && (!curve || !perm || !items || !nflag || !bp || !exu || !exp_ || !exn || !rr || !dbank)) rc = DM_ERR(DM_ENOMEM, "out of memory");
        rc = par_agree(ctx, rc);
        if (!rc)
            dm_log("  align: %zu examples, %zu items, modalities%s%s%s%s, d=%d, hidden %d, global batch %d x (1 + %d), %ld steps/epoch",
                   nex, ni, dim_in[0] ? " cf" : "", dim_in[1] ? " text" : "", dim_in[2] ? " visual" : "", dim_in[3] ? " audio" : "",
                   ac.d, ac.hidden, G, nn, steps_per_epoch);
        double t_train = 0;
        for (long ep = 0; ep < epochs && !rc; ep++) {
            double te = dm_wtime();
            for (size_t k = 0; k < nex; k++) perm[k] = k;
            dm_rng pr;
            dm_rng_seed(&pr, dm_rng_key(seed ^ 0x5EED, 0xE90C, (uint64_t)ep));
            for (size_t k = nex; k > 1; k--) {
                size_t j = dm_rng_below(&pr, k), x = perm[k - 1];
                perm[k - 1] = perm[j];
                perm[j] = x;
            }
            double lsum[5] = {0, 0, 0, 0, 0};
            for (long s = 0; s < steps_per_epoch && !rc; s++, step++) {
                size_t b0 = (size_t)s * (size_t)G, bn = nex - b0 < (size_t)G ? nex - b0 : (size_t)G, lo, hi;
                dm_shard_even(bn, ctx->size, ctx->rank, &lo, &hi);
                int R = (int)(hi - lo), B = R * (1 + nn);
                for (int e = 0; e < R; e++) {
                    size_t gi = b0 + lo + (size_t)e, x = perm[gi], u = ex_u[x];
                    dm_rng rn;
                    dm_rng_seed(&rn, dm_rng_key(seed ^ 0x6E65, (uint64_t)step, gi));
                    int64_t *it = items + (size_t)e * (size_t)(1 + nn);
                    it[0] = ex_p[x];
                    const int32_t *ss = sset + soff[u];
                    size_t sn = (size_t)(soff[u + 1] - soff[u]);
                    for (int j = 0; j < nn; j++) {
                        int32_t y;
                        do y = (int32_t)dm_rng_below(&rn, ni);
                        while (sn < ni && dm_in_sorted_i32(ss, sn, y));
                        it[1 + j] = y;
                    }
                    exu[e] = e;
                    exp_[e] = e * (1 + nn);
                    for (int j = 0; j < nn; j++) exn[e * nn + j] = e * (1 + nn) + 1 + j;
                    memcpy(rr + (size_t)e * C, r_ex + x * C, C * sizeof *rr);
                }
                for (int b = 0; b < B; b++) memcpy(bp + (size_t)b * ALIGN_K, pres + (size_t)items[b] * ALIGN_K, ALIGN_K);
                align_batch bt;
                memset(&bt, 0, sizeof bt);
                bt.B = B;
                for (int k = 0; k < ALIGN_K; k++) bt.x[k] = dim_in[k] ? in.x[k] : NULL;
                bt.xrow = items;
                bt.present = bp;
                bt.item = items;
                bt.seed = seed;
                bt.step = (uint64_t)step;
                bt.train = 1;
                bt.U = R;
                bt.r = rr;
                bt.R = R;
                bt.ex_user = exu;
                bt.ex_pos = exp_;
                bt.ex_neg = exn;
                bt.norm.rank = (double)bn;
                align_zero_grad(&m);
                rc = align_forward(&m, &a, &bt);
                rc = par_agree(ctx, rc);
                if (rc) break;
                /* the negative bank: every rank's item latents, in rank order */
                void *zall = NULL, *mall = NULL, *iall = NULL;
                size_t *zc = NULL, *mc = NULL, *ic = NULL;
                rc = par_allgatherv(ctx, a.z, (size_t)B * ALIGN_K * (size_t)ac.d * sizeof(float), &zall, &zc);
                if (!rc) rc = par_allgatherv(ctx, a.mask, (size_t)B * ALIGN_K, &mall, &mc);
                if (!rc) rc = par_allgatherv(ctx, items, (size_t)B * sizeof(int64_t), &iall, &ic);
                int64_t lo_row = 0, Gtot = 0;
                if (!rc) rc = par_exscan_i64(ctx, B, &lo_row, &Gtot);
                align_losses L;
                memset(&L, 0, sizeof L);
                if (!rc) {
                    align_bank bank = {(int)Gtot, (int)lo_row, zall, mall, iall, nce_pos ? nflag : NULL};
                    rc = align_loss(&m, &a, &bt, &bank, dbank, &L);
                }
                rc = par_agree(ctx, rc);
                if (!rc) rc = par_allreduce_sum_f32(ctx, dbank, (size_t)Gtot * ALIGN_K * (size_t)ac.d);
                if (!rc) rc = align_backward(&m, &a, &bt, dbank + (size_t)lo_row * ALIGN_K * (size_t)ac.d);
                rc = par_agree(ctx, rc);
                if (!rc) rc = par_allreduce_sum_f32(ctx, m.grads_mem, m.nparams);
                if (!rc) align_adam_step(&m);
                lsum[0] += L.total;
                lsum[1] += L.nce;
                lsum[2] += L.recon;
                lsum[3] += L.match;
                lsum[4] += L.rank;
                free(zall);
                free(mall);
                free(iall);
                free(zc);
                free(mc);
                free(ic);
            }
            if (rc) break;
            par_allreduce_sum_f64(ctx, lsum, 5);
            double dt = dm_wtime() - te, vm = NAN;
            t_train += dt;
            if (has_valid && have_spec) {
                rc = latents(&m, &ai, &in, pres, ni, st_valid, nu, zb, hv);
                size_t ulo, uhi;
                dm_shard_even(nu, ctx->size, ctx->rank, &ulo, &uhi);
                double *rows = malloc((uhi - ulo + 1) * spec.ncols * sizeof *rows), mean[8];
                int64_t cnt = 0;
                if (!rc) rc = rows ? ev_score_users(&vs, &spec, "full", latent_score, &lm, ulo, uhi, 256, rows) : DM_ERR(DM_ENOMEM, "out of memory");
                rc = par_agree(ctx, rc);
                if (!rc) rc = ev_mean(ctx, &spec, rows, uhi - ulo, mean, &cnt);
                free(rows);
                if (!rc) {
                    vm = mean[ncol];
                    if (vm > best_v) {
                        best_v = vm;
                        best_epoch = ep + 1;
                        memcpy(best, m.params_mem, m.nparams * sizeof *best);
                    }
                }
            }
            double ns = (double)steps_per_epoch;
            double *cv = curve + (size_t)ep * 8;
            cv[0] = (double)(ep + 1);
            for (int k = 0; k < 5; k++) cv[1 + k] = lsum[k] / ns;
            cv[6] = vm;
            cv[7] = dt;
            dm_log("  epoch %3ld  loss %.4f (nce %.3f recon %.3f match %.4f rank %.3f)  %.0f ms/step%s%.4f", ep + 1, cv[1], cv[2],
                   cv[3], cv[4], cv[5], 1e3 * dt / ns, has_valid ? "  valid ndcg@10 " : "  ", vm);
        }
        if (!rc && best_epoch > 0) memcpy(m.params_mem, best, m.nparams * sizeof *best);

        /* ---- outputs ---- */
        float *ht = malloc(nu * (size_t)ac.d * sizeof *ht + 4);
        if (!rc && !ht) rc = DM_ERR(DM_ENOMEM, "out of memory");
        if (!rc) rc = latents(&m, &ai, &in, pres, ni, st_valid, nu, zb, hv);
        if (!rc) rc = align_user_latents(&m, &ai, st_test, (int)nu, ht);
        rc = par_agree(ctx, rc);
        h5file f;
        memset(&f, 0, sizeof f);
        f.id = -1;
        if (!rc) rc = stage_output_create(sr, ALIGN_FORMAT, 1, &f);
        for (int t = 0; !rc && t < m.ntensors; t++) {
            const char *name;
            int nd;
            size_t shape[2];
            size_t n = align_tensor_info(&m, t, &name, &nd, shape);
            char nm[160];
            snprintf(nm, sizeof nm, "/align/weights/%s", name);
            rc = h5_write_all(&f, nm, H5_F32, shape[0], nd == 2 ? n / shape[0] : 0, m.params_mem + m.offset[t]);
        }
        for (int k = 0; !rc && k < ALIGN_K; k++) {
            if (!dim_in[k]) continue;
            char nm[128];
            snprintf(nm, sizeof nm, "/align/inputs/%s/x", ai_names[k]);
            rc = h5_write_all(&f, nm, H5_F32, ni, in.dim[k], in.x[k]);
            snprintf(nm, sizeof nm, "/align/inputs/%s/present", ai_names[k]);
            if (!rc) {
                uint8_t *pk = malloc(ni + 1);
                for (size_t i = 0; pk && i < ni; i++) pk[i] = pres[i * ALIGN_K + (size_t)k];
                rc = pk ? h5_write_all(&f, nm, H5_U8, ni, 0, pk) : DM_ERR(DM_ENOMEM, "out of memory");
                free(pk);
            }
            snprintf(nm, sizeof nm, "/align/inputs/%s", ai_names[k]);
            if (!rc) rc = h5_attr_str(&f, nm, "source", in.source[k]);
        }
        if (!rc) rc = h5_write_all(&f, "/align/z_base", H5_F32, ni, (size_t)ac.d, zb);
        if (!rc) rc = h5_write_all(&f, "/align/h_valid", H5_F32, nu, (size_t)ac.d, hv);
        if (!rc) rc = h5_write_all(&f, "/align/h_test", H5_F32, nu, (size_t)ac.d, ht);
        if (!rc && epochs > 0) rc = h5_write_all(&f, "/align/curve", H5_F64, (size_t)epochs, 8, curve);
        if (!rc) rc = h5_attr_str(&f, "/align/curve", "columns", "epoch, loss, nce, recon, match, rank, valid ndcg@10 (full), seconds");
        if (!rc && in.n_lsa_s) rc = h5_attr_f64s(&f, "/align", "lsa_singular_values", in.lsa_s, (size_t)in.n_lsa_s);
        static const char *const an[] = {"dim_cf", "dim_text", "dim_visual", "dim_audio"};
        for (int k = 0; !rc && k < ALIGN_K; k++) rc = h5_attr_i64(&f, "/align", an[k], dim_in[k]);
#define AI64(name, v) if (!rc) rc = h5_attr_i64(&f, "/align", name, (int64_t)(v));
        AI64("dim_user", ac.dim_user);
        AI64("d", ac.d);
        AI64("hidden", ac.hidden);
        AI64("act", ac.act);
        AI64("fusion", ac.fusion);
        AI64("rank_loss", ac.rank_loss);
        AI64("negatives", ac.n_neg);
        AI64("best_epoch", best_epoch);
        AI64("seed", seed);
#undef AI64
        if (!rc) rc = h5_attr_f64(&f, "/align", "best_valid", best_v);
        if (!rc) rc = h5_attr_f64(&f, "/align", "train_seconds", t_train);
        rc = stage_output_finish(sr, &f, rc);
        if (!rc) dm_log("  align: kept epoch %ld, valid ndcg@10 %.4f", best_epoch, best_v);
        if (have_spec) metrics_spec_free(&spec);
        free(ht);
        free(curve);
        free(perm);
        free(items);
        free(bp);
        free(exu);
        free(exp_);
        free(exn);
        free(rr);
        free(dbank);
        free(nflag);
        free(ex_u);
        free(ex_p);
        free(soff);
        free(sset);
        free(r_ex);
        free(pres);
        free(zb);
        free(hv);
        free(best);
        align_acts_free(&a);
        align_acts_free(&ai);
        align_free(&m);
    }
early:
    ai_free(&in);
    free(e_cf);
    free(st_valid);
    free(st_test);
    dm_dataset_free(&d);
    return par_agree(ctx, rc);
}


int align_load(par_ctx *ctx, const char *path, int batch, align_model *m, align_acts *ai, float **z_base, size_t *n_items)
{
    memset(m, 0, sizeof *m);
    memset(ai, 0, sizeof *ai);
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = h5_check_format(&f, ALIGN_FORMAT, 1);
    int64_t v;
    int dim_in[ALIGN_K] = {0, 0, 0, 0};
    static const char *const an[] = {"dim_cf", "dim_text", "dim_visual", "dim_audio"};
    for (int k = 0; k < ALIGN_K && !rc; k++) {
        rc = h5_get_attr_i64(&f, "/align", an[k], &v);
        dim_in[k] = (int)v;
    }
    align_config ac;
    align_config_default(&ac, dim_in, 0);
#define A(name, dst) if (!rc) { rc = h5_get_attr_i64(&f, "/align", name, &v); dst = (int)v; }
    A("dim_user", ac.dim_user);
    A("d", ac.d);
    A("hidden", ac.hidden);
    A("act", ac.act);
    A("fusion", ac.fusion);
    A("rank_loss", ac.rank_loss);
    A("negatives", ac.n_neg);
#undef A
    ac.max_batch = ac.max_users = ac.max_bank = batch;
    ac.max_rank = 1;
    if (!rc) rc = align_config_check(&ac);
    if (!rc) rc = align_init(m, &ac);
    if (!rc) rc = align_acts_init(ai, &ac);
    for (int t = 0; !rc && t < m->ntensors; t++) {
        const char *name;
        int nd;
        size_t shape[2];
        size_t n = align_tensor_info(m, t, &name, &nd, shape);
        char nm[160];
        snprintf(nm, sizeof nm, "/align/weights/%s", name);
        size_t r, c;
        rc = h5_shape(&f, nm, &r, &c, NULL);
        if (!rc && r * (c ? c : 1) != n) rc = DM_ERR(DM_EFORMAT, "'%s': %s has %zu values, expected %zu", path, nm, r * (c ? c : 1), n);
        if (!rc) rc = h5_read_rows(&f, nm, H5_F32, 0, r, m->params_mem + m->offset[t]);
    }
    if (!rc && z_base) {
        void *p;
        size_t r, c;
        rc = h5_read_all(&f, "/align/z_base", H5_F32, &p, &r, &c);
        if (!rc) {
            *z_base = p;
            *n_items = r;
        }
    }
    h5_close(&f);
    return par_agree(ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_align_def = {
    .name = "align",
    .output = "align.h5",
    .inputs = {"dataset.h5", "cf.h5", NULL},
    .groups = align_config_groups,
    .uses = NULL,
    .check = NULL,
    .run = stage_align,
    .prepare = NULL,
    .summary = "train the multimodal base aligner (z_base, h_base) into align.h5",
    .usage = USAGE,
};
