/* cmd_prompt.c: `dynmm prompt`: the LLM recommender (the alignment-based baseline of the method,
 * A-LLMRec done with likelihood ranking) and its evidence-grounded variant (DESIGN.md idea 3).
 *
 * Two projectors map the aligner's latents into the frozen LM's embedding space: the user
 * projector turns h_u into L soft prompt tokens, the item projector turns z_i into one soft item
 * token. A user's prompt is
 *     [L user tokens] prefix  title(h_1) [item h_1] sep ... title(h_n) [item h_n] sep  query
 * and candidate c continues it with title(c) followed by c's soft token. The candidate's score is
 * the LM log-likelihood of its title tokens plus that of its soft token, scored through the tied
 * output head as one more vocabulary entry (exp(h . e_c) against the vocabulary's exp(h . wte_v)),
 * averaged over the tokens (prompt.length_norm). Ranking is by this score: never by matching
 * generated strings. At scoring time the prompt runs once into the KV cache and every candidate
 * reuses it (gpt2_cache_score_mixed).
 *
 * Models (prompt.models): `llm` is the above; `llm_explain` adds E evidence tokens per candidate
 * (the evidence encoder over the evidence of (u, c): neighbour users, history items, attributes)
 * before the candidate's title, and trains with the faithfulness and explanation losses
 * (src/prompt/llmrec.h). Both are trained on the same users and negatives and evaluated on the
 * same users, so their per-user rows pair up (the ranking cost of explanations).
 *
 * Training: for each user, the last training item is the positive and prompt.negatives items the
 * user never touched are negatives; a listwise softmax over the candidates' scores is minimised.
 * The K + 1 candidate sequences run through the frozen LM in one batch; the loss's gradient per
 * candidate becomes per-position weights of the packed-target forward (gpt2 target_w), the
 * soft-token term adds its hidden-state gradient, and the backward returns the gradients of every
 * soft input row, which flow into the projectors (and the evidence encoder). Users of a step are
 * split over the ranks; one allreduce of the parameter slab per step. The LM's weights never change.
 *
 * Evaluation (prompt.eval_users sampled users, the same users for every model): the stored sampled
 * candidate sets (uniN) and topN, full ranking with the LM re-ranking the aligner's top N. The
 * aligner (h . z) and SASRec are scored on the same users and sets. Latency: seconds per batch of
 * users with 1 + 19 candidates at several prompt lengths, median and p95, the models' batches
 * interleaved so their ratio is measured side by side.
 *
 * prompt.h5 (format "dynmm-prompt" v2): /prompt/<model>/weights and /curve (epoch, loss, ranking,
 * faithfulness, explanation loss, seconds), /columns, /<split>/<protocol>/<model|align|sasrec>
 * per-user rows (NaN outside the sample), /prompt/latency (L, then median and p95 per model).
 */
#include "align_inputs.h"
#include "align_io.h"
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
#include "../src/core/sha256.h"
#include "../src/core/shard.h"
#include "../src/core/timer.h"
#include "../src/eval/metrics.h"
#include "../src/explain/explain.h"
#include "../src/lm/lm.h"
#include "../src/nn/adam.h"
#include "../src/prompt/llmrec.h"

#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_FORMAT "dynmm-prompt"
#define PROMPT_MAXM 4

static const char USAGE[] =
    "usage: dynmm prompt CONFIG.cfg [--set group.key=value ...]\n\n"
    "Trains the soft-prompt projectors of the LLM recommender through the frozen LM of <run.dir>/lm.h5\n"
    "(dynmm lm) on the aligner's latents (<run.dir>/align.h5), with and without evidence tokens and the\n"
    "explanation losses (prompt.models), and evaluates them by likelihood ranking on the stored\n"
    "candidate sets and on the aligner's top N, beside the aligner and SASRec on the same users.\n"
    "Writes <run.dir>/prompt.h5 (per-user metrics, training curves, latency, weights). Checkpoints\n"
    "<run.dir>/ckpt_prompt_<model>.h5 after every epoch and on SIGTERM/SIGUSR1; rerun to resume.\n";

/* the explain.* keys of the evidence encoder and its losses (llm_explain trains here); the rest of
   explain.* belongs to the explain stage */
static const char *const prompt_config_groups[] = {"prompt", "explain.attr_temperature", "explain.faith_delta", "explain.hidden", "explain.k_attrs",
                                            "explain.k_items", "explain.k_users", "explain.modality", "explain.rationale_tokens",
                                            "explain.similarity", "explain.templates", "explain.tokens", "explain.w_expl",
                                            "explain.w_faith", "explain.width", "eval.ks", "eval.ties", "eval.splits", "eval.seed", "eval.pop_power", "split.protocol", NULL};

/* ---- data ---------------------------------------------------------------------------------- */

/* last n history items of user u for a split (role < split), newest last */
static int last_hist(const ev_split *s, size_t u, int n, int32_t *tmp, int32_t *out)
{
    size_t k = ev_history(s, u, tmp);
    size_t m = k < (size_t)n ? k : (size_t)n;
    memcpy(out, tmp + (k - m), m * sizeof *out);
    return (int)m;
}

/* users with >= 2 training items, every item each user touched (sorted: never a negative) */
typedef struct {
    size_t *tu, ntu;
    int64_t *soff;
    int32_t *sset;
} train_users;

static int train_users_make(const dm_dataset *d, const int8_t *roles, train_users *t)
{
    size_t nu = d->n_users;
    t->tu = malloc((nu + 1) * sizeof *t->tu);
    t->soff = calloc(nu + 1, sizeof *t->soff);
    t->sset = malloc((d->n_inter + 1) * sizeof *t->sset);
    t->ntu = 0;
    if (!t->tu || !t->soff || !t->sset) return DM_ERR(DM_ENOMEM, "out of memory");
    size_t q = 0;
    for (size_t u = 0; u < nu; u++) {
        size_t s0 = q, ntr = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            t->sset[q++] = d->item[j];
            ntr += roles[j] == DM_TRAIN;
        }
        qsort(t->sset + s0, q - s0, sizeof *t->sset, dm_cmp_i32);
        t->soff[u + 1] = (int64_t)q;
        if (ntr >= 2) t->tu[t->ntu++] = u;
    }
    return DM_OK;
}

static void train_users_free(train_users *t)
{
    free(t->tu);
    free(t->soff);
    free(t->sset);
}

/* htr (n_users, dz): the aligner's user latent from the SASRec state of train[:-1] (zero rows for
 * users outside t) */
static int training_latents(par_ctx *ctx, const char *cpath, const char *apath, const dm_dataset *d, const int8_t *roles,
                            const train_users *t, size_t dz, float *htr)
{
    sasrec sm;
    sasrec_acts sa;
    align_model am;
    align_acts aa;
    memset(&sm, 0, sizeof sm);
    memset(&sa, 0, sizeof sa);
    memset(&am, 0, sizeof am);
    memset(&aa, 0, sizeof aa);
    int rc = cf_sasrec_load(ctx, cpath, d->n_items, 256, &sm, &sa);
    if (!rc) rc = align_load(ctx, apath, 256, &am, &aa, NULL, NULL);
    int T = rc ? 1 : sm.cfg.T;
    size_t C = rc ? 1 : (size_t)sm.cfg.C;
    int32_t *seq = calloc((size_t)256 * (size_t)T, sizeof *seq), *tmp = malloc((d->n_inter + 1) * sizeof *tmp);
    float *rs = malloc((size_t)256 * C * sizeof *rs), *hb = malloc((size_t)256 * dz * sizeof *hb);
    if (!rc && (!seq || !tmp || !rs || !hb)) rc = DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t e0 = 0; !rc && e0 < t->ntu; e0 += 256) {
        int nb = (int)(t->ntu - e0 < 256 ? t->ntu - e0 : 256);
        memset(seq, 0, (size_t)nb * (size_t)T * sizeof *seq);
        for (int b = 0; b < nb; b++) {
            size_t u = t->tu[e0 + (size_t)b], n = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (roles[j] == DM_TRAIN) tmp[n++] = d->item[j];
            n--;
            size_t mm = n < (size_t)T ? n : (size_t)T;
            for (size_t j = 0; j < mm; j++) seq[(size_t)b * (size_t)T + (size_t)T - mm + j] = tmp[n - mm + j] + 1;
        }
        rc = sasrec_user_states(&sm, &sa, seq, nb, rs);
        if (!rc) rc = align_user_latents(&am, &aa, rs, nb, hb);
        for (int b = 0; !rc && b < nb; b++) memcpy(htr + t->tu[e0 + (size_t)b] * dz, hb + (size_t)b * dz, dz * sizeof *htr);
    }
    free(seq);
    free(tmp);
    free(rs);
    free(hb);
    sasrec_acts_free(&sa);
    sasrec_free(&sm);
    align_acts_free(&aa);
    align_free(&am);
    return par_agree(ctx, rc);
}

/* ---- checkpoints: <run.dir>/ckpt_prompt_<model>.h5 after every epoch and on SIGTERM/SIGUSR1 ---- */

#define PROMPT_CKPT_FORMAT "dynmm-prompt-ckpt"
static volatile sig_atomic_t g_stop;
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

typedef struct {
    long ep, step; /* the next step to take */
    double lsum[4], t_train;
} prompt_pos;

static int ckpt_write(par_ctx *ctx, const char *path, const pm *p, const prompt_pos *at, const double *curve, long epochs,
                      const char *hash)
{
    h5file f;
    DM_CALL(par_agree(ctx, h5_create(ctx, path, 0, 1 << 20, &f)));
    int rc = h5_write_provenance(&f, PROMPT_CKPT_FORMAT, 1, "prompt", NULL, hash);
    if (!rc) rc = h5_write_all(&f, "/w", H5_F32, p->nparams, 0, p->w);
    if (!rc) rc = h5_write_all(&f, "/adam_m", H5_F32, p->nparams, 0, p->am);
    if (!rc) rc = h5_write_all(&f, "/adam_v", H5_F32, p->nparams, 0, p->av);
    if (!rc) rc = h5_write_all(&f, "/curve", H5_F64, (size_t)epochs, 6, curve);
    double st[8] = {(double)at->ep, (double)at->step, (double)p->t, at->lsum[0], at->lsum[1], at->lsum[2], at->lsum[3], at->t_train};
    if (!rc) rc = h5_write_all(&f, "/state", H5_F64, 8, 0, st);
    rc = par_agree(ctx, rc);
    if (rc) {
        h5_discard(&f);
        return rc;
    }
    return h5_commit(&f);
}

static int ckpt_read(par_ctx *ctx, const char *path, pm *p, prompt_pos *at, double *curve, long epochs, const char *hash, int *found)
{
    h5file f;
    DM_CALL(h5_open_checkpoint(ctx, path, PROMPT_CKPT_FORMAT, hash, &f, found));
    if (!*found) return DM_OK;
    double st[8];
    int rc = h5_read_rows(&f, "/w", H5_F32, 0, p->nparams, p->w);
    if (!rc) rc = h5_read_rows(&f, "/adam_m", H5_F32, 0, p->nparams, p->am);
    if (!rc) rc = h5_read_rows(&f, "/adam_v", H5_F32, 0, p->nparams, p->av);
    if (!rc) rc = h5_read_rows(&f, "/curve", H5_F64, 0, (size_t)epochs, curve);
    if (!rc) rc = h5_read_rows(&f, "/state", H5_F64, 0, 8, st);
    h5_close(&f);
    DM_CALL(par_agree(ctx, rc));
    at->ep = (long)st[0];
    at->step = (long)st[1];
    p->t = (long)st[2];
    for (int k = 0; k < 4; k++) at->lsum[k] = st[3 + k];
    at->t_train = st[7];
    dm_log("  resuming from %s at epoch %ld, step %ld", path, at->ep + 1, at->step);
    return DM_OK;
}

/* Trains model p (curve: epochs rows of epoch, loss, ranking, faithfulness, explanation, seconds).
 * Every model sees the same users and negatives in the same order. Checkpoints after every epoch
 * and at the next step on SIGTERM/SIGUSR1; with run.resume a run continues from its checkpoint to
 * the parameters an uninterrupted run reaches (same rank count). */
static int train_model(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, pm *p, explain_src *src,
                       const float *htr, size_t dz, const train_users *t0, uint64_t seed, const char *name, const char *hash,
                       double *curve, double *t_train)
{
    size_t ni = d->n_items;
    long epochs = (long)dm_cfg_int(cfg, "prompt.epochs");
    int G = (int)dm_cfg_int(cfg, "prompt.batch");
    size_t ntu = t0->ntu, per_epoch = (size_t)dm_cfg_int(cfg, "prompt.train_users");
    if (per_epoch > ntu) per_epoch = ntu;
    long steps = (long)((per_epoch + (size_t)G - 1) / (size_t)G);
    size_t *tu = malloc((ntu + 1) * sizeof *tu);
    int32_t *tmp = malloc((d->n_inter + 1) * sizeof *tmp), *hist = malloc((size_t)(p->nh + 1) * sizeof *hist);
    int rc = !tu || !tmp || !hist ? DM_ERR(DM_ENOMEM, "out of memory") : DM_OK;
    if (tu) memcpy(tu, t0->tu, ntu * sizeof *tu);
    if (src) src->h = htr;
    int32_t cand[66];
    rc = par_agree(ctx, rc);
    if (!rc && epochs > 0)
        dm_log("  %s: %zu training users, %zu per epoch, %ld steps of %d users%s", name, ntu, per_epoch, steps, G,
               p->E ? "; evidence tokens and explanation losses" : "");
    *t_train = 0;
    char ckpath[4096], mhash[65];
    prompt_pos at = {0, 0, {0, 0, 0, 0}, 0};
    int found = 0;
    char ckname[128];
    snprintf(ckname, sizeof ckname, "ckpt_prompt_%s.h5", name);
    if (!rc) rc = cli_run_path(ctx, cfg, ckname, ckpath, sizeof ckpath);
    if (!rc) { /* the stage's settings and the model */
        char both[200];
        snprintf(both, sizeof both, "%s/%s", hash, name);
        dm_sha256_hex(both, strlen(both), mhash);
    }
    if (!rc && dm_cfg_bool(cfg, "run.resume")) rc = ckpt_read(ctx, ckpath, p, &at, curve, epochs, mhash, &found);
    rc = par_agree(ctx, rc);
    if (found) *t_train = at.t_train;
    struct sigaction sa, o1, o2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    g_stop = 0;
    sigaction(SIGTERM, &sa, &o1);
    sigaction(SIGUSR1, &sa, &o2);
    for (long ep = 0; ep < epochs && !rc; ep++) {
        double te = dm_wtime(), lsum[4] = {0, 0, 0, 0};
        /* the epoch's users: a seeded partial shuffle */
        dm_rng pr;
        dm_rng_seed(&pr, dm_rng_key(seed, 0xE9, (uint64_t)ep));
        for (size_t k = 0; k < per_epoch; k++) {
            size_t j = k + dm_rng_below(&pr, ntu - k), x = tu[k];
            tu[k] = tu[j];
            tu[j] = x;
        }
        if (found && ep < at.ep) continue; /* done before the checkpoint: its order replayed only */
        long s0 = 0;
        if (found && ep == at.ep) { /* the checkpoint holds the epoch's global sums so far: rank 0 carries them */
            s0 = at.step;
            if (ctx->rank == 0) memcpy(lsum, at.lsum, sizeof lsum);
            /* and its seconds so far: the training time beyond the finished epochs */
            double before = 0;
            for (long e = 0; e < ep; e++) before += curve[e * 6 + 5];
            te -= at.t_train - before;
            *t_train = before;
        }
        for (long s = s0; s < steps && !rc; s++) {
            if (s > s0) {
                int64_t stop = g_stop;
                rc = par_allreduce_max_i64(ctx, &stop, 1);
                if (!rc && stop) {
                    prompt_pos here = {ep, s, {lsum[0], lsum[1], lsum[2], lsum[3]}, *t_train + (dm_wtime() - te)};
                    rc = par_allreduce_sum_f64(ctx, here.lsum, 4);
                    if (!rc) rc = ckpt_write(ctx, ckpath, p, &here, curve, epochs, mhash);
                    if (!rc) {
                        rc = DM_ERR(DM_EIO, "%s: interrupted by a signal at epoch %ld, step %ld; checkpoint written to %s", name, ep + 1, s,
                                    ckpath);
                        DM_HINT("rerun the same command (run.resume = true) to continue from it");
                    }
                    break;
                }
            }
            size_t b0 = (size_t)s * (size_t)G, bn = per_epoch - b0 < (size_t)G ? per_epoch - b0 : (size_t)G, lo, hi;
            dm_shard_even(bn, ctx->size, ctx->rank, &lo, &hi);
            memset(p->g, 0, p->nparams * sizeof *p->g);
            for (size_t k = lo; k < hi && !rc; k++) {
                size_t u = tu[b0 + k];
                /* history: train items before the positive */
                size_t n = 0;
                for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                    if (roles[j] == DM_TRAIN) tmp[n++] = d->item[j];
                int32_t pos = tmp[n - 1];
                size_t m = n - 1 < (size_t)p->nh ? n - 1 : (size_t)p->nh;
                memcpy(hist, tmp + (n - 1 - m), m * sizeof *hist);
                pm_set_user(p, (int32_t)u, tmp, (int)(n - 1));
                cand[0] = pos;
                dm_rng rn;
                dm_rng_seed(&rn, dm_rng_key(seed ^ 0x4E, (uint64_t)(ep * steps + s), u));
                const int32_t *su = t0->sset + t0->soff[u];
                size_t ns = (size_t)(t0->soff[u + 1] - t0->soff[u]);
                for (int j = 1; j <= p->K; j++) {
                    int32_t y;
                    do y = (int32_t)dm_rng_below(&rn, ni);
                    while (dm_in_sorted_i32(su, ns, y));
                    cand[j] = y;
                }
                double l = 0;
                rc = pm_train_user(p, htr + (size_t)u * dz, hist, (int)m, cand, 1.0f / (float)bn, &l);
                lsum[0] += l;
                lsum[1] += p->last_rank;
                lsum[2] += p->last_faith;
                lsum[3] += p->last_expl;
            }
            rc = par_agree(ctx, rc);
            if (!rc) rc = par_allreduce_sum_f32(ctx, p->g, p->nparams);
            if (!rc) {
                p->t++;
                const nn_adam o = {(float)dm_cfg_float(cfg, "prompt.lr"), 0.9f, 0.999f, 1e-8f,
                                   (float)dm_cfg_float(cfg, "prompt.weight_decay"), NN_ADAM_DECOUPLED};
                nn_adam_step(&o, p->t, p->w, p->g, p->am, p->av, p->nparams);
            }
        }
        if (rc) break;
        par_allreduce_sum_f64(ctx, lsum, 4);
        double dt = dm_wtime() - te;
        *t_train += dt;
        double *cv = curve + ep * 6;
        cv[0] = (double)(ep + 1);
        for (int k = 0; k < 4; k++) cv[1 + k] = lsum[k] / (double)per_epoch;
        cv[5] = dt;
        if (p->E)
            dm_log("  %s epoch %ld  loss %.4f (listwise %.4f, uniform %.4f; faithfulness %.4f; explanation %.4f)  %.1fs, %.2f users/s",
                   name, ep + 1, cv[1], cv[2], log((double)p->K + 1), cv[3], cv[4], dt, (double)per_epoch / dt);
        else
            dm_log("  %s epoch %ld  listwise loss %.4f (uniform over %d candidates: %.4f)  %.1fs, %.2f users/s", name, ep + 1,
                   cv[1], p->K + 1, log((double)p->K + 1), dt, (double)per_epoch / dt);
        prompt_pos next = {ep + 1, 0, {0, 0, 0, 0}, *t_train};
        rc = ckpt_write(ctx, ckpath, p, &next, curve, epochs, mhash);
    }
    sigaction(SIGTERM, &o1, NULL);
    sigaction(SIGUSR1, &o2, NULL);
    free(tu);
    free(tmp);
    free(hist);
    return par_agree(ctx, rc);
}

static int check_prompt(const dm_cfg *cfg)
{
    size_t nm = dm_cfg_len(cfg, "prompt.models");
    if (nm == 0 || nm > 2) return DM_ERR(DM_ECONFIG, "prompt.models: give one or both of \"llm\" and \"llm_explain\"");
    for (size_t k = 0; k < nm; k++) {
        const char *a = dm_cfg_str_at(cfg, "prompt.models", k);
        if (strcmp(a, "llm") && strcmp(a, "llm_explain"))
            return DM_ERR(DM_ECONFIG, "prompt.models: unknown model '%s'; expected llm or llm_explain", a);
        for (size_t j = 0; j < k; j++)
            if (!strcmp(dm_cfg_str_at(cfg, "prompt.models", j), a)) return DM_ERR(DM_ECONFIG, "prompt.models: '%s' is listed twice", a);
    }
    for (size_t k = 0; k < dm_cfg_len(cfg, "prompt.protocols"); k++) {
        const char *pn = dm_cfg_str_at(cfg, "prompt.protocols", k);
        char kind;
        size_t nn;
        if (!strncmp(pn, "top", 3) && atoi(pn + 3) > 0) continue;
        DM_CALL(cands_parse(pn, &kind, &nn));
        if (kind == 0) return DM_ERR(DM_ECONFIG, "prompt.protocols: 'full' is not feasible for the LM; use topN (re-ranking the aligner's top N)");
    }
    return DM_OK;
}

static int stage_prompt(stage_run *sr)
{
    par_ctx *ctx = sr->ctx;
    const dm_cfg *cfg = sr->cfg;
    const char *dpath = stage_input(sr, "dataset.h5"), *cpath = stage_input(sr, "cf.h5"), *apath = stage_input(sr, "align.h5"),
               *lpath = stage_input(sr, "lm.h5"), *hash = sr->hash;
    DM_CALL(par_agree(ctx, check_prompt(cfg)));
    /* the models */
    size_t nm = dm_cfg_len(cfg, "prompt.models");
    const char *mname[PROMPT_MAXM];
    int mexpl[PROMPT_MAXM];
    for (size_t k = 0; k < nm; k++) {
        mname[k] = dm_cfg_str_at(cfg, "prompt.models", k);
        mexpl[k] = !strcmp(mname[k], "llm_explain");
    }
    /* where the LM is */
    char *lmdir = NULL;
    {
        h5file f;
        int rc = h5_open(ctx, lpath, &f);
        if (rc) {
            DM_HINT("run the lm stage first (dynmm lm, or add it to run.stages)");
            return par_agree(ctx, rc);
        }
        rc = h5_get_attr_str(&f, "/", "model_dir", &lmdir);
        h5_close(&f);
        DM_CALL(par_agree(ctx, rc));
    }
    dm_dataset d;
    int rc = ds_read(ctx, dpath, &d);
    if (rc) {
        free(lmdir);
        return rc;
    }
    const int8_t *roles = NULL;
    rc = par_agree(ctx, cands_split(cfg, &d, &roles));
    /* the sampled candidate sets, drawn exactly as `dynmm eval` draws them (all users: the sample
       of users is spread over the ranks) */
    if (!rc) rc = cands_draw_key(ctx, cfg, &d, "prompt.protocols", 0, d.n_users);
    size_t nu = d.n_users, ni = d.n_items;
    float *zb = NULL, *hv = NULL, *ht = NULL, *e_cf = NULL, *sv = NULL, *st = NULL, *htr = NULL;
    size_t r, dz = 0, c, C = 0;
    if (!rc) rc = h5_read_file_f32(ctx, apath, "/align/z_base", &zb, &r, &dz);
    if (!rc) rc = h5_read_file_f32(ctx, apath, "/align/h_valid", &hv, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, apath, "/align/h_test", &ht, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/e_cf", &e_cf, &r, &C);
    if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_valid", &sv, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, cpath, "/sasrec/state_test", &st, &r, &c);
    long long sd = dm_cfg_int(cfg, "prompt.seed");
    uint64_t seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x9A0, 0);
    /* protocols */
    size_t npr = dm_cfg_len(cfg, "prompt.protocols");
    int maxc = 20;
    for (size_t k = 0; k < npr && !rc; k++) {
        const char *pn = dm_cfg_str_at(cfg, "prompt.protocols", k);
        int v = 0;
        if (!strncmp(pn, "top", 3) && (v = atoi(pn + 3)) > 0) {
            if (v > maxc) maxc = v;
        } else {
            char kind;
            size_t nn;
            rc = cands_parse(pn, &kind, &nn);
            if (!rc && (int)nn + 1 > maxc) maxc = (int)nn + 1;
            /* a split can give a user several targets (temporal, given): all of them compete with
               the N negatives (up to the 64 the evaluation keeps) */
            int mt = 1;
            for (size_t u = 0; !rc && u < d.n_users; u++) {
                int t = 0;
                for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++) t += roles[j] == DM_VALID || roles[j] == DM_TEST;
                if (t > mt) mt = t;
            }
            if (mt > 64) mt = 64;
            if (!rc && (int)nn + mt > maxc) maxc = (int)nn + mt;
        }
    }
    rc = par_agree(ctx, rc);
    train_users tus;
    memset(&tus, 0, sizeof tus);
    explain_src src;
    memset(&src, 0, sizeof src);
    int have_src = 0, any_expl = 0;
    for (size_t k = 0; k < nm; k++) any_expl |= mexpl[k];
    long epochs = (long)dm_cfg_int(cfg, "prompt.epochs");
    if (!rc) rc = par_agree(ctx, train_users_make(&d, roles, &tus));
    if (!rc) {
        htr = calloc(nu * dz + 1, sizeof *htr);
        rc = htr ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory");
        rc = par_agree(ctx, rc);
    }
    if (!rc && (epochs > 0 || any_expl)) rc = training_latents(ctx, cpath, apath, &d, roles, &tus, dz, htr);
    float *zmod = NULL;
    uint8_t *zpres = NULL;
    if (!rc && any_expl) {
        rc = par_agree(ctx, explain_src_init(&src, cfg, &d, roles, htr, zb, dz));
        have_src = !rc;
        /* the modality that agrees most with the user: per-modality latents of the aligner */
        if (!rc && src.modal) rc = ai_modal_latents(ctx, apath, ni, dz, &zmod, &zpres);
        if (!rc && src.modal) {
            src.n_modal = ALIGN_K;
            src.zm = zmod;
            src.present = zpres;
        }
    }
    pm P[PROMPT_MAXM];
    memset(P, 0, sizeof P);
    double *curve[PROMPT_MAXM] = {0}, t_train[PROMPT_MAXM] = {0};
    for (size_t k = 0; k < nm && !rc; k++) {
        rc = par_agree(ctx, pm_init(cfg, lmdir, &d, zb, dz, maxc + 1, seed, mexpl[k] ? &src : NULL, &P[k]));
        if (!rc && k == 0)
            dm_log("  prompt: LM %s (%d layers, width %d, vocab %d); L=%d user tokens, %d history items, titles <= %d tokens",
                   lmdir, P[k].lm.model.cfg.num_layers, P[k].C, P[k].V, P[k].L, P[k].nh, P[k].mt);
        if (!rc) {
            curve[k] = calloc((size_t)(epochs > 0 ? epochs : 1) * 6, sizeof *curve[k]);
            rc = par_agree(ctx, curve[k] ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
        }
        if (!rc) rc = train_model(ctx, cfg, &d, roles, &P[k], have_src ? &src : NULL, htr, dz, &tus, seed, mname[k], hash, curve[k],
                                       &t_train[k]);
    }
    if (rc) goto early;
    {
        int32_t *tmp = malloc((d.n_inter + 1) * sizeof *tmp), *hist = malloc((size_t)(P[0].nh + 1) * sizeof *hist);
        int32_t cand[PM_MAX_CAND + 8];
        const int nmod = (int)nm + 2; /* the LLM models, then align, sasrec */
        /* ---- evaluation on a seeded sample of users ---- */
        metrics_spec spec;
        metrics_ties ties;
        size_t nk = dm_cfg_len(cfg, "eval.ks");
        int64_t ks[64];
        for (size_t k = 0; k < nk && k < 64; k++) ks[k] = dm_cfg_int_at(cfg, "eval.ks", k);
        int have_spec = 0;
        if (!rc) rc = metrics_ties_parse(dm_cfg_str(cfg, "eval.ties"), &ties);
        if (!rc) rc = metrics_spec_init(&spec, ks, nk < 64 ? nk : 64, ties);
        have_spec = !rc;
        h5file f;
        memset(&f, 0, sizeof f);
        f.id = -1;
        if (!rc) rc = stage_output_create(sr, PROMPT_FORMAT, 2, &f);
        if (!rc) {
            dm_strtab cols = {0};
            char nmb[32];
            for (size_t k = 0; k < spec.ncols && !rc; k++) {
                metrics_col_name(&spec, k, nmb, sizeof nmb);
                rc = dm_strtab_add(&cols, nmb, strlen(nmb));
            }
            if (!rc) rc = h5_write_strtab(&f, "/columns", ctx->rank == 0 ? &cols : &(dm_strtab){0}, ctx->rank == 0 ? 0 : spec.ncols, spec.ncols);
            dm_strtab_free(&cols);
        }
        size_t lo, hi;
        dm_shard_even(nu, ctx->size, ctx->rank, &lo, &hi);
        size_t ncl = have_spec ? spec.ncols : 1;
        double *rows[PROMPT_MAXM + 2] = {0};
        for (int k = 0; k < nmod; k++) rows[k] = malloc((hi - lo + 1) * ncl * sizeof(double));
        float *bs = malloc(ni * sizeof *bs + 4), *ss = malloc(ni * sizeof *ss + 4), *lsc = malloc(ni * sizeof *lsc + 4);
        double *lmsc = malloc((size_t)(maxc + 2) * sizeof *lmsc);
        float *fsc = malloc((size_t)(maxc + 2) * sizeof *fsc);
        uint8_t *pick = calloc(nu + 1, 1);
        metrics_ws ws;
        memset(&ws, 0, sizeof ws);
        int okb = tmp && hist && bs && ss && lsc && lmsc && fsc && pick;
        for (int k = 0; k < nmod; k++) okb = okb && rows[k];
        if (!rc && !okb) rc = DM_ERR(DM_ENOMEM, "out of memory");
        if (!rc) rc = metrics_ws_init(&ws, ni);
        int eu = (int)dm_cfg_int(cfg, "prompt.eval_users");
        size_t nsp = dm_cfg_len(cfg, "eval.splits");
        for (size_t si = 0; si < nsp && !rc; si++) {
            const char *spn = dm_cfg_str_at(cfg, "eval.splits", si);
            int split = !strcmp(spn, "valid") ? DM_VALID : DM_TEST;
            ev_split s = {&d, roles, split};
            const float *H = split == DM_VALID ? hv : ht, *SS = split == DM_VALID ? sv : st;
            if (have_src) src.h = H;
            /* the sample: the eu users with a target whose keys (seed, split, user) are smallest, so
               every rank count and every model sees the same users */
            memset(pick, 0, nu);
            {
                uint64_t *key = malloc((nu + 1) * sizeof *key);
                size_t nt = 0;
                for (size_t u = 0; key && u < nu; u++) {
                    int has = 0;
                    for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++) has |= roles[j] == split;
                    if (has) key[nt++] = dm_rng_key(seed, 0x5A3 + (uint64_t)split, u);
                }
                uint64_t thr = UINT64_MAX;
                if (key && (size_t)eu < nt) {
                    qsort(key, nt, sizeof *key, dm_cmp_u64);
                    thr = key[eu - 1];
                }
                for (size_t u = 0; key && u < nu; u++) {
                    int has = 0;
                    for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++) has |= roles[j] == split;
                    if (has && dm_rng_key(seed, 0x5A3 + (uint64_t)split, u) <= thr) pick[u] = 1;
                }
                if (!key) rc = DM_ERR(DM_ENOMEM, "out of memory");
                free(key);
            }
            for (size_t pi = 0; pi < npr && !rc; pi++) {
                const char *pn = dm_cfg_str_at(cfg, "prompt.protocols", pi);
                int topn = !strncmp(pn, "top", 3) ? atoi(pn + 3) : 0;
                const dm_cand *cs = NULL;
                for (int k = 0; k < d.n_cand; k++)
                    if (!strcmp(d.cand[k].name, pn)) cs = &d.cand[k];
                if (!topn && !cs) {
                    rc = DM_ERR(DM_EINTERNAL, "prompt.protocols: '%s' has no candidate sets drawn", pn);
                    break;
                }
                double tp = dm_wtime(), secs[PROMPT_MAXM] = {0};
                for (size_t u = lo; u < hi && !rc; u++) {
                    for (int k = 0; k < nmod; k++)
                        for (size_t q = 0; q < ncl; q++) rows[k][(u - lo) * ncl + q] = NAN;
                    if (!pick[u] || (cs && cs->rows[u * cs->n] < 0)) continue;
                    int32_t tg[64];
                    size_t ntg = 0;
                    for (int64_t j = d.user_off[u]; j < d.user_off[u + 1] && ntg < 64; j++)
                        if (roles[j] == split) tg[ntg++] = d.item[j];
                    int n = last_hist(&s, u, P[0].nh, tmp, hist);
                    size_t nhall = ev_history(&s, u, tmp);
                    /* base scores: the aligner and SASRec */
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)ni, (int)dz, 1.0f, zb, (int)dz, H + u * dz, 1, 0.0f, bs, 1);
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)ni, (int)C, 1.0f, e_cf, (int)C, SS + u * C, 1, 0.0f, ss, 1);
                    int nc;
                    if (cs) {
                        nc = (int)(ntg + cs->n);
                        for (size_t k = 0; k < ntg; k++) cand[k] = tg[k];
                        for (size_t k = 0; k < cs->n; k++) cand[ntg + k] = cs->rows[u * cs->n + k];
                    } else {
                        /* the aligner's top N outside the history, re-ranked by the LM above the rest */
                        for (size_t k = 0; k < nhall; k++) ws.mark[tmp[k]] = 1;
                        nc = dm_top_k_f32(bs, ni, ws.mark, topn, cand);
                        for (size_t k = 0; k < nhall; k++) ws.mark[tmp[k]] = 0;
                    }
                    for (int mi = 0; mi < nmod && !rc; mi++) {
                        double *a = rows[mi] + (u - lo) * ncl;
                        const float *base = mi == (int)nm ? bs : ss;
                        if (mi < (int)nm) {
                            double tm = dm_wtime();
                            pm_set_user(&P[mi], (int32_t)u, tmp, (int)nhall);
                            rc = pm_score_user(&P[mi], H + u * dz, hist, n, cand, nc, P[mi].L, lmsc);
                            secs[mi] += dm_wtime() - tm;
                            if (rc) break;
                        }
                        if (cs) {
                            for (int k = 0; k < nc; k++) fsc[k] = mi < (int)nm ? (float)lmsc[k] : base[cand[k]];
                            rc = ntg == 1 ? metrics_sampled(&spec, fsc[0], fsc + 1, cs->n, a)
                                          : metrics_sampled_multi(&spec, &ws, fsc, ntg, fsc + ntg, cs->n, a);
                        } else if (mi < (int)nm) {
                            memcpy(lsc, bs, ni * sizeof *lsc);
                            for (int k = 0; k < nc; k++) lsc[cand[k]] = 1e6f + (float)lmsc[k];
                            rc = metrics_full(&spec, &ws, lsc, ni, tg, ntg, tmp, nhall, a);
                        } else {
                            rc = metrics_full(&spec, &ws, base, ni, tg, ntg, tmp, nhall, a);
                        }
                    }
                }
                rc = par_agree(ctx, rc);
                double wall = dm_wtime() - tp;
                double mean[256];
                int64_t cnt = 0;
                size_t c1 = 0, c10 = 0, cn10 = 0;
                if (have_spec) {
                    c1 = metrics_col(&spec, METRICS_HIT, 0), c10 = c1, cn10 = metrics_col(&spec, METRICS_NDCG, 0);
                    for (size_t k = 0; k < nk; k++)
                        if (ks[k] == 10) {
                            c10 = metrics_col(&spec, METRICS_HIT, k);
                            cn10 = metrics_col(&spec, METRICS_NDCG, k);
                        }
                }
                for (int k = 0; k < nmod && !rc; k++) {
                    const char *mn = k < (int)nm ? mname[k] : k == (int)nm ? "align" : "sasrec";
                    char name[256];
                    snprintf(name, sizeof name, "/%s/%s/%s", spn, pn, mn);
                    rc = ev_mean(ctx, &spec, rows[k], hi - lo, mean, &cnt);
                    if (!rc) rc = h5_write_rows(&f, name, H5_F64, nu, spec.ncols, lo, hi - lo, rows[k]);
                    if (!rc) rc = h5_attr_f64s(&f, name, "mean", mean, spec.ncols);
                    if (!rc) rc = h5_attr_i64(&f, name, "users", cnt);
                    if (!rc) {
                        double sec = k < (int)nm ? secs[k] : 0;
                        if (k < (int)nm) par_allreduce_max_f64(ctx, &sec, 1);
                        dm_log("  %-5s %-6s %-11s users %5lld  hit@%lld %.4f  hit@10 %.4f  ndcg@10 %.4f%s", spn, pn, mn, (long long)cnt,
                               (long long)ks[0], mean[c1], mean[c10], mean[cn10], "");
                        if (k < (int)nm) dm_log("        (%s scoring %.1fs of %.1fs)", mn, sec, wall);
                    }
                }
            }
        }
        /* ---- latency: seconds per batch of users, 1 + 19 candidates, at several prompt lengths; the
           models' batches interleaved so their ratio is measured side by side ---- */
        size_t nlat = dm_cfg_len(cfg, "prompt.latency_tokens");
        int lb = (int)dm_cfg_int(cfg, "prompt.latency_batch");
        const dm_cand *c19 = NULL;
        for (int k = 0; k < d.n_cand; k++)
            if (d.cand[k].n == 19) c19 = &d.cand[k];
        double lat[16][PROMPT_MAXM][2];
        if (have_src) src.h = ht;
        for (size_t li = 0; li < nlat && li < 16 && !rc && c19; li++) {
            int L = (int)dm_cfg_int_at(cfg, "prompt.latency_tokens", li);
            if (L > P[0].L) L = P[0].L;
            double tb[PROMPT_MAXM][32];
            int nbat = 0;
            ev_split s = {&d, roles, DM_TEST};
            size_t ustart = 0;
            for (int bi = 0; bi < 9 && !rc; bi++) {
                size_t uend = ustart;
                for (size_t mi = 0; mi < nm && !rc; mi++) {
                    double tb0 = dm_wtime();
                    size_t u = ustart;
                    for (int k = 0; k < lb && !rc; k++) {
                        while (u < nu && (c19->rows[u * 19] < 0)) u++;
                        if (u >= nu) u = 0;
                        int32_t tgt = -1;
                        for (int64_t j = d.user_off[u]; j < d.user_off[u + 1]; j++)
                            if (roles[j] == DM_TEST) tgt = d.item[j];
                        int n = last_hist(&s, u, P[mi].nh, tmp, hist);
                        size_t nhall = ev_history(&s, u, tmp);
                        cand[0] = tgt >= 0 ? tgt : 0;
                        for (int q2 = 0; q2 < 19; q2++) cand[1 + q2] = c19->rows[u * 19 + (size_t)q2];
                        pm_set_user(&P[mi], (int32_t)u, tmp, (int)nhall);
                        rc = pm_score_user(&P[mi], ht + u * dz, hist, n, cand, 20, L, lmsc);
                        u++;
                    }
                    tb[mi][nbat] = dm_wtime() - tb0;
                    uend = u;
                }
                ustart = uend;
                nbat++;
            }
            for (size_t mi = 0; mi < nm; mi++) {
                /* median and p95 of the batches after the first (warm-up) */
                double *t = tb[mi];
                for (int a1 = 1; a1 < nbat; a1++)
                    for (int b1 = a1 + 1; b1 < nbat; b1++)
                        if (t[b1] < t[a1]) {
                            double x = t[a1];
                            t[a1] = t[b1];
                            t[b1] = x;
                        }
                int m1 = nbat - 1;
                lat[li][mi][0] = m1 > 0 ? t[1 + m1 / 2] : NAN;
                lat[li][mi][1] = m1 > 0 ? t[1 + (int)floor(0.95 * (m1 - 1))] : NAN;
                par_allreduce_max_f64(ctx, lat[li][mi], 2);
            }
            if (nm == 2)
                dm_log("  latency L=%3d: %s median %.3fs (p95 %.3fs), %s median %.3fs (p95 %.3fs): %+.1f%% per batch of %d users x 20 candidates",
                       L, mname[0], lat[li][0][0], lat[li][0][1], mname[1], lat[li][1][0], lat[li][1][1],
                       100.0 * (lat[li][1][0] / lat[li][0][0] - 1.0), lb);
            else
                dm_log("  latency L=%3d: %s median %.3fs, p95 %.3fs per batch of %d users x 20 candidates", L, mname[0], lat[li][0][0],
                       lat[li][0][1], lb);
        }
        if (!rc && c19 && nlat) {
            double buf[16 * (1 + 2 * PROMPT_MAXM)];
            size_t nl = nlat < 16 ? nlat : 16, w = 1 + 2 * nm;
            for (size_t li = 0; li < nl; li++) {
                buf[li * w] = (double)dm_cfg_int_at(cfg, "prompt.latency_tokens", li);
                for (size_t mi = 0; mi < nm; mi++) {
                    buf[li * w + 1 + 2 * mi] = lat[li][mi][0];
                    buf[li * w + 2 + 2 * mi] = lat[li][mi][1];
                }
            }
            char cols[512] = "prompt tokens L";
            for (size_t mi = 0; mi < nm; mi++) {
                size_t l = strlen(cols);
                snprintf(cols + l, sizeof cols - l, ", %s median seconds per batch, %s p95 seconds per batch", mname[mi], mname[mi]);
            }
            rc = h5_write_all(&f, "/prompt/latency", H5_F64, nl, w, buf);
            if (!rc) rc = h5_attr_str(&f, "/prompt/latency", "columns", cols);
            if (!rc) rc = h5_attr_i64(&f, "/prompt/latency", "batch_users", lb);
            if (!rc) rc = h5_attr_i64(&f, "/prompt/latency", "candidates", 20);
        }
        for (size_t mi = 0; mi < nm && !rc; mi++) {
            char g[256];
            snprintf(g, sizeof g, "/prompt/%s/weights", mname[mi]);
            rc = h5_write_all(&f, g, H5_F32, P[mi].nparams, 0, P[mi].w);
            if (!rc && epochs > 0) {
                snprintf(g, sizeof g, "/prompt/%s/curve", mname[mi]);
                rc = h5_write_all(&f, g, H5_F64, (size_t)epochs, 6, curve[mi]);
                if (!rc) rc = h5_attr_str(&f, g, "columns", "epoch, loss, listwise, faithfulness, explanation, seconds");
            }
            snprintf(g, sizeof g, "/prompt/%s", mname[mi]);
            if (!rc) rc = h5_attr_f64(&f, g, "train_seconds", t_train[mi]);
            if (!rc) rc = h5_attr_i64(&f, g, "evidence_tokens", P[mi].E);
        }
        if (!rc) rc = h5_attr_i64(&f, "/prompt", "user_tokens", P[0].L);
        if (!rc) rc = h5_attr_i64(&f, "/prompt", "history", P[0].nh);
        if (!rc) rc = h5_attr_i64(&f, "/prompt", "title_tokens", P[0].mt);
        if (!rc) rc = h5_attr_i64(&f, "/prompt", "hidden", (int64_t)dm_cfg_int(cfg, "prompt.hidden"));
        if (!rc) rc = h5_attr_str(&f, "/prompt", "lm_dir", lmdir);
        rc = stage_output_finish(sr, &f, rc);
        /* the training checkpoints served their purpose */
        for (size_t mi = 0; !rc && mi < nm; mi++) {
            char ckname[128], ck[4096];
            snprintf(ckname, sizeof ckname, "ckpt_prompt_%s.h5", mname[mi]);
            rc = cli_run_path(ctx, cfg, ckname, ck, sizeof ck); /* collective */
            if (!rc && ctx->rank == 0) unlink(ck);
        }
        if (have_spec) metrics_spec_free(&spec);
        metrics_ws_free(&ws);
        for (int k = 0; k < nmod; k++) free(rows[k]);
        free(bs);
        free(ss);
        free(lsc);
        free(lmsc);
        free(fsc);
        free(pick);
        free(tmp);
        free(hist);
    }
early:
    for (size_t k = 0; k < nm; k++) {
        pm_free(&P[k]);
        free(curve[k]);
    }
    if (have_src) explain_src_free(&src);
    free(zmod);
    free(zpres);
    train_users_free(&tus);
    free(lmdir);
    free(zb);
    free(hv);
    free(ht);
    free(htr);
    free(e_cf);
    free(sv);
    free(st);
    dm_dataset_free(&d);
    return par_agree(ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_prompt_def = {
    .name = "prompt",
    .output = "prompt.h5",
    .inputs = {"dataset.h5", "cf.h5", "align.h5", "lm.h5", NULL},
    .groups = prompt_config_groups,
    .uses = NULL,
    .check = check_prompt,
    .run = stage_prompt,
    .prepare = NULL,
    .summary = "train the soft-prompt projectors of the LLM recommender through the frozen LM; rank by likelihood",
    .usage = USAGE,
};
