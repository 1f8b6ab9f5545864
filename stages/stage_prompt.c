/* stage_prompt.c: `dynmm prompt`: the LLM recommender (the alignment-based baseline of the method,
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
 * reuses it (lm_cache_score_mixed).
 *
 * Models (prompt.models): `llm` is the above; `llm_head` (src/prompt/llmhead.h) runs the user's
 * prompt once and scores the whole catalogue from the LM's last hidden state projected into the
 * aligner's item space, trained with the full softmax over the catalogue on every training user
 * (prompt.head_*), early-stopped on the full-ranking NDCG@10 of prompt.valid_users validation users
 * (the untrained head, which ranks exactly as the aligner, included: its best epoch is kept);
 * `llm_explain` adds evidence: the user's (neighbour users, history items, attribute profile) as
 * explain.user_tokens tokens in the prompt, and each candidate's (the evidence of (u, c)) on the
 * item-head path or as explain.item_tokens tokens before its title, and trains with the
 * faithfulness and explanation losses (src/prompt/llmrec.h). Both are trained on the same users and negatives and evaluated on the
 * same users, so their per-user rows pair up (the ranking cost of explanations).
 *
 * Training: for each user, the last training item is the positive and prompt.negatives items the
 * user never touched are negatives; a listwise softmax over the candidates' scores is minimised.
 * The K + 1 candidate sequences run through the frozen LM in one batch; the loss's gradient per
 * candidate becomes per-position weights of the packed-target forward (lm target weights), the
 * soft-token term adds its hidden-state gradient, and the backward returns the gradients of every
 * soft input row, which flow into the projectors (and the evidence encoder). Users of a step are
 * split over the ranks; one allreduce of the parameter slab per step. The LM's weights never change.
 * With prompt.latents = "stream" the test split is the last streaming window on the latents the
 * stream stage served there (stream.h5 /serve), every model also scored on the static ones
 * (MODEL@static); prompt.train_latents = "stream" (or "stream_static") trains on the window before
 * it instead of the training split, on the latents served there (/serve_prev; the static ones).
 *
 * Evaluation (prompt.eval_users sampled users, the same users for every model): the stored sampled
 * candidate sets (uniN) and topN, full ranking with the LM re-ranking the aligner's top N. The
 * aligner (h . z) and SASRec are scored on the same users and sets. Latency: seconds per batch of
 * users with 1 + 19 candidates at several prompt lengths, median and p95, the models' batches
 * interleaved so their ratio is measured side by side.
 *
 * The model maths (projectors, prompt layout, scoring, the listwise step, the training users,
 * their epoch order and negatives) live in src/prompt/llmrec.h; this file shares the work out
 * among the ranks, checkpoints and writes prompt.h5. The stage body is a table of contents
 * (stage_prompt): prompt_load, prompt_setup, per model prompt_train (per step prompt_step), then
 * prompt_open, per split prompt_sample and per protocol prompt_score_protocol (per user
 * prompt_score_user), prompt_latency, prompt_write and prompt_free. Every buffer lives in one
 * workspace (prompt_ws), allocated once by prompt_setup.
 *
 * prompt.h5 (format "dynmm-prompt" v2): /prompt/<model>/weights and /curve (epoch, loss, ranking,
 * faithfulness, explanation loss, seconds), /columns, /<split>/<protocol>/<model|align|sasrec>
 * per-user rows (NaN outside the sample), /prompt/latency (L, then median and p95 per model).
 */
#include "align_inputs.h"
#include "align_io.h"
#include "cands.h"
#include "cf_sasrec.h"
#include "ckpt.h"
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
#include "../src/prompt/llmhead.h"
#include "../src/prompt/llmrec.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_FORMAT "dynmm-prompt"
#define PROMPT_MAXM 8
#define PROMPT_MAXLAT 16   /* prompt lengths measured for latency, at most */
#define PROMPT_LAT_BATCHES 9 /* latency batches per model and length, the first a warm-up */

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
static const char *const prompt_config_groups[] = {"prompt", "lm.precision", "lm.train_precision", "explain.attr_temperature", "explain.faith_delta", "explain.hidden", "explain.k_attrs",
                                            "explain.item_tokens", "explain.k_items", "explain.k_users", "explain.latency_per_candidate",
                                            "explain.modality", "explain.rationale_tokens", "explain.similarity", "explain.templates",
                                            "explain.tokens", "explain.user_tokens", "explain.w_expl",
                                            "explain.w_faith", "explain.w_faith_elements", "explain.width", "eval.ks", "eval.ties", "eval.splits", "eval.seed", "eval.pop_power", "split.protocol", NULL};

/* One model's training run: where it stands and where it checkpoints. */
typedef struct {
    long ep, step; /* the next step to take */
    double lsum[4], t_train;
} prompt_pos;

#define PROMPT_STATE 11 /* the doubles of a checkpoint's /state */

typedef struct {
    size_t k;                   /* the model */
    pm *p;
    const char *name;
    double *curve;              /* (epochs, 6) epoch, loss, listwise, faithfulness, explanation, seconds */
    double *t_train;            /* training seconds so far */
    size_t n_ex;                /* its training examples: the users, or an item head's w->nex */
    int ex;                     /* 1: the examples are w->exu/exb/hex/gex */
    size_t per_epoch;           /* examples per epoch */
    long epochs;                /* epochs at most */
    float lr, warmup;           /* peak learning rate, warm-up steps */
    float mix_lr;               /* llm_head: the peak rate of the head's residual weights */
    float *best;                /* llm_head: (nparams) the weights of the best validation epoch */
    double *valid;              /* llm_head: (epochs + 1) validation NDCG@10, untrained first; NaN not run */
    long steps;                 /* steps per epoch */
    int G;                      /* users per step */
    nn_adam opt;
    ckpt ck;                    /* <run.dir>/ckpt_prompt_<model>.h5 */
    char hash[65];              /* its stage hash: the stage's and the model's */
    prompt_pos at;              /* where the checkpoint stood (found) */
    int found;
    double te;                  /* the epoch's start (shifted back by the seconds of a resumed epoch) */
    double lsum[4];             /* the epoch's loss sums (this rank's; rank 0 carries a resumed epoch's) */
    double vbest;               /* llm_head: the best validation NDCG@10 so far, */
    long vbest_ep, vstall;      /* its epoch (0 = untrained) and the epochs since */
} prompt_run;

/* The stage's workspace: the inputs, the models, the training and evaluation scratch and the
 * results. prompt_setup allocates it once; prompt_free releases everything (also after a
 * failure). Shapes: nu users, ni items, dz the aligner's latent width, C the SASRec width, this
 * rank's users [lo, hi), ncl metric columns, maxc candidates of one user at most. */
typedef struct {
    stage_run *sr;
    par_ctx *ctx;
    const dm_cfg *cfg;
    const char *dpath, *cpath, *apath, *lpath;
    size_t nm;                  /* the models of prompt.models */
    const char *mname[PROMPT_MAXM];
    int mexpl[PROMPT_MAXM];     /* llm_explain: evidence tokens and the explanation losses */
    int mhead[PROMPT_MAXM];     /* llm_head, latent_head: the item head */
    int msel[PROMPT_MAXM];      /* validated after every epoch, the best epoch kept: the heads, and with
                                   prompt.early_stop the likelihood models */
    int mnolm[PROMPT_MAXM];     /* latent_head: the item head without the LM */
    long mepochs[PROMPT_MAXM];  /* each model's epochs at most (prompt.epochs, prompt.head_epochs) */
    unsigned mdrop[PROMPT_MAXM]; /* the modalities its item latents go without (bit k = ALIGN_CF..) */
    int mallm[PROMPT_MAXM];     /* allmrec: the A-LLMRec-style baseline */
    float *zk[PROMPT_MAXM];     /* (ni, dz) its item latents: zb, or the aligner's without mdrop */
    int zown[PROMPT_MAXM];      /* zk[k] is its own allocation */
    uint64_t seed;              /* prompt.seed, or derived from run.seed */
    /* ---- inputs (prompt_load) ---- */
    char *lmdir;                /* the LM of lm.h5 */
    dm_dataset d;
    int have_d;
    const int8_t *roles;        /* (n_inter) split roles */
    size_t nu, ni, dz, C;
    float *zb;                  /* (ni, dz) z_base */
    float *hv, *ht;             /* (nu, dz) the aligner's user latents for valid, test */
    float *e_cf;                /* (ni, C) the SASRec item table */
    float *sv, *st;             /* (nu, C) SASRec states for valid, test */
    /* ---- models (prompt_setup) ---- */
    int maxc;
    pm_train_set ts;            /* the training users and their items */
    float *htr;                 /* (nu, dz) training latents from train[:-1]; zero rows outside ts */
    float *gtr;                 /* (nu, C) SASRec states of train[:-1] likewise */
    size_t nex;                 /* the item heads' examples (prompt.head_positions, prompt.head_train_split; else 0): */
    size_t *exu;                /* (nex) the user, */
    int *exb;                   /* (nex) positions before the end of its training sequence, or -1: */
    int32_t *expos;             /* (nex) its validation target (the latents hv, sv), else -1 */
    float *hex, *gex;           /* (nex, dz), (nex, C) the latents of the history before a position */
    explain_src src;
    int have_src;
    float *zmod;                /* (ni, ALIGN_K, dz) per-modality latents, NULL without */
    uint8_t *zpres;             /* (ni, ALIGN_K) */
    pm P[PROMPT_MAXM];
    double *curve[PROMPT_MAXM]; /* (max(epochs, 1), 6) */
    float *bestw[PROMPT_MAXM];  /* msel: the best epoch's weights */
    double *vcurve[PROMPT_MAXM]; /* msel: (epochs + 1) validation NDCG@10 */
    long best_ep[PROMPT_MAXM];
    size_t *vusers, nv;         /* msel: the validation users */
    const dm_cand *vcs;         /* prompt.early_stop: the stored sets the likelihood models are validated on */
    double t_train[PROMPT_MAXM];
    /* ---- prompt.latents = "stream" (prompt_stream_load): the test split is the last streaming
       window, scored on the latents stream.h5 served in it ---- */
    int stream;
    const char *spath;          /* stream.h5 */
    int8_t *lroles;             /* (n_inter) train before the last window, test in it, 3 after */
    float *h_static, *h_dyn;    /* (nu, dz) h_base at the window, the adapter's served user latents */
    float *z_dyn;               /* (ni, dz) its served item latents */
    float *r_last;              /* (nu, C) SASRec states at the window */
    float *zd[PROMPT_MAXM];     /* model k's dynamic item latents: zk[k] + (z_dyn - zb) */
    int zdown[PROMPT_MAXM];
    /* prompt.train_latents = "stream": training on the window before the last (/serve_prev) */
    int tstream;                /* 1: on the variant's dynamic latents, 2: on the static ones (stream_static) */
    int64_t pwin;               /* that window */
    int8_t *troles;             /* (n_inter) train: before it, and each user's first interaction in it */
    float *h_prev, *r_prev;     /* (nu, dz), (nu, C) the latents served in it */
    float *z_prev;              /* (ni, dz) */
    float *zp[PROMPT_MAXM];     /* model k's item latents there: zk[k] + (z_prev - zb) */
    int zpown[PROMPT_MAXM];
    const int8_t *train_roles;  /* roles, or troles */
    /* ---- one user's scratch ---- */
    size_t *order;              /* (ts.n) the training users in epoch order */
    int32_t *tmp;               /* (n_inter) a user's items */
    int32_t *hist;              /* (nh) its last prompt.history items */
    int32_t cand[PM_MAX_CAND + 8];
    float *bs, *ss;             /* (ni) aligner and SASRec scores */
    float *lsc;                 /* (ni) full ranking: the LM's re-ranked top N above the rest */
    double *lmsc;               /* (maxc + 2) LM scores of the candidates */
    float *fsc;                 /* (maxc + 2) the candidates' scores of one model */
    /* ---- evaluation (prompt_open, prompt_score_protocol) ---- */
    metrics_spec spec;
    int have_spec;
    metrics_ws mws;
    size_t ncl;                 /* metric columns */
    h5file f;                   /* prompt.h5 */
    size_t lo, hi;              /* this rank's users */
    int nmod;                   /* nm LLM models, then the aligner and SASRec */
    double *rows[2 * PROMPT_MAXM + 3]; /* (hi - lo, ncl): the models, align, sasrec; with stream also
                                          MODEL@static and adapter */
    uint8_t *pick;              /* (nu) the split's sampled users */
    uint64_t *key;              /* (nu) their sampling keys */
    double secs[PROMPT_MAXM];   /* the LM models' scoring seconds of a protocol */
    /* ---- latency (prompt_latency) ---- */
    size_t nlat;                /* prompt lengths measured */
    size_t nlm;                 /* models timed: nm, and llm_explain@per_candidate (explain.latency_per_candidate > 0) */
    pm pc;                      /* llm_explain in the per-candidate layout, untrained (timing only) */
    int have_pc;
    double lat[PROMPT_MAXLAT][PROMPT_MAXM + 1][2]; /* median, p95 seconds per batch */
} prompt_ws;

enum { PK_LLM, PK_EXPLAIN, PK_HEAD, PK_LATENT, PK_ALLMREC };

/* The k-th name of prompt.models: its kind and the modalities its item latents go without, from an
 * "@without_<m>[+<m>...]" suffix ("llm_head@without_text+audio") and, for allmrec, visual and
 * audio (A-LLMRec reads CF and text only). */
static int prompt_model_kind(const dm_cfg *cfg, size_t k, int *kind, unsigned *drop)
{
    static const char *const kinds[] = {"llm", "llm_explain", "llm_head", "latent_head", "allmrec"};
    const char *a = dm_cfg_str_at(cfg, "prompt.models", k), *at = strchr(a, '@');
    size_t bl = at ? (size_t)(at - a) : strlen(a);
    char w[256];
    *kind = -1;
    *drop = 0;
    for (int q = 0; q < 5; q++)
        if (strlen(kinds[q]) == bl && !strncmp(a, kinds[q], bl)) *kind = q;
    if (*kind < 0) {
        DM_ERR(DM_ECONFIG, "%s: unknown model '%s'; expected llm_head, latent_head, llm, llm_explain or allmrec, optionally with "
               "@without_<modalities>", dm_cfg_where(cfg, "prompt.models", w, sizeof w), a);
        DM_HINT("e.g. \"llm_head@without_text\" or \"llm_head@without_visual+audio\" (modalities cf, text, visual, audio)");
        return DM_ECONFIG;
    }
    if (*kind == PK_ALLMREC) *drop = (1u << ALIGN_VISUAL) | (1u << ALIGN_AUDIO);
    if (!at) return DM_OK;
    if (*kind == PK_EXPLAIN)
        return DM_ERR(DM_ECONFIG, "%s: '%s': llm_explain's evidence reads the intact aligner; modality ablations (@without_...) apply to "
                      "llm_head, latent_head, llm and allmrec", dm_cfg_where(cfg, "prompt.models", w, sizeof w), a);
    const char *m = at + 1;
    if (strncmp(m, "without_", 8) || !m[8])
        return DM_ERR(DM_ECONFIG, "%s: '%s': the only variant is @without_<modalities>, e.g. %.*s@without_text",
                      dm_cfg_where(cfg, "prompt.models", w, sizeof w), a, (int)bl, a);
    for (m += 8; *m;) {
        size_t l = strcspn(m, "+");
        int hit = -1;
        for (int q = 0; q < ALIGN_K; q++)
            if (strlen(align_modality_name(q)) == l && !strncmp(m, align_modality_name(q), l)) hit = q;
        if (hit < 0 || (*drop & (1u << hit) && !(*kind == PK_ALLMREC && hit >= ALIGN_VISUAL)))
            return DM_ERR(DM_ECONFIG, "%s: '%s': '%.*s' is %s; expected modalities cf, text, visual, audio joined by '+'",
                          dm_cfg_where(cfg, "prompt.models", w, sizeof w), a, (int)l, m, hit < 0 ? "not a modality" : "repeated");
        *drop |= 1u << hit;
        m += l;
        if (*m == '+' && !*++m)
            return DM_ERR(DM_ECONFIG, "%s: '%s' ends with '+'", dm_cfg_where(cfg, "prompt.models", w, sizeof w), a);
    }
    return DM_OK;
}

static int check_prompt(const dm_cfg *cfg)
{
    size_t nm = dm_cfg_len(cfg, "prompt.models");
    if (nm == 0 || nm > PROMPT_MAXM)
        return DM_ERR(DM_ECONFIG, "prompt.models: give one to %d of llm_head, latent_head, llm, llm_explain and allmrec (each "
                      "optionally @without_<modalities>); %zu given", PROMPT_MAXM, nm);
    for (size_t k = 0; k < nm; k++) {
        const char *a = dm_cfg_str_at(cfg, "prompt.models", k);
        int kind;
        unsigned drop;
        DM_CALL(prompt_model_kind(cfg, k, &kind, &drop));
        for (size_t j = 0; j < k; j++)
            if (!strcmp(dm_cfg_str_at(cfg, "prompt.models", j), a)) return DM_ERR(DM_ECONFIG, "prompt.models: '%s' is listed twice", a);
    }
    if (!strcmp(dm_cfg_str(cfg, "prompt.latents"), "stream")) {
        char w[256];
        static const char *const av[] = {"adapter", "no_gate", "no_ema", "no_replay", "no_kl", "no_ewc", "no_stab", NULL};
        const char *v = dm_cfg_str(cfg, "prompt.stream_variant");
        int ok = 0;
        for (int q = 0; av[q]; q++) ok |= !strcmp(v, av[q]);
        if (!ok)
            return DM_ERR(DM_ECONFIG, "%s = \"%s\": not an adapter variant; expected adapter, no_gate, no_ema, no_replay, no_kl, no_ewc or no_stab",
                          dm_cfg_where(cfg, "prompt.stream_variant", w, sizeof w), v);
        if (strcmp(dm_cfg_str(cfg, "split.protocol"), "stream")) {
            DM_ERR(DM_ECONFIG, "%s = \"stream\" needs split.protocol = \"stream\" (the served latents belong to the streaming windows); it is \"%s\"",
                   dm_cfg_where(cfg, "prompt.latents", w, sizeof w), dm_cfg_str(cfg, "split.protocol"));
            DM_HINT("set split.protocol = \"stream\" and run the stream stage before prompt, or prompt.latents = \"align\"");
            return DM_ECONFIG;
        }
    } else if (strcmp(dm_cfg_str(cfg, "prompt.train_latents"), "base")) {
        char w[256];
        return DM_ERR(DM_ECONFIG, "%s = \"%s\" trains on the latents of the streaming window before the last, which needs "
                      "prompt.latents = \"stream\" (it is \"%s\")", dm_cfg_where(cfg, "prompt.train_latents", w, sizeof w),
                      dm_cfg_str(cfg, "prompt.train_latents"), dm_cfg_str(cfg, "prompt.latents"));
    }
    int hvalid = !strcmp(dm_cfg_str(cfg, "prompt.head_train_split"), "valid");
    if ((dm_cfg_int(cfg, "prompt.head_positions") > 1 || hvalid) && strcmp(dm_cfg_str(cfg, "prompt.train_latents"), "base")) {
        char w[256];
        return DM_ERR(DM_ECONFIG, "%s: with prompt.train_latents = \"%s\" the heads train on each user's first interaction of one "
                      "streaming window; expected %s (or prompt.train_latents = \"base\")",
                      dm_cfg_where(cfg, hvalid ? "prompt.head_train_split" : "prompt.head_positions", w, sizeof w),
                      dm_cfg_str(cfg, "prompt.train_latents"), hvalid ? "\"train\"" : "1");
    }
    if (hvalid && dm_cfg_int(cfg, "prompt.head_positions") > 1) {
        char w[256];
        return DM_ERR(DM_ECONFIG, "%s = %lld counts positions of the training split; with prompt.head_train_split = \"valid\" expected 1",
                      dm_cfg_where(cfg, "prompt.head_positions", w, sizeof w), (long long)dm_cfg_int(cfg, "prompt.head_positions"));
    }
    const char *es = dm_cfg_str(cfg, "prompt.early_stop");
    int es_ok = !strcmp(es, "none");
    for (size_t k = 0; k < dm_cfg_len(cfg, "prompt.protocols"); k++) {
        const char *pn = dm_cfg_str_at(cfg, "prompt.protocols", k);
        char kind;
        size_t nn;
        if (!strncmp(pn, "top", 3) && atoi(pn + 3) > 0) continue;
        es_ok |= !strcmp(pn, es);
        DM_CALL(cands_parse(pn, &kind, &nn));
        if (kind == 0) return DM_ERR(DM_ECONFIG, "prompt.protocols: 'full' is not feasible for the LM; use topN (re-ranking the aligner's top N)");
    }
    if (!es_ok) {
        char w[256];
        return DM_ERR(DM_ECONFIG, "%s = \"%s\": expected \"none\" or one of the sampled protocols of prompt.protocols (their candidate "
                      "sets are the ones drawn), e.g. \"uni19\"", dm_cfg_where(cfg, "prompt.early_stop", w, sizeof w), es);
    }
    return DM_OK;
}

/* ---- load: the dataset, its candidate sets and the frozen models' latents ---- */

/* The LM directory recorded in lm.h5. */
static int prompt_lm_dir(prompt_ws *w)
{
    h5file f;
    int rc = h5_open(w->ctx, w->lpath, &f);
    if (rc) {
        DM_HINT("run the lm stage first (dynmm lm, or add it to run.stages)");
        return par_agree(w->ctx, rc);
    }
    rc = h5_get_attr_str(&f, "/", "model_dir", &w->lmdir);
    h5_close(&f);
    return par_agree(w->ctx, rc);
}

/* One table of stream.h5's /serve: (rows, cols) as expected, else an error naming the file. */
static int prompt_serve_table(prompt_ws *w, const char *name, size_t rows, size_t cols, float **out)
{
    size_t r = 0, c = 0;
    int rc = h5_read_file_f32(w->ctx, w->spath, name, out, &r, &c);
    if (rc) {
        DM_HINT("'%s' holds the latents of the last window from the stream stage of this version on, for each adapter variant of "
                "stream.variants: rerun it (run.force = true) with prompt.stream_variant among them", w->spath);
        return rc;
    }
    if (r != rows || c != cols)
        return par_agree(w->ctx, DM_ERR(DM_EFORMAT, "'%s': %s is %zu x %zu, expected %zu x %zu", w->spath, name, r, c, rows, cols));
    return DM_OK;
}

/* *win = the window attribute of stream.h5's group grp (-1 without the group). Agreed. */
static int prompt_serve_window(prompt_ws *w, const char *grp, int64_t *win)
{
    h5file f;
    *win = -1;
    int rc = h5_open(w->ctx, w->spath, &f);
    if (!rc) {
        rc = h5_exists(&f, grp) ? h5_get_attr_i64(&f, grp, "window", win) : DM_OK;
        h5_close(&f);
    }
    return par_agree(w->ctx, rc);
}

/* prompt.train_latents = "stream" (kind 1) or "stream_static" (2): the latents stream.h5 served in
 * window win - 1 (/serve_prev: the variant's, or the static ones), and the training roles:
 * everything before that window, and each user's first interaction in it (the positive, the last
 * training item); a user without one there trains on nothing (its latent there has seen its earlier
 * items). Agreed. */
static int prompt_stream_prev(prompt_ws *w, int64_t win, int kind)
{
    par_ctx *ctx = w->ctx;
    const dm_dataset *d = &w->d;
    char nm[160];
    const char *v = dm_cfg_str(w->cfg, "prompt.stream_variant");
    int64_t pw = -1;
    int rc = prompt_serve_window(w, "/serve_prev", &pw);
    if (!rc && pw != win - 1) {
        char where[256];
        rc = DM_ERR(DM_EFORMAT, "%s = \"%s\": '%s' has no latents of window %lld, the one before the last (/serve_prev%s)",
                    dm_cfg_where(w->cfg, "prompt.train_latents", where, sizeof where), dm_cfg_str(w->cfg, "prompt.train_latents"),
                    w->spath, (long long)win - 1,
                    pw < 0 ? " is missing" : " is of another window");
        DM_HINT("the stream stage writes /serve_prev from this version on, with two windows or more: rerun it (run.force = true)");
    }
    rc = par_agree(ctx, rc);
    if (!rc) rc = prompt_serve_table(w, "/serve_prev/r", w->nu, w->C, &w->r_prev);
    snprintf(nm, sizeof nm, "/serve_prev/%s/h", kind == 1 ? v : "static");
    if (!rc) rc = prompt_serve_table(w, nm, w->nu, w->dz, &w->h_prev);
    snprintf(nm, sizeof nm, "/serve_prev/%s/z", v);
    if (!rc && kind == 1) rc = prompt_serve_table(w, nm, w->ni, w->dz, &w->z_prev);
    if (!rc) {
        w->troles = malloc(d->n_inter + 1);
        if (!w->troles) rc = DM_ERR(DM_ENOMEM, "out of memory");
    }
    size_t np = 0;
    for (size_t u = 0; !rc && u < w->nu; u++) {
        int first = 1;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
            int in = d->window[j] == (int32_t)pw && first;
            w->troles[j] = d->window[j] < (int32_t)pw || in ? DM_TRAIN : 3;
            first &= !in;
        }
        np += !first;
        if (first) /* no interaction in the window: nothing to train towards */
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) w->troles[j] = 3;
    }
    if (!rc) {
        w->tstream = kind, w->pwin = pw, w->train_roles = w->troles;
        dm_log("  prompt: the projectors train on streaming window %lld (%zu users with an interaction in it) on the %s latents "
               "stream.h5 served in it (prompt.train_latents)", (long long)pw, np, kind == 1 ? v : "static");
    }
    return par_agree(ctx, rc);
}

/* prompt.latents = "stream": the latents stream.h5 served in the last window (SASRec states,
 * h_base, and the adapter variant's user and item latents), and the roles of that window's split:
 * its interactions are the test targets, everything before it the history. Agreed. */
static int prompt_stream_load(prompt_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_dataset *d = &w->d;
    char nm[160];
    const char *v = dm_cfg_str(w->cfg, "prompt.stream_variant");
    w->stream = 1;
    w->spath = stage_input(w->sr, "stream.h5");
    int64_t win = -1;
    int rc = prompt_serve_window(w, "/serve", &win);
    if (!rc) rc = prompt_serve_table(w, "/serve/r", w->nu, w->C, &w->r_last);
    if (!rc) rc = prompt_serve_table(w, "/serve/static/h", w->nu, w->dz, &w->h_static);
    snprintf(nm, sizeof nm, "/serve/%s/h", v);
    if (!rc) rc = prompt_serve_table(w, nm, w->nu, w->dz, &w->h_dyn);
    snprintf(nm, sizeof nm, "/serve/%s/z", v);
    if (!rc) rc = prompt_serve_table(w, nm, w->ni, w->dz, &w->z_dyn);
    if (!rc && (win < 0 || (size_t)win >= d->n_windows || !d->window))
        rc = DM_ERR(DM_EFORMAT, "'%s': /serve is of window %lld, the dataset has %zu streaming windows", w->spath, (long long)win, d->n_windows);
    if (!rc) {
        w->lroles = malloc(d->n_inter + 1);
        if (!w->lroles) rc = DM_ERR(DM_ENOMEM, "out of memory");
    }
    size_t nt = 0;
    for (size_t i = 0; !rc && i < d->n_inter; i++) {
        w->lroles[i] = d->window[i] < (int32_t)win ? DM_TRAIN : d->window[i] == (int32_t)win ? DM_TEST : 3;
        nt += w->lroles[i] == DM_TEST;
    }
    if (!rc) dm_log("  prompt: test = streaming window %lld (%zu interactions) on the latents stream.h5 served in it: %s (dynamic) and static", (long long)win, nt, v);
    rc = par_agree(ctx, rc);
    const char *tl = dm_cfg_str(w->cfg, "prompt.train_latents");
    if (!rc && strcmp(tl, "base")) rc = prompt_stream_prev(w, win, !strcmp(tl, "stream") ? 1 : 2);
    return rc;
}

/* The settings, the dataset and its split, the sampled candidate sets (drawn exactly as `dynmm
 * eval` draws them, for all users: the sample of users is spread over the ranks), the aligner's
 * latents and SASRec's item table and states. Agreed. */
static int prompt_load(prompt_ws *w)
{
    par_ctx *ctx = w->ctx;
    const dm_cfg *cfg = w->cfg;
    w->dpath = stage_input(w->sr, "dataset.h5"), w->cpath = stage_input(w->sr, "cf.h5");
    w->apath = stage_input(w->sr, "align.h5"), w->lpath = stage_input(w->sr, "lm.h5");
    DM_CALL(par_agree(ctx, check_prompt(cfg)));
    w->nm = dm_cfg_len(cfg, "prompt.models");
    for (size_t k = 0; k < w->nm; k++) {
        int kind;
        w->mname[k] = dm_cfg_str_at(cfg, "prompt.models", k);
        prompt_model_kind(cfg, k, &kind, &w->mdrop[k]); /* checked above */
        w->mexpl[k] = kind == PK_EXPLAIN;
        w->mnolm[k] = kind == PK_LATENT;
        w->mhead[k] = kind == PK_LATENT || kind == PK_HEAD;
        w->mallm[k] = kind == PK_ALLMREC;
        w->mepochs[k] = (long)dm_cfg_int(cfg, w->mhead[k] ? "prompt.head_epochs" : "prompt.epochs");
        w->msel[k] = w->mhead[k] || strcmp(dm_cfg_str(cfg, "prompt.early_stop"), "none");
    }
    DM_CALL(prompt_lm_dir(w));
    DM_CALL(ds_read(ctx, w->dpath, &w->d));
    w->have_d = 1;
    w->nu = w->d.n_users, w->ni = w->d.n_items;
    int rc = par_agree(ctx, cands_split(cfg, &w->d, &w->roles));
    w->train_roles = w->roles;
    if (!rc) rc = cands_draw_key(ctx, cfg, &w->d, "prompt.protocols", 0, w->nu);
    size_t r, c;
    if (!rc) rc = h5_read_file_f32(ctx, w->apath, "/align/z_base", &w->zb, &r, &w->dz);
    if (!rc) rc = h5_read_file_f32(ctx, w->apath, "/align/h_valid", &w->hv, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, w->apath, "/align/h_test", &w->ht, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, w->cpath, "/sasrec/e_cf", &w->e_cf, &r, &w->C);
    if (!rc) rc = h5_read_file_f32(ctx, w->cpath, "/sasrec/state_valid", &w->sv, &r, &c);
    if (!rc) rc = h5_read_file_f32(ctx, w->cpath, "/sasrec/state_test", &w->st, &r, &c);
    long long sd = dm_cfg_int(cfg, "prompt.seed");
    w->seed = sd >= 0 ? (uint64_t)sd : dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x9A0, 0);
    rc = par_agree(ctx, rc);
    if (!rc && !strcmp(dm_cfg_str(cfg, "prompt.latents"), "stream")) rc = prompt_stream_load(w);
    return rc;
}

/* ---- setup: the training users, the evidence, the models and every buffer ---- */

/* The most candidates one user is scored against: 20 (latency), topN, or a protocol's N negatives
 * with the most targets a user has in a split (temporal and given splits can give several; up to
 * the 64 the evaluation keeps, all of them compete with the negatives). */
static int prompt_max_candidates(prompt_ws *w)
{
    const dm_dataset *d = &w->d;
    int rc = DM_OK, mt = 1;
    for (size_t u = 0; u < d->n_users; u++) {
        int t = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) t += w->roles[j] == DM_VALID || w->roles[j] == DM_TEST;
        if (t > mt) mt = t;
    }
    if (mt > 64) mt = 64;
    w->maxc = 20;
    for (size_t k = 0; k < dm_cfg_len(w->cfg, "prompt.protocols") && !rc; k++) {
        const char *pn = dm_cfg_str_at(w->cfg, "prompt.protocols", k);
        int v = 0;
        char kind;
        size_t nn;
        if (!strncmp(pn, "top", 3) && (v = atoi(pn + 3)) > 0) {
            if (v > w->maxc) w->maxc = v;
        } else if (!(rc = cands_parse(pn, &kind, &nn)) && (int)nn + mt > w->maxc) {
            w->maxc = (int)nn + mt;
        }
    }
    return par_agree(w->ctx, rc);
}

/* The SASRec states (G) and the aligner's user latents from them (H) of n_hist histories: user
 * users[e]'s training items without its last back[e] + 1 (back NULL: without the last), each into
 * row users[e] (by_user) or e. Agreed. */
static int prompt_prefix_latents(prompt_ws *w, size_t n_hist, const size_t *users, const int *back, int by_user, float *H, float *G)
{
    par_ctx *ctx = w->ctx;
    const dm_dataset *d = &w->d;
    size_t dz = w->dz;
    sasrec sm;
    sasrec_acts sa;
    align_model am;
    align_acts aa;
    memset(&sm, 0, sizeof sm);
    memset(&sa, 0, sizeof sa);
    memset(&am, 0, sizeof am);
    memset(&aa, 0, sizeof aa);
    int rc = cf_sasrec_load(ctx, w->cpath, d->n_items, 256, &sm, &sa);
    if (!rc) rc = align_load(ctx, w->apath, 256, &am, &aa, NULL, NULL);
    int T = rc ? 1 : sm.cfg.T;
    size_t C = rc ? 1 : (size_t)sm.cfg.C;
    int32_t *seq = calloc((size_t)256 * (size_t)T, sizeof *seq);
    float *rs = malloc((size_t)256 * C * sizeof *rs), *hb = malloc((size_t)256 * dz * sizeof *hb);
    if (!rc && (!seq || !rs || !hb)) rc = DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t e0 = 0; !rc && e0 < n_hist; e0 += 256) {
        int nb = (int)(n_hist - e0 < 256 ? n_hist - e0 : 256);
        memset(seq, 0, (size_t)nb * (size_t)T * sizeof *seq);
        for (int b = 0; b < nb; b++) {
            size_t u = users[e0 + (size_t)b], n = 0;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++)
                if (w->roles[j] == DM_TRAIN) w->tmp[n++] = d->item[j];
            n -= 1 + (size_t)(back ? back[e0 + (size_t)b] : 0);
            size_t mm = n < (size_t)T ? n : (size_t)T;
            for (size_t j = 0; j < mm; j++) seq[(size_t)b * (size_t)T + (size_t)T - mm + j] = w->tmp[n - mm + j] + 1;
        }
        rc = sasrec_user_states(&sm, &sa, seq, nb, rs);
        if (!rc) rc = align_user_latents(&am, &aa, rs, nb, hb);
        for (int b = 0; !rc && b < nb; b++) {
            size_t r = by_user ? users[e0 + (size_t)b] : e0 + (size_t)b;
            memcpy(H + r * dz, hb + (size_t)b * dz, dz * sizeof *H);
            memcpy(G + r * C, rs + (size_t)b * C, C * sizeof *G);
        }
    }
    free(seq);
    free(rs);
    free(hb);
    sasrec_acts_free(&sa);
    sasrec_free(&sm);
    align_acts_free(&aa);
    align_free(&am);
    return par_agree(ctx, rc);
}

/* The evidence sources of llm_explain (on the training latents; the scoring steps point src.h at
 * the split's), with the aligner's per-modality latents when the modality evidence is on. */
static int prompt_evidence(prompt_ws *w)
{
    explain_src *src = &w->src;
    int rc = par_agree(w->ctx, explain_src_init(src, w->cfg, &w->d, w->roles, w->htr, w->zb, w->dz));
    w->have_src = !rc;
    /* the modality that agrees most with the user: per-modality latents of the aligner */
    if (!rc && src->modal) rc = ai_modal_latents(w->ctx, w->apath, w->ni, w->dz, &w->zmod, &w->zpres);
    if (!rc && src->modal) {
        src->n_modal = ALIGN_K;
        src->zm = w->zmod;
        src->present = w->zpres;
    }
    return rc;
}

/* The item heads' own examples, where they do not train on one per training user (w->htr):
 * - prompt.head_positions = P > 1: the last P positions of every training user's training sequence
 *   (as many as have an item before them), user by user, the last first, with the latents of the
 *   history before each;
 * - prompt.head_train_split = "valid": the validation targets of the users outside the validation
 *   sample (w->vusers), each with the user's training items as its history and the user's
 *   validation latents: examples the frozen SASRec and aligner never trained on (they trained on
 *   every training position, so their scores there are in-sample and the head learns to trust them
 *   too much).
 * Agreed. */
static int prompt_head_examples(prompt_ws *w)
{
    const dm_dataset *d = &w->d;
    const int P = (int)dm_cfg_int(w->cfg, "prompt.head_positions"), valid = !strcmp(dm_cfg_str(w->cfg, "prompt.head_train_split"), "valid");
    int any = 0;
    for (size_t k = 0; k < w->nm; k++) any |= w->mhead[k] && w->mepochs[k] > 0;
    if (!any || (P == 1 && !valid)) return DM_OK;
    size_t n = 0, nusers = 0;
    for (size_t u = 0; valid && u < w->nu; u++) w->pick[u] = 1;
    for (size_t k = 0; valid && k < w->nv; k++) w->pick[w->vusers[k]] = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = nusers = 0;
        for (size_t k = 0; k < (valid ? w->nu : w->ts.n); k++) {
            size_t u = valid ? k : w->ts.users[k], na = 0, n0 = n;
            for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) {
                na += w->roles[j] == DM_TRAIN;
                if (valid && w->pick[u] && w->roles[j] == DM_VALID) {
                    if (pass) w->exu[n] = u, w->exb[n] = -1, w->expos[n] = d->item[j];
                    n++;
                }
            }
            for (int b = 0; !valid && b < P && (size_t)b + 2 <= na; b++, n++)
                if (pass) w->exu[n] = u, w->exb[n] = b, w->expos[n] = -1;
            nusers += n > n0;
        }
        if (!pass) {
            w->exu = malloc((n + 1) * sizeof *w->exu), w->exb = malloc((n + 1) * sizeof *w->exb);
            w->expos = malloc((n + 1) * sizeof *w->expos);
            size_t nl = valid ? 0 : n; /* a validation target reads the user's validation latents */
            w->hex = malloc((nl * w->dz + 1) * sizeof *w->hex), w->gex = malloc((nl * w->C + 1) * sizeof *w->gex);
            size_t *o = realloc(w->order, ((n > w->ts.n ? n : w->ts.n) + 1) * sizeof *o);
            if (o) w->order = o;
            int rc = par_agree(w->ctx, w->exu && w->exb && w->expos && w->hex && w->gex && o ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
            if (rc) return rc;
        }
    }
    if (n == 0) {
        DM_ERR(DM_ECONFIG, "prompt.head_train_split = \"valid\": no validation target outside the %zu validation users of prompt.valid_users", w->nv);
        DM_HINT("lower prompt.valid_users, or set prompt.head_train_split = \"train\"");
        return par_agree(w->ctx, DM_ECONFIG);
    }
    w->nex = n;
    if (valid) {
        dm_log("  item heads: %zu training examples, the validation targets of %zu users outside the %zu validation users (prompt.head_train_split)",
               n, nusers, w->nv);
        return DM_OK;
    }
    dm_log("  item heads: %zu training examples, the last %d positions of %zu users (prompt.head_positions)", n, P, nusers);
    return prompt_prefix_latents(w, n, w->exu, w->exb, 0, w->hex, w->gex);
}

/* The training users, their latents and (for llm_explain) the evidence sources. */
static int prompt_train_inputs(prompt_ws *w)
{
    par_ctx *ctx = w->ctx;
    int any_expl = 0, any_train = 0;
    for (size_t k = 0; k < w->nm; k++) any_expl |= w->mexpl[k], any_train |= w->mepochs[k] > 0;
    int rc = par_agree(ctx, pm_train_set_init(&w->ts, &w->d, w->train_roles));
    if (!rc) {
        w->htr = calloc(w->nu * w->dz + 1, sizeof *w->htr);
        w->gtr = calloc(w->nu * w->C + 1, sizeof *w->gtr);
        w->order = malloc((w->ts.n + 1) * sizeof *w->order);
        w->tmp = malloc((w->d.n_inter + 1) * sizeof *w->tmp);
        rc = par_agree(ctx, w->htr && w->gtr && w->order && w->tmp ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
    }
    if (!rc && w->tstream) { /* the latents served in the window the positives are in */
        memcpy(w->htr, w->h_prev, w->nu * w->dz * sizeof *w->htr);
        memcpy(w->gtr, w->r_prev, w->nu * w->C * sizeof *w->gtr);
    } else if (!rc && (any_train || any_expl)) {
        rc = prompt_prefix_latents(w, w->ts.n, w->ts.users, NULL, 1, w->htr, w->gtr);
    }
    if (!rc && any_expl) rc = prompt_evidence(w);
    return rc;
}

/* Model k's item latents: z_base, or the aligner's fused latents without the modalities of
 * mdrop[k] (shared with an earlier model that drops the same ones). */
static int prompt_model_latents(prompt_ws *w, size_t k)
{
    w->zk[k] = w->zb;
    if (!w->mdrop[k]) return DM_OK;
    for (size_t j = 0; j < k; j++)
        if (w->mdrop[j] == w->mdrop[k]) {
            w->zk[k] = w->zk[j];
            return DM_OK;
        }
    size_t changed = 0;
    char set[64] = "";
    for (int q = 0; q < ALIGN_K; q++)
        if (w->mdrop[k] & (1u << q)) snprintf(set + strlen(set), sizeof set - strlen(set), "%s%s", set[0] ? "+" : "", align_modality_name(q));
    DM_CALL(ai_latents_without(w->ctx, w->apath, w->zb, w->ni, w->dz, w->mdrop[k], &w->zk[k], &changed));
    w->zown[k] = 1;
    dm_log("  prompt: %s reads the aligner's item latents without %s: %zu of %zu items recomputed%s", w->mname[k], set, changed, w->ni,
           changed ? "" : " (no item has them: the intact latents)");
    return DM_OK;
}

/* prompt.latents = "stream": model k's dynamic item latents zd[k] from the adapter's served table
 * zs: its own plus the adapter's residual zs - z_base (the residual a_i g(e_cf_i, s_i) does not read
 * z_base, so an ablated latent takes the same one); shared with an earlier model of the same item
 * latents (own[k] = 0). */
static int prompt_dynamic_table(prompt_ws *w, size_t k, const float *zs, float **zd, int *own)
{
    if (w->zk[k] == w->zb) {
        zd[k] = (float *)zs;
        return DM_OK;
    }
    for (size_t j = 0; j < k; j++)
        if (w->zk[j] == w->zk[k]) {
            zd[k] = zd[j];
            return DM_OK;
        }
    size_t n = w->ni * w->dz;
    zd[k] = malloc(n * sizeof *zd[k] + 4);
    if (!zd[k]) return DM_ERR(DM_ENOMEM, "out of memory");
    own[k] = 1;
    for (size_t q = 0; q < n; q++) zd[k][q] = w->zk[k][q] + (zs[q] - w->zb[q]);
    return DM_OK;
}

/* ... and with prompt.train_latents = "stream" those of the window before the last (zp) alike. */
static int prompt_model_dynamic(prompt_ws *w, size_t k)
{
    if (!w->stream) return DM_OK;
    DM_CALL(prompt_dynamic_table(w, k, w->z_dyn, w->zd, w->zdown));
    return w->tstream == 1 ? prompt_dynamic_table(w, k, w->z_prev, w->zp, w->zpown) : DM_OK;
}

/* Model k on the frozen LM: allmrec with prompt.allmrec_tokens user tokens. */
static int prompt_model_init(prompt_ws *w, size_t k)
{
    pm *p = &w->P[k];
    if (w->mhead[k]) {
        pm_head_opts ho = {dm_cfg_bool(w->cfg, "prompt.head_cf") ? w->e_cf : NULL, w->C, w->mnolm[k]};
        return pm_init_head(w->cfg, w->lmdir, &w->d, w->zk[k], w->dz, w->maxc + 1, w->seed, &ho, p);
    }
    if (!w->mallm[k]) return pm_init(w->cfg, w->lmdir, &w->d, w->zk[k], w->dz, w->maxc + 1, w->seed, w->mexpl[k] ? &w->src : NULL, p);
    dm_cfg c;
    char set[64];
    snprintf(set, sizeof set, "prompt.user_tokens=%lld", dm_cfg_int(w->cfg, "prompt.allmrec_tokens"));
    int rc = dm_cfg_copy(&c, w->cfg);
    if (rc) return rc;
    rc = dm_cfg_set(&c, set);
    if (!rc) rc = pm_init(&c, w->lmdir, &w->d, w->zk[k], w->dz, w->maxc + 1, w->seed, NULL, p);
    dm_cfg_free(&c);
    return rc;
}

/* The recommenders of prompt.models on the frozen LM, and their training curves. */
static int prompt_models(prompt_ws *w)
{
    par_ctx *ctx = w->ctx;
    int rc = DM_OK;
    for (size_t k = 0; k < w->nm && !rc; k++) {
        pm *p = &w->P[k];
        rc = prompt_model_latents(w, k);
        if (!rc) rc = par_agree(ctx, prompt_model_dynamic(w, k));
        if (!rc) rc = par_agree(ctx, prompt_model_init(w, k));
        if (!rc && k == 0)
            dm_log("  prompt: LM %s (%d layers, width %d, vocab %d); L=%d user tokens, %d history items, titles <= %d tokens",
                   w->lmdir, lm_layers(&p->lm), p->C, p->V, p->L, p->nh, p->mt);
        if (!rc) {
            size_t ne = (size_t)(w->mepochs[k] > 0 ? w->mepochs[k] : 1);
            w->curve[k] = calloc(ne * 6, sizeof *w->curve[k]);
            int ok = w->curve[k] != NULL;
            if (w->msel[k]) {
                w->bestw[k] = malloc(p->nparams * sizeof *w->bestw[k]);
                w->vcurve[k] = malloc((ne + 1) * sizeof *w->vcurve[k]);
                ok = ok && w->bestw[k] && w->vcurve[k];
                for (size_t e = 0; ok && e <= ne; e++) w->vcurve[k][e] = NAN;
            }
            rc = par_agree(ctx, ok ? DM_OK : DM_ERR(DM_ENOMEM, "out of memory"));
        }
    }
    return rc;
}

/* The scoring scratch and the evaluation's buffers: this rank's rows, the sample, the metrics. */
static int prompt_buffers(prompt_ws *w)
{
    size_t ni = w->ni, nu = w->nu, mc = (size_t)w->maxc + 2;
    int rc = ev_spec_config(w->cfg, &w->spec);
    w->have_spec = !rc;
    w->ncl = w->have_spec ? w->spec.ncols : 1;
    dm_shard_even(nu, w->ctx->size, w->ctx->rank, &w->lo, &w->hi);
    w->nmod = (int)w->nm + 2 + (w->stream ? (int)w->nm + 1 : 0);
    int ok = 1;
    for (int k = 0; k < w->nmod; k++) {
        w->rows[k] = malloc((w->hi - w->lo + 1) * w->ncl * sizeof(double));
        ok = ok && w->rows[k];
    }
    w->hist = malloc((size_t)(w->P[0].nh + 1) * sizeof *w->hist);
    w->bs = malloc(ni * sizeof *w->bs + 4), w->ss = malloc(ni * sizeof *w->ss + 4), w->lsc = malloc(ni * sizeof *w->lsc + 4);
    w->lmsc = malloc(mc * sizeof *w->lmsc);
    w->fsc = malloc(mc * sizeof *w->fsc);
    w->pick = calloc(nu + 1, 1);
    w->key = malloc((nu + 1) * sizeof *w->key);
    ok = ok && w->hist && w->bs && w->ss && w->lsc && w->lmsc && w->fsc && w->pick && w->key;
    if (!rc && !ok) rc = DM_ERR(DM_ENOMEM, "out of memory");
    if (!rc) rc = metrics_ws_init(&w->mws, ni);
    return par_agree(w->ctx, rc);
}

/* A sample of the split: the eu users with a target whose keys (seed, a, user) are smallest, so
 * every rank count and every model sees the same users (w->pick). */
static void prompt_sample(prompt_ws *w, const int8_t *roles, int split, uint64_t a, size_t eu)
{
    const dm_dataset *d = &w->d;
    size_t nu = w->nu, nt = 0;
    memset(w->pick, 0, nu);
    for (size_t u = 0; u < nu; u++) {
        int has = 0;
        for (int64_t j = d->user_off[u]; j < d->user_off[u + 1]; j++) has |= roles[j] == split;
        w->pick[u] = (uint8_t)has;
        if (has) w->key[nt++] = dm_rng_key(w->seed, a, u);
    }
    uint64_t thr = UINT64_MAX;
    if (eu < nt) {
        qsort(w->key, nt, sizeof *w->key, dm_cmp_u64);
        thr = w->key[eu - 1];
    }
    for (size_t u = 0; u < nu; u++) w->pick[u] = w->pick[u] && dm_rng_key(w->seed, a, u) <= thr;
}

/* The validation users of the models validated after every epoch (w->vusers): prompt.valid_users
 * users with a validation target, drawn apart from the evaluation's sample; with prompt.early_stop
 * the candidate sets of that protocol (w->vcs). */
static int prompt_valid_set(prompt_ws *w)
{
    int any = 0;
    for (size_t k = 0; k < w->nm; k++) any |= w->msel[k];
    if (!any) return DM_OK;
    const char *es = dm_cfg_str(w->cfg, "prompt.early_stop");
    for (int k = 0; k < w->d.n_cand; k++)
        if (!strcmp(w->d.cand[k].name, es)) w->vcs = &w->d.cand[k];
    if (strcmp(es, "none") && !w->vcs)
        return par_agree(w->ctx, DM_ERR(DM_EINTERNAL, "prompt.early_stop: '%s' has no candidate sets drawn", es));
    prompt_sample(w, w->roles, DM_VALID, 0x5B1, (size_t)dm_cfg_int(w->cfg, "prompt.valid_users"));
    w->vusers = malloc((w->nu + 1) * sizeof *w->vusers);
    if (!w->vusers) return par_agree(w->ctx, DM_ERR(DM_ENOMEM, "out of memory"));
    for (size_t u = 0; u < w->nu; u++)
        if (w->pick[u]) w->vusers[w->nv++] = u;
    return par_agree(w->ctx, DM_OK);
}

static int prompt_setup(prompt_ws *w)
{
    DM_CALL(prompt_max_candidates(w));
    DM_CALL(prompt_train_inputs(w)); /* before the models: llm_explain's encoder reads the evidence sources */
    DM_CALL(prompt_models(w));
    DM_CALL(prompt_buffers(w));
    DM_CALL(prompt_valid_set(w));
    return prompt_head_examples(w);
}

/* ---- a user of a split: targets and history ---- */

/* One user's targets, history (w->tmp, w->hist) and candidates (w->cand). */
typedef struct {
    int32_t tg[64];
    size_t ntg, nhall;
    int n, nc;
} prompt_user;

/* The user's history for split s: all of it in w->tmp (*nhall items), its last nh in w->hist;
 * returns how many those are. */
static int prompt_history(prompt_ws *w, const ev_split *s, size_t u, int nh, size_t *nhall)
{
    size_t k = ev_history(s, u, w->tmp), m = k < (size_t)nh ? k : (size_t)nh;
    memcpy(w->hist, w->tmp + (k - m), m * sizeof *w->hist);
    *nhall = k;
    return (int)m;
}

/* The user's targets in split s (up to 64) into x. */
static void prompt_targets(const ev_split *s, size_t u, prompt_user *x)
{
    const dm_dataset *d = s->d;
    x->ntg = 0;
    for (int64_t j = d->user_off[u]; j < d->user_off[u + 1] && x->ntg < 64; j++)
        if (s->roles[j] == s->split) x->tg[x->ntg++] = d->item[j];
}

/* ---- checkpoints: <run.dir>/ckpt_prompt_<model>.h5 after every epoch and on SIGTERM/SIGUSR1 ---- */

#define PROMPT_CKPT_FORMAT "dynmm-prompt-ckpt"

static int prompt_ckpt_write(prompt_ws *w, const prompt_run *t, const prompt_pos *at)
{
    const pm *p = t->p;
    h5file f;
    DM_CALL(ckpt_create(&t->ck, &f));
    int rc = h5_write_all(&f, "/w", H5_F32, p->nparams, 0, p->w);
    if (!rc) rc = h5_write_all(&f, "/adam_m", H5_F32, p->nparams, 0, p->am);
    if (!rc) rc = h5_write_all(&f, "/adam_v", H5_F32, p->nparams, 0, p->av);
    if (!rc) rc = h5_write_all(&f, "/curve", H5_F64, (size_t)t->epochs, 6, t->curve);
    if (!rc && t->best) rc = h5_write_all(&f, "/best", H5_F32, p->nparams, 0, t->best);
    if (!rc && t->best) rc = h5_write_all(&f, "/valid", H5_F64, (size_t)t->epochs + 1, 0, t->valid);
    double st[PROMPT_STATE] = {(double)at->ep, (double)at->step, (double)p->t,     at->lsum[0],        at->lsum[1],       at->lsum[2],
                               at->lsum[3],    at->t_train,      t->vbest, (double)t->vbest_ep, (double)t->vstall};
    if (!rc) rc = h5_write_all(&f, "/state", H5_F64, PROMPT_STATE, 0, st);
    return ckpt_commit(&t->ck, &f, rc);
}

/* t->at and the model's parameters, moments and curve from its checkpoint, when run.resume is on
 * and there is one made with the same settings (t->found) */
static int prompt_ckpt_read(prompt_ws *w, prompt_run *t)
{
    pm *p = t->p;
    h5file f;
    DM_CALL(ckpt_open(&t->ck, &f, &t->found));
    if (!t->found) return DM_OK;
    double st[PROMPT_STATE];
    int rc = h5_read_rows(&f, "/w", H5_F32, 0, p->nparams, p->w);
    if (!rc) rc = h5_read_rows(&f, "/adam_m", H5_F32, 0, p->nparams, p->am);
    if (!rc) rc = h5_read_rows(&f, "/adam_v", H5_F32, 0, p->nparams, p->av);
    if (!rc) rc = h5_read_rows(&f, "/curve", H5_F64, 0, (size_t)t->epochs, t->curve);
    if (!rc && t->best) rc = h5_read_rows(&f, "/best", H5_F32, 0, p->nparams, t->best);
    if (!rc && t->best) rc = h5_read_rows(&f, "/valid", H5_F64, 0, (size_t)t->epochs + 1, t->valid);
    if (!rc) rc = h5_read_rows(&f, "/state", H5_F64, 0, PROMPT_STATE, st);
    h5_close(&f);
    DM_CALL(par_agree(w->ctx, rc));
    t->at.ep = (long)st[0];
    t->at.step = (long)st[1];
    p->t = (long)st[2];
    for (int k = 0; k < 4; k++) t->at.lsum[k] = st[3 + k];
    t->at.t_train = st[7];
    t->vbest = st[8], t->vbest_ep = (long)st[9], t->vstall = (long)st[10];
    dm_log("  resuming from %s at epoch %ld, step %ld", t->ck.path, t->at.ep + 1, t->at.step);
    return DM_OK;
}

/* ---- training: the same users and negatives in the same order for every model ---- */

/* One protocol of one split as the scoring steps see it. */
typedef struct prompt_proto {
    const char *split_name, *name;
    ev_split s;
    const float *H;             /* (nu, dz) the split's aligner latents */
    const float *SS;            /* (nu, C) its SASRec states */
    const dm_cand *cs;          /* the stored candidate sets; NULL for topN */
    int topn;                   /* N of topN: the aligner's top N re-ranked by the LM */
} prompt_proto;
static void prompt_candidates(prompt_ws *w, const prompt_proto *pr, size_t u, prompt_user *x);
static int prompt_score_model(prompt_ws *w, const prompt_proto *pr, size_t u, const prompt_user *x, int mi, double *a);

/* The item latents the models read: the static ones (zk, 0), the dynamic ones (zd, 1) or those of
 * the window before the last (zp, 2). */
static void prompt_set_items(prompt_ws *w, int which)
{
    for (size_t k = 0; k < w->nm; k++) {
        const float *z = which == 1 ? w->zd[k] : which == 2 ? w->zp[k] : w->zk[k];
        w->P[k].z = z;
        if (w->mhead[k]) w->P[k].sp[0].t = z;
    }
}

/* The run of model k: its sizes, optimiser and checkpoint, and (run.resume) where the checkpoint
 * stands. */
static int prompt_train_begin(prompt_ws *w, size_t k, prompt_run *t)
{
    const dm_cfg *cfg = w->cfg;
    memset(t, 0, sizeof *t);
    int head = w->mhead[k];
    t->k = k, t->p = &w->P[k], t->name = w->mname[k], t->curve = w->curve[k], t->t_train = &w->t_train[k];
    t->epochs = w->mepochs[k];
    t->best = w->bestw[k], t->valid = w->vcurve[k];
    t->vbest = -INFINITY;
    t->G = (int)dm_cfg_int(cfg, "prompt.batch");
    t->ex = head && w->nex > 0;
    t->n_ex = t->ex ? w->nex : w->ts.n;
    t->per_epoch = (size_t)dm_cfg_int(cfg, head ? "prompt.head_train_users" : "prompt.train_users");
    if (t->per_epoch > t->n_ex || (head && t->per_epoch == 0)) t->per_epoch = t->n_ex;
    t->steps = (long)((t->per_epoch + (size_t)t->G - 1) / (size_t)t->G);
    t->lr = (float)dm_cfg_float(cfg, head ? "prompt.head_lr" : "prompt.lr");
    t->warmup = head ? (float)dm_cfg_int(cfg, "prompt.warmup") : 0.0f;
    t->mix_lr = head ? (float)dm_cfg_float(cfg, "prompt.head_mix_lr") : 0.0f;
    t->opt = (nn_adam){t->lr, 0.9f, 0.999f, 1e-8f, (float)dm_cfg_float(cfg, "prompt.weight_decay"), NN_ADAM_DECOUPLED};
    if (t->epochs > 0)
        dm_log("  %s: %zu training %s, %zu per epoch, %ld steps of %d %s%s", t->name, t->n_ex, t->ex ? "examples" : "users", t->per_epoch, t->steps,
               t->G, t->ex ? "examples" : "users",
               t->p->evid ? "; evidence tokens and explanation losses"
               : head ? "; full softmax over the catalogue, early stopping on validation NDCG@10"
                        : "");
    char ckname[128], both[200];
    snprintf(ckname, sizeof ckname, "ckpt_prompt_%s.h5", t->name);
    snprintf(both, sizeof both, "%s/%s", w->sr->hash, t->name); /* the stage's settings and the model */
    dm_sha256_hex(both, strlen(both), t->hash);
    int rc = ckpt_init(&t->ck, w->ctx, cfg, ckname, PROMPT_CKPT_FORMAT, "prompt", t->hash);
    if (!rc) rc = prompt_ckpt_read(w, t);
    rc = par_agree(w->ctx, rc);
    if (t->found) *t->t_train = t->at.t_train;
    return rc;
}

/* The step epoch ep starts at: 0, or the checkpoint's step in the epoch it was written in. The
 * checkpoint holds the epoch's global loss sums so far (rank 0 carries them) and its seconds so
 * far (the training time beyond the finished epochs), so a resumed epoch logs what an
 * uninterrupted one does. */
static long prompt_epoch_start(prompt_ws *w, prompt_run *t, long ep)
{
    if (!t->found || ep != t->at.ep) return 0;
    if (w->ctx->rank == 0) memcpy(t->lsum, t->at.lsum, sizeof t->lsum);
    double before = 0;
    for (long e = 0; e < ep; e++) before += t->curve[e * 6 + 5];
    t->te -= t->at.t_train - before;
    *t->t_train = before;
    return t->at.step;
}

/* On SIGTERM/SIGUSR1 at any rank: the checkpoint at step s of epoch ep, and an error. Collective. */
static int prompt_interrupted(prompt_ws *w, prompt_run *t, long ep, long s)
{
    int stop, rc = ckpt_stop_requested(w->ctx, &stop);
    if (rc || !stop) return rc;
    prompt_pos here = {ep, s, {t->lsum[0], t->lsum[1], t->lsum[2], t->lsum[3]}, *t->t_train + (dm_wtime() - t->te)};
    rc = par_allreduce_sum_f64(w->ctx, here.lsum, 4);
    if (!rc) rc = prompt_ckpt_write(w, t, &here);
    return rc ? rc : ckpt_interrupted(&t->ck, t->name, "at epoch %ld, step %ld", ep + 1, s);
}

/* Step s of epoch ep: the step's users split over the ranks, each one listwise example, one
 * allreduce of the gradient slab, one Adam step. */
static int prompt_step(prompt_ws *w, prompt_run *t, long ep, long s)
{
    pm *p = t->p;
    size_t b0 = (size_t)s * (size_t)t->G, bn = t->per_epoch - b0 < (size_t)t->G ? t->per_epoch - b0 : (size_t)t->G, lo, hi;
    dm_shard_even(bn, w->ctx->size, w->ctx->rank, &lo, &hi);
    memset(p->g, 0, p->nparams * sizeof *p->g);
    int rc = DM_OK;
    for (size_t k = lo; k < hi && !rc; k++) {
        size_t e = w->order[b0 + k], u = t->ex ? w->exu[e] : e;
        int nall, n;
        int vt = t->ex && w->exb[e] < 0;
        if (vt) { /* a validation target after the training items */
            ev_split vs = {&w->d, w->roles, DM_VALID, NULL};
            size_t nh;
            n = prompt_history(w, &vs, u, p->nh, &nh);
            nall = (int)nh;
            w->cand[0] = w->expos[e];
        } else {
            pm_train_example(&w->ts, &w->d, w->train_roles, u, t->ex ? w->exb[e] : 0, p->nh, p->K, w->seed, (uint64_t)(ep * t->steps + s),
                             w->tmp, &nall, w->hist, &n, w->cand);
        }
        pm_set_user(p, (int32_t)u, w->tmp, nall);
        double l = 0;
        if (p->head) {
            const float *h = vt ? w->hv + u * w->dz : t->ex ? w->hex + e * w->dz : w->htr + u * w->dz;
            const float *g = vt ? w->sv + u * w->C : t->ex ? w->gex + e * w->C : w->gtr + u * w->C;
            rc = pm_head_train_user(p, h, g, w->hist, n, w->cand[0], 1.0f / (float)bn, &l);
            p->last_rank = l, p->last_faith = 0, p->last_expl = 0;
        } else {
            rc = pm_train_user(p, w->htr + u * w->dz, w->hist, n, w->cand, 1.0f / (float)bn, &l);
        }
        t->lsum[0] += l;
        t->lsum[1] += p->last_rank;
        t->lsum[2] += p->last_faith + p->last_felem; /* llm_explain: the set hinge and the element terms */
        t->lsum[3] += p->last_expl;
    }
    rc = par_agree(w->ctx, rc);
    if (!rc) rc = par_allreduce_sum_f32(w->ctx, p->g, p->nparams);
    if (rc) return rc;
    p->t++;
    float frac = t->warmup > 0 && (float)p->t < t->warmup ? (float)p->t / t->warmup : 1.0f;
    t->opt.lr = t->lr * frac;
    if (p->head) pm_head_adam_step(p, &t->opt, t->mix_lr * frac);
    else nn_adam_step(&t->opt, p->t, p->w, p->g, p->am, p->av, p->nparams);
    return DM_OK;
}

/* Model t after epoch ep (0 = untrained): the validation users ranked (an item head: over the whole
 * catalogue, their training items excluded; a likelihood model: the candidates of prompt.early_stop's
 * stored sets, users without them left out), the mean NDCG@10 into t->valid[ep]; a better one keeps
 * the weights (t->best), otherwise the stall grows. The users are shared out among the ranks. */
static int prompt_validate(prompt_ws *w, prompt_run *t, long ep)
{
    pm *p = t->p;
    size_t lo, hi, c10, cn10, dz = w->dz;
    ev_cols_at10(&w->spec, &c10, &cn10);
    dm_shard_even(w->nv, w->ctx->size, w->ctx->rank, &lo, &hi);
    prompt_proto pr = {"valid", dm_cfg_str(w->cfg, "prompt.early_stop"), {&w->d, w->roles, DM_VALID, NULL}, w->hv, w->sv, w->vcs, 0};
    double acc[2] = {0, 0}, *row = w->rows[0]; /* a row of scratch: the rows are written after training */
    int rc = DM_OK;
    if (w->tstream == 1) prompt_set_items(w, 0); /* the validation split's latents are the static ones */
    if (w->have_src) w->src.h = w->hv;         /* llm_explain's evidence: the split's latents */
    for (size_t k = lo; k < hi && !rc; k++) {
        size_t u = w->vusers[k];
        if (!p->head && pr.cs->rows[u * pr.cs->n] < 0) continue;
        prompt_user x;
        prompt_targets(&pr.s, u, &x);
        x.n = prompt_history(w, &pr.s, u, p->nh, &x.nhall);
        if (p->head) {
            rc = pm_head_scores(p, w->hv + u * dz, w->sv + u * w->C, w->hist, x.n);
            if (!rc) rc = metrics_full(&w->spec, &w->mws, p->hs, w->ni, x.tg, x.ntg, w->tmp, x.nhall, row);
        } else {
            prompt_candidates(w, &pr, u, &x);
            rc = prompt_score_model(w, &pr, u, &x, (int)t->k, row);
        }
        acc[0] += rc ? 0 : row[cn10], acc[1] += 1;
    }
    if (w->have_src) w->src.h = w->htr;
    if (w->tstream == 1) prompt_set_items(w, 2);
    rc = par_agree(w->ctx, rc);
    if (!rc) rc = par_allreduce_sum_f64(w->ctx, acc, 2);
    if (rc) return rc;
    double v = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    t->valid[ep] = v;
    if (v > t->vbest) {
        t->vbest = v, t->vbest_ep = ep, t->vstall = 0;
        memcpy(t->best, p->w, p->nparams * sizeof *t->best);
    } else {
        t->vstall++;
    }
    return DM_OK;
}

/* The curve row of epoch ep, its log line, and the checkpoint at the next epoch. */
static int prompt_epoch_end(prompt_ws *w, prompt_run *t, long ep)
{
    const pm *p = t->p;
    int rc = par_allreduce_sum_f64(w->ctx, t->lsum, 4);
    if (!rc && w->msel[t->k]) rc = prompt_validate(w, t, ep + 1);
    if (rc) return rc;
    double dt = dm_wtime() - t->te, pe = (double)t->per_epoch;
    *t->t_train += dt;
    double *cv = t->curve + ep * 6;
    cv[0] = (double)(ep + 1);
    for (int k = 0; k < 4; k++) cv[1 + k] = t->lsum[k] / pe;
    cv[5] = dt;
    if (p->head)
        dm_log("  %s epoch %ld  softmax loss %.4f (uniform over %zu items: %.4f)  valid ndcg@10 %.4f (best %.4f, epoch %ld)  %.1fs, %.2f users/s",
               t->name, ep + 1, cv[1], p->n_items, log((double)p->n_items), t->valid[ep + 1], t->vbest, t->vbest_ep, dt, pe / dt);
    else if (p->evid)
        dm_log("  %s epoch %ld  loss %.4f (listwise %.4f, uniform %.4f; faithfulness %.4f; explanation %.4f)  %.1fs, %.2f users/s",
               t->name, ep + 1, cv[1], cv[2], log((double)p->K + 1), cv[3], cv[4], dt, pe / dt);
    else
        dm_log("  %s epoch %ld  listwise loss %.4f (uniform over %d candidates: %.4f)  %.1fs, %.2f users/s", t->name, ep + 1, cv[1],
               p->K + 1, log((double)p->K + 1), dt, pe / dt);
    if (!p->head && w->msel[t->k])
        dm_log("  %s epoch %ld  valid %s ndcg@10 %.4f (best %.4f, epoch %ld)", t->name, ep + 1, dm_cfg_str(w->cfg, "prompt.early_stop"),
               t->valid[ep + 1], t->vbest, t->vbest_ep);
    prompt_pos next = {ep + 1, 0, {0, 0, 0, 0}, *t->t_train};
    return prompt_ckpt_write(w, t, &next);
}

/* Trains model k for prompt.epochs. Checkpoints after every epoch and at the next step on
 * SIGTERM/SIGUSR1; with run.resume a run continues from its checkpoint to the parameters an
 * uninterrupted run reaches (same rank count): the epochs before it replay their user order only. */
static int prompt_train(prompt_ws *w, size_t k)
{
    prompt_run t;
    if (w->have_src) w->src.h = w->htr;
    int rc = prompt_train_begin(w, k, &t);
    for (size_t e = 0; e < t.n_ex; e++) w->order[e] = t.ex ? e : w->ts.users[e];
    int sel = w->msel[k] && t.epochs > 0, pat = (int)dm_cfg_int(w->cfg, "prompt.patience");
    const char *tp = dm_cfg_str(w->cfg, "lm.train_precision"), *sp = dm_cfg_str(w->cfg, "lm.precision");
    int switched = !rc && t.epochs > 0 && strcmp(tp, "same") && strcmp(tp, sp);
    if (switched) { /* lm.train_precision: training in another precision than scoring */
        rc = lm_set_precision(&t.p->lm, tp);
        rc = par_agree(w->ctx, rc);
        if (!rc) dm_log("  %s: trains with the LM in %s (lm.train_precision), scores in %s", t.name, tp, sp);
    }
    if (w->tstream == 1) prompt_set_items(w, 2); /* prompt.train_latents = "stream" */
    if (!rc && sel && !t.found) {
        rc = prompt_validate(w, &t, 0);
        if (!rc)
            dm_log("  %s untrained (%s): valid ndcg@10 %.4f on %zu users", t.name,
                   !t.p->head ? dm_cfg_str(w->cfg, "prompt.early_stop") : *t.p->sp[0].a == 1.0f ? "ranks as the aligner" : "scores every item 0",
                   t.valid[0], w->nv);
    }
    ckpt_signals_install();
    for (long ep = 0; ep < t.epochs && !rc && !(sel && t.vstall >= pat); ep++) {
        t.te = dm_wtime();
        memset(t.lsum, 0, sizeof t.lsum);
        pm_epoch_order(w->order, t.n_ex, t.per_epoch, w->seed, (uint64_t)ep);
        if (t.found && ep < t.at.ep) continue; /* done before the checkpoint */
        long s0 = prompt_epoch_start(w, &t, ep);
        for (long s = s0; s < t.steps && !rc; s++) {
            if (s > s0) rc = prompt_interrupted(w, &t, ep, s);
            if (!rc) rc = prompt_step(w, &t, ep, s);
        }
        if (!rc) rc = prompt_epoch_end(w, &t, ep);
    }
    ckpt_signals_restore();
    prompt_set_items(w, 0);
    if (switched) {
        int r2 = lm_set_precision(&t.p->lm, sp);
        if (!rc) rc = r2;
    }
    if (!rc && sel) {
        memcpy(t.p->w, t.best, t.p->nparams * sizeof *t.best);
        w->best_ep[k] = t.vbest_ep;
        dm_log("  %s: the weights of epoch %ld kept (valid ndcg@10 %.4f; untrained %.4f)%s", t.name, t.vbest_ep, t.vbest, t.valid[0],
               t.vstall >= pat ? ", stopped early" : "");
        if (t.p->head) { /* the kept blend: the latents' residual weights and the LM's title logit */
            char ae[48] = "", at[48] = "";
            if (t.p->nsp > 1) snprintf(ae, sizeof ae, ", a_e %.4g", *t.p->sp[1].a);
            if (t.p->head_text) snprintf(at, sizeof at, ", a_t %.4g", *t.p->at);
            dm_log("  %s: kept a_z %.4g%s%s", t.name, *t.p->sp[0].a, ae, at);
        }
    }
    return par_agree(w->ctx, rc);
}

/* ---- evaluation: a seeded sample of users, every model on the same candidates ---- */



/* prompt.h5 and its /columns. */
static int prompt_open(prompt_ws *w)
{
    DM_CALL(stage_output_create(w->sr, PROMPT_FORMAT, 2, &w->f));
    return ev_write_columns(w->ctx, &w->f, &w->spec);
}

/* The user's candidates: its targets and stored negatives, or the aligner's top N outside its
 * history (re-ranked by the LM above the rest). */
static void prompt_candidates(prompt_ws *w, const prompt_proto *pr, size_t u, prompt_user *x)
{
    const dm_cand *cs = pr->cs;
    if (cs) {
        x->nc = (int)(x->ntg + cs->n);
        for (size_t k = 0; k < x->ntg; k++) w->cand[k] = x->tg[k];
        for (size_t k = 0; k < cs->n; k++) w->cand[x->ntg + k] = cs->rows[u * cs->n + k];
        return;
    }
    for (size_t k = 0; k < x->nhall; k++) w->mws.mark[w->tmp[k]] = 1;
    x->nc = dm_top_k_f32(w->bs, w->ni, w->mws.mark, pr->topn, w->cand);
    for (size_t k = 0; k < x->nhall; k++) w->mws.mark[w->tmp[k]] = 0;
}

/* The metrics row a of model mi (an LM model, then the aligner, then SASRec) for the user. llm_head
 * scores every item in one pass: the stored sets take its scores of their candidates, and under
 * topN it ranks the whole catalogue itself (full ranking, on the same users as the others). */
static int prompt_score_model(prompt_ws *w, const prompt_proto *pr, size_t u, const prompt_user *x, int mi, double *a)
{
    int lm = mi < (int)w->nm, nc = x->nc;
    const float *base = mi == (int)w->nm ? w->bs : w->ss;
    if (lm && w->mhead[mi]) {
        pm *p = &w->P[mi];
        double tm = dm_wtime();
        int rc = pm_head_scores(p, pr->H + u * w->dz, pr->SS + u * w->C, w->hist, x->n);
        w->secs[mi] += dm_wtime() - tm;
        if (rc) return rc;
        base = p->hs, lm = 0;
    } else if (lm) {
        pm *p = &w->P[mi];
        double tm = dm_wtime();
        pm_set_user(p, (int32_t)u, w->tmp, (int)x->nhall);
        int rc = pm_score_user(p, pr->H + u * w->dz, w->hist, x->n, w->cand, nc, p->L, w->lmsc);
        w->secs[mi] += dm_wtime() - tm;
        if (rc) return rc;
    }
    if (pr->cs) {
        for (int k = 0; k < nc; k++) w->fsc[k] = lm ? (float)w->lmsc[k] : base[w->cand[k]];
        return x->ntg == 1 ? metrics_sampled(&w->spec, w->fsc[0], w->fsc + 1, pr->cs->n, a)
                           : metrics_sampled_multi(&w->spec, &w->mws, w->fsc, x->ntg, w->fsc + x->ntg, pr->cs->n, a);
    }
    if (!lm) return metrics_full(&w->spec, &w->mws, base, w->ni, x->tg, x->ntg, w->tmp, x->nhall, a);
    /* the re-ranked top N above every other item: shifted just above the aligner's best score, not
       onto a large constant (1e6f + s would round the LM's scores to steps of 1/16 and tie them) */
    double mb = -INFINITY, ml = INFINITY;
    for (size_t i = 0; i < w->ni; i++) mb = w->bs[i] > mb ? w->bs[i] : mb;
    for (int k = 0; k < nc; k++) ml = w->lmsc[k] < ml ? w->lmsc[k] : ml;
    memcpy(w->lsc, w->bs, w->ni * sizeof *w->lsc);
    for (int k = 0; k < nc; k++) w->lsc[w->cand[k]] = (float)(mb + 1.0 + (w->lmsc[k] - ml));
    return metrics_full(&w->spec, &w->mws, w->lsc, w->ni, x->tg, x->ntg, w->tmp, x->nhall, a);
}

/* One scoring pass of user u on the user latents pr->H and the aligner's item latents z (the
 * models read theirs): model mi (an LM model, the aligner, SASRec) into rows[map[mi]] (skipped
 * where map[mi] < 0). */
static int prompt_score_pass(prompt_ws *w, const prompt_proto *pr, size_t u, prompt_user *x, const float *z, const int *map)
{
    size_t dz = w->dz, C = w->C, row = (u - w->lo) * w->ncl;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)w->ni, (int)dz, 1.0f, z, (int)dz, pr->H + u * dz, 1, 0.0f, w->bs, 1);
    if (map[w->nm + 1] >= 0) /* SASRec's scores: only its own row reads them */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)w->ni, (int)C, 1.0f, w->e_cf, (int)C, pr->SS + u * C, 1, 0.0f, w->ss, 1);
    if (w->have_src) w->src.h = pr->H;
    prompt_candidates(w, pr, u, x);
    int rc = DM_OK;
    for (int mi = 0; mi < (int)w->nm + 2 && !rc; mi++)
        if (map[mi] >= 0) rc = prompt_score_model(w, pr, u, x, mi, w->rows[map[mi]] + row);
    return rc;
}

/* User u's rows of every model (NaN outside the sample or without stored negatives). With
 * prompt.latents = "stream", the test split takes two passes on the latents served in the last
 * window: the static ones (MODEL@static, align, sasrec), then the dynamic ones (the models under
 * their names, and the adapter's h . z as adapter). */
static int prompt_score_user(prompt_ws *w, const prompt_proto *pr, size_t u)
{
    size_t row = (u - w->lo) * w->ncl;
    int nm = (int)w->nm, map[PROMPT_MAXM + 2];
    for (int k = 0; k < w->nmod; k++)
        for (size_t q = 0; q < w->ncl; q++) w->rows[k][row + q] = NAN;
    if (!w->pick[u] || (pr->cs && pr->cs->rows[u * pr->cs->n] < 0)) return DM_OK;
    prompt_user x;
    prompt_targets(&pr->s, u, &x);
    x.n = prompt_history(w, &pr->s, u, w->P[0].nh, &x.nhall);
    for (int mi = 0; mi < nm + 2; mi++) map[mi] = mi;
    if (!w->stream || pr->s.split != DM_TEST) return prompt_score_pass(w, pr, u, &x, w->zb, map);
    prompt_proto ps = *pr;
    ps.H = w->h_static;
    for (int k = 0; k < nm; k++) map[k] = nm + 2 + k;
    prompt_set_items(w, 0);
    int rc = prompt_score_pass(w, &ps, u, &x, w->zb, map);
    ps.H = w->h_dyn;
    for (int k = 0; k < nm; k++) map[k] = k;
    map[nm] = 2 * nm + 2, map[nm + 1] = -1;
    prompt_set_items(w, 1);
    if (!rc) rc = prompt_score_pass(w, &ps, u, &x, w->z_dyn, map);
    prompt_set_items(w, 0);
    return rc;
}

/* The name of row k of the split's models: an LM model, align, sasrec, then with prompt.latents =
 * "stream" each LM model on the static latents (MODEL@static, or BASE@static_VARIANT for
 * BASE@VARIANT) and adapter. */
static void prompt_row_name(const prompt_ws *w, int k, char *out, size_t cap)
{
    int nm = (int)w->nm;
    if (k < nm) snprintf(out, cap, "%s", w->mname[k]);
    else if (k == nm) snprintf(out, cap, "align");
    else if (k == nm + 1) snprintf(out, cap, "sasrec");
    else if (k == 2 * nm + 2) snprintf(out, cap, "adapter");
    else {
        const char *a = w->mname[k - nm - 2], *at = strchr(a, '@');
        if (at) snprintf(out, cap, "%.*s@static_%s", (int)(at - a), a, at + 1);
        else snprintf(out, cap, "%s@static", a);
    }
}

/* Every model's rows of the protocol into /<split>/<protocol>/<model>, with their means. */
static int prompt_write_rows(prompt_ws *w, const prompt_proto *pr, double wall)
{
    par_ctx *ctx = w->ctx;
    const metrics_spec *spec = &w->spec;
    size_t c1 = metrics_col(spec, METRICS_HIT, 0), c10, cn10, nl = w->hi - w->lo;
    ev_cols_at10(spec, &c10, &cn10);
    double mean[3 * EV_MAX_KS + 1];
    int rc = DM_OK;
    int nrow = w->stream && pr->s.split == DM_TEST ? w->nmod : (int)w->nm + 2;
    for (int k = 0; k < nrow && !rc; k++) {
        int lm = k < (int)w->nm || (k >= (int)w->nm + 2 && k < 2 * (int)w->nm + 2);
        char mn[200], name[256];
        prompt_row_name(w, k, mn, sizeof mn);
        snprintf(name, sizeof name, "/%s/%s/%s", pr->split_name, pr->name, mn);
        int64_t cnt = 0;
        rc = ev_mean(ctx, spec, w->rows[k], nl, mean, &cnt);
        if (!rc) rc = h5_write_rows(&w->f, name, H5_F64, w->nu, spec->ncols, w->lo, nl, w->rows[k]);
        if (!rc) rc = h5_attr_f64s(&w->f, name, "mean", mean, spec->ncols);
        if (!rc) rc = h5_attr_i64(&w->f, name, "users", cnt);
        if (rc) break;
        double sec = k < (int)w->nm ? w->secs[k] : 0;
        if (lm) par_allreduce_max_f64(ctx, &sec, 1);
        dm_log("  %-5s %-6s %-11s users %5lld  hit@%lld %.4f  hit@10 %.4f  ndcg@10 %.4f", pr->split_name, pr->name, mn, (long long)cnt,
               (long long)spec->ks[0], mean[c1], mean[c10], mean[cn10]);
        if (k < (int)w->nm) dm_log("        (%s scoring %.1fs of %.1fs%s)", mn, sec, wall, nrow > (int)w->nm + 2 ? ", both passes" : "");
    }
    return rc;
}

/* Protocol pn of split spn: this rank's sampled users scored by every model, then written. */
static int prompt_score_protocol(prompt_ws *w, const char *spn, int split, const char *pn)
{
    int last = w->stream && split == DM_TEST; /* the last streaming window */
    prompt_proto pr = {spn, pn, {&w->d, last ? w->lroles : w->roles, split, NULL}, split == DM_VALID ? w->hv : w->ht,
                       split == DM_VALID ? w->sv : last ? w->r_last : w->st, NULL, 0};
    pr.topn = !strncmp(pn, "top", 3) ? atoi(pn + 3) : 0;
    for (int k = 0; k < w->d.n_cand; k++)
        if (!strcmp(w->d.cand[k].name, pn)) pr.cs = &w->d.cand[k];
    if (!pr.topn && !pr.cs) return DM_ERR(DM_EINTERNAL, "prompt.protocols: '%s' has no candidate sets drawn", pn);
    double tp = dm_wtime();
    memset(w->secs, 0, sizeof w->secs);
    int rc = DM_OK;
    for (size_t u = w->lo; u < w->hi && !rc; u++) rc = prompt_score_user(w, &pr, u);
    rc = par_agree(w->ctx, rc);
    return rc ? rc : prompt_write_rows(w, &pr, dm_wtime() - tp);
}

/* Every split of eval.splits under every protocol of prompt.protocols. */
static int prompt_score(prompt_ws *w)
{
    const dm_cfg *cfg = w->cfg;
    int rc = DM_OK;
    for (size_t si = 0; si < dm_cfg_len(cfg, "eval.splits") && !rc; si++) {
        const char *spn = dm_cfg_str_at(cfg, "eval.splits", si);
        int split = !strcmp(spn, "valid") ? DM_VALID : DM_TEST;
        if (w->have_src) w->src.h = split == DM_VALID ? w->hv : w->ht;
        prompt_sample(w, w->stream && split == DM_TEST ? w->lroles : w->roles, split, 0x5A3 + (uint64_t)split,
                      (size_t)dm_cfg_int(cfg, "prompt.eval_users"));
        for (size_t pi = 0; pi < dm_cfg_len(cfg, "prompt.protocols") && !rc; pi++)
            rc = prompt_score_protocol(w, spn, split, dm_cfg_str_at(cfg, "prompt.protocols", pi));
    }
    return rc;
}

/* ---- latency: seconds per batch of users, 1 + 19 candidates, at several prompt lengths ---- */

/* The mi-th model timed: a model of prompt.models, or llm_explain@per_candidate after them. */
static pm *prompt_latency_model(prompt_ws *w, size_t mi, const char **name)
{
    if (name) *name = mi < w->nm ? w->mname[mi] : "llm_explain@per_candidate";
    return mi < w->nm ? &w->P[mi] : &w->pc;
}

/* Seconds model mi takes for a batch of lb users of the uni19 sets from user *u on (test split;
 * a user without a set is skipped, the users wrap around), with L user tokens; *u moves on. */
static int prompt_latency_batch(prompt_ws *w, const dm_cand *c19, size_t mi, int lb, int L, size_t *u, double *secs)
{
    const dm_dataset *d = &w->d;
    pm *p = prompt_latency_model(w, mi, NULL);
    ev_split s = {d, w->roles, DM_TEST, NULL};
    if (L > p->L) L = p->L; /* allmrec's one user token */
    double t0 = dm_wtime();
    int rc = DM_OK;
    for (int k = 0; k < lb && !rc; k++) {
        while (*u < w->nu && c19->rows[*u * 19] < 0) ++*u;
        if (*u >= w->nu) *u = 0;
        int32_t tgt = -1;
        for (int64_t j = d->user_off[*u]; j < d->user_off[*u + 1]; j++)
            if (w->roles[j] == DM_TEST) tgt = d->item[j];
        size_t nhall;
        int n = prompt_history(w, &s, *u, p->nh, &nhall);
        w->cand[0] = tgt >= 0 ? tgt : 0;
        for (int q = 0; q < 19; q++) w->cand[1 + q] = c19->rows[*u * 19 + (size_t)q];
        pm_set_user(p, (int32_t)*u, w->tmp, (int)nhall);
        rc = p->head ? pm_head_scores(p, w->ht + *u * w->dz, w->st + *u * w->C, w->hist, n) /* every item, the 20 among them */
                     : pm_score_user(p, w->ht + *u * w->dz, w->hist, n, w->cand, 20, L, w->lmsc);
        ++*u;
    }
    *secs = dm_wtime() - t0;
    return rc;
}

/* The median and p95 of the batch times t[1..nb) (t[0] is the warm-up); sorts them. */
static void latency_stats(double *t, int nb, double out[2])
{
    if (nb > 1) qsort(t + 1, (size_t)(nb - 1), sizeof *t, dm_cmp_f64);
    int m = nb - 1;
    out[0] = m > 0 ? t[1 + m / 2] : NAN;
    out[1] = m > 0 ? t[1 + (int)floor(0.95 * (m - 1))] : NAN;
}

/* Latency at the li-th prompt length: the models' batches interleaved so that their ratio is
 * measured side by side; the slowest rank's figures. */
static int prompt_latency_at(prompt_ws *w, const dm_cand *c19, size_t li)
{
    int lb = (int)dm_cfg_int(w->cfg, "prompt.latency_batch"), L = (int)dm_cfg_int_at(w->cfg, "prompt.latency_tokens", li);
    if (L > (int)dm_cfg_int(w->cfg, "prompt.user_tokens")) L = (int)dm_cfg_int(w->cfg, "prompt.user_tokens");
    double tb[PROMPT_MAXM + 1][PROMPT_LAT_BATCHES];
    size_t ustart = 0;
    int rc = DM_OK;
    for (int bi = 0; bi < PROMPT_LAT_BATCHES && !rc; bi++) {
        size_t u = ustart;
        for (size_t mi = 0; mi < w->nlm && !rc; mi++) {
            u = ustart;
            rc = prompt_latency_batch(w, c19, mi, lb, L, &u, &tb[mi][bi]);
        }
        ustart = u;
    }
    rc = par_agree(w->ctx, rc);
    for (size_t mi = 0; mi < w->nlm && !rc; mi++) {
        latency_stats(tb[mi], PROMPT_LAT_BATCHES, w->lat[li][mi]);
        rc = par_allreduce_max_f64(w->ctx, w->lat[li][mi], 2);
    }
    if (rc) return rc;
    double(*lat)[2] = w->lat[li];
    char msg[512];
    int q = snprintf(msg, sizeof msg, "  latency L=%3d, per batch of %d users x 20 candidates:", L, lb);
    const char *mn;
    for (size_t mi = 0; mi < w->nlm && q < (int)sizeof msg; mi++) {
        prompt_latency_model(w, mi, &mn);
        q += snprintf(msg + q, sizeof msg - (size_t)q, "%s %s median %.3fs (p95 %.3fs)", mi ? "," : "", mn, lat[mi][0], lat[mi][1]);
    }
    for (size_t mi = 1; mi < w->nlm && q < (int)sizeof msg; mi++) {
        prompt_latency_model(w, mi, &mn);
        q += snprintf(msg + q, sizeof msg - (size_t)q, "; %s %+.1f%% against %s", mn, 100.0 * (lat[mi][0] / lat[0][0] - 1.0), w->mname[0]);
    }
    dm_log("%s", msg);
    return DM_OK;
}

/* With explain.latency_per_candidate = k > 0, llm_explain in the per-candidate layout with k
 * evidence tokens (no user evidence tokens, every evidence token before every candidate) for timing
 * beside the others: untrained, since its cost does not depend on the weights. */
static int prompt_latency_per_candidate(prompt_ws *w)
{
    size_t k = w->nm;
    for (size_t j = 0; j < w->nm; j++)
        if (w->mexpl[j] && k == w->nm) k = j;
    long long E = dm_cfg_int(w->cfg, "explain.latency_per_candidate");
    if (E <= 0 || k == w->nm) return DM_OK;
    dm_cfg c;
    char it[64], et[64];
    snprintf(it, sizeof it, "explain.item_tokens=%lld", E);
    snprintf(et, sizeof et, "explain.tokens=%lld", E);
    int rc = dm_cfg_copy(&c, w->cfg);
    if (!rc) {
        rc = dm_cfg_set(&c, "explain.user_tokens=0");
        if (!rc) rc = dm_cfg_set(&c, it);
        if (!rc) rc = dm_cfg_set(&c, et);
        w->have_pc = !rc;
        if (!rc) rc = pm_init(&c, w->lmdir, &w->d, w->zk[k], w->dz, w->maxc + 1, w->seed, &w->src, &w->pc);
        dm_cfg_free(&c);
    }
    rc = par_agree(w->ctx, rc);
    if (!rc) w->nlm = w->nm + 1;
    return rc;
}

/* Latency at every length of prompt.latency_tokens (up to PROMPT_MAXLAT), on the uni19 sets. */
static int prompt_latency(prompt_ws *w)
{
    const dm_cand *c19 = NULL;
    for (int k = 0; k < w->d.n_cand; k++)
        if (w->d.cand[k].n == 19) c19 = &w->d.cand[k];
    size_t nlat = dm_cfg_len(w->cfg, "prompt.latency_tokens");
    if (!c19) return DM_OK;
    if (w->have_src) w->src.h = w->ht;
    w->nlm = w->nm;
    int rc = prompt_latency_per_candidate(w);
    for (size_t li = 0; li < nlat && li < PROMPT_MAXLAT && !rc; li++) rc = prompt_latency_at(w, c19, li);
    if (!rc) w->nlat = nlat < PROMPT_MAXLAT ? nlat : PROMPT_MAXLAT;
    if (w->have_pc) pm_free(&w->pc);
    w->have_pc = 0;
    return rc;
}

/* ---- write: latency, weights, curves; the checkpoints removed once prompt.h5 is committed ---- */

static int prompt_write_latency(prompt_ws *w)
{
    h5file *f = &w->f;
    size_t nl = w->nlat, nm = w->nlm, wd = 1 + 2 * nm;
    double buf[PROMPT_MAXLAT * (1 + 2 * (PROMPT_MAXM + 1))];
    for (size_t li = 0; li < nl; li++) {
        buf[li * wd] = (double)dm_cfg_int_at(w->cfg, "prompt.latency_tokens", li);
        for (size_t mi = 0; mi < nm; mi++) {
            buf[li * wd + 1 + 2 * mi] = w->lat[li][mi][0];
            buf[li * wd + 2 + 2 * mi] = w->lat[li][mi][1];
        }
    }
    char cols[1024] = "prompt tokens L";
    for (size_t mi = 0; mi < nm; mi++) {
        size_t l = strlen(cols);
        const char *mn;
        prompt_latency_model(w, mi, &mn);
        snprintf(cols + l, sizeof cols - l, ", %s median seconds per batch, %s p95 seconds per batch", mn, mn);
    }
    int rc = h5_write_all(f, "/prompt/latency", H5_F64, nl, wd, buf);
    if (!rc) rc = h5_attr_str(f, "/prompt/latency", "columns", cols);
    if (!rc) rc = h5_attr_i64(f, "/prompt/latency", "batch_users", (int64_t)dm_cfg_int(w->cfg, "prompt.latency_batch"));
    if (!rc) rc = h5_attr_i64(f, "/prompt/latency", "candidates", 20);
    return rc;
}

static int prompt_write_model(prompt_ws *w, size_t mi)
{
    h5file *f = &w->f;
    const pm *p = &w->P[mi];
    char g[256];
    snprintf(g, sizeof g, "/prompt/%s/weights", w->mname[mi]);
    int rc = h5_write_all(f, g, H5_F32, p->nparams, 0, p->w);
    if (!rc && w->mepochs[mi] > 0) {
        snprintf(g, sizeof g, "/prompt/%s/curve", w->mname[mi]);
        rc = h5_write_all(f, g, H5_F64, (size_t)w->mepochs[mi], 6, w->curve[mi]);
        if (!rc) rc = h5_attr_str(f, g, "columns", "epoch, loss, listwise, faithfulness, explanation, seconds");
    }
    if (!rc && w->msel[mi] && w->mepochs[mi] > 0) { /* NaN after an early stop */
        snprintf(g, sizeof g, "/prompt/%s/valid", w->mname[mi]);
        rc = h5_write_all(f, g, H5_F64, (size_t)w->mepochs[mi] + 1, 0, w->vcurve[mi]);
        if (!rc) rc = h5_attr_str(f, g, "columns", "validation NDCG@10 after epoch 0 (untrained), 1, ...");
        if (!rc) rc = h5_attr_str(f, g, "protocol", w->mhead[mi] ? "full" : dm_cfg_str(w->cfg, "prompt.early_stop"));
        if (!rc) rc = h5_attr_i64(f, g, "users", (int64_t)w->nv);
        if (!rc) rc = h5_attr_i64(f, g, "best_epoch", w->best_ep[mi]);
    }
    snprintf(g, sizeof g, "/prompt/%s", w->mname[mi]);
    if (!rc) rc = h5_attr_f64(f, g, "train_seconds", w->t_train[mi]);
    if (!rc) rc = h5_attr_i64(f, g, "evidence_tokens", p->E);
    if (!rc && p->evid) rc = h5_attr_i64(f, g, "user_evidence_tokens", p->Eu);
    if (!rc) rc = h5_attr_i64(f, g, "user_tokens", p->L);
    if (!rc && w->mdrop[mi]) {
        char set[64] = "";
        for (int q = 0; q < ALIGN_K; q++)
            if (w->mdrop[mi] & (1u << q)) snprintf(set + strlen(set), sizeof set - strlen(set), "%s%s", set[0] ? "+" : "", align_modality_name(q));
        rc = h5_attr_str(f, g, "without_modalities", set);
    }
    return rc;
}

/* Writes the rest of prompt.h5 (with rc == DM_OK on every rank) and ends the output: committed,
 * or discarded after a failure. The training checkpoints served their purpose then. */
static int prompt_write(prompt_ws *w, int rc)
{
    const pm *p = &w->P[0];
    h5file *f = &w->f;
    if (!rc && w->nlat) rc = prompt_write_latency(w);
    for (size_t mi = 0; mi < w->nm && !rc; mi++) rc = prompt_write_model(w, mi);
    if (!rc) rc = h5_attr_i64(f, "/prompt", "user_tokens", dm_cfg_int(w->cfg, "prompt.user_tokens"));
    if (!rc) rc = h5_attr_i64(f, "/prompt", "history", p->nh);
    if (!rc) rc = h5_attr_i64(f, "/prompt", "title_tokens", p->mt);
    if (!rc) rc = h5_attr_i64(f, "/prompt", "hidden", (int64_t)dm_cfg_int(w->cfg, "prompt.hidden"));
    if (!rc) rc = h5_attr_str(f, "/prompt", "lm_dir", w->lmdir);
    if (!rc) rc = h5_attr_str(f, "/prompt", "train_latents", dm_cfg_str(w->cfg, "prompt.train_latents"));
    if (!rc && w->tstream) rc = h5_attr_i64(f, "/prompt", "train_window", w->pwin);
    if (!rc) rc = h5_attr_i64(f, "/prompt", "train_users", (int64_t)w->ts.n);
    rc = stage_output_finish(w->sr, f, rc);
    for (size_t mi = 0; !rc && mi < w->nm; mi++) {
        char ckname[128];
        ckpt c;
        snprintf(ckname, sizeof ckname, "ckpt_prompt_%s.h5", w->mname[mi]);
        rc = ckpt_init(&c, w->ctx, w->cfg, ckname, PROMPT_CKPT_FORMAT, "prompt", "");
        if (!rc) ckpt_remove(&c);
    }
    return rc;
}

static void prompt_free(prompt_ws *w)
{
    for (size_t k = 0; k < w->nm; k++) {
        pm_free(&w->P[k]);
        DM_FREE_ALL(w->curve[k], w->bestw[k], w->vcurve[k]);
        if (w->zown[k]) free(w->zk[k]);
        if (w->zdown[k]) free(w->zd[k]);
        if (w->zpown[k]) free(w->zp[k]);
    }
    if (w->have_src) explain_src_free(&w->src);
    if (w->have_spec) metrics_spec_free(&w->spec);
    metrics_ws_free(&w->mws);
    for (int k = 0; k < w->nmod; k++) free(w->rows[k]);
    pm_train_set_free(&w->ts);
    DM_FREE_ALL(w->order, w->tmp, w->hist, w->bs, w->ss, w->lsc, w->lmsc, w->fsc, w->pick, w->key, w->vusers,
                w->zmod, w->zpres, w->lmdir, w->zb, w->hv, w->ht, w->htr, w->gtr, w->e_cf, w->sv, w->st,
                w->lroles, w->h_static, w->h_dyn, w->z_dyn, w->r_last);
    DM_FREE_ALL(w->troles, w->h_prev, w->r_prev, w->z_prev, w->exu, w->exb, w->expos, w->hex, w->gex);
    if (w->have_d) dm_dataset_free(&w->d);
}

/* stream.h5 is read (and hashed) only with prompt.latents = "stream" */
static int prompt_uses(const dm_cfg *cfg, const char *input)
{
    return strcmp(input, "stream.h5") || !strcmp(dm_cfg_str(cfg, "prompt.latents"), "stream");
}

static int stage_prompt(stage_run *sr)
{
    prompt_ws w;
    memset(&w, 0, sizeof w);
    w.sr = sr, w.ctx = sr->ctx, w.cfg = sr->cfg;
    w.f.id = -1;
    int rc = prompt_load(&w);                                   /* dataset, candidate sets, latents */
    if (!rc) rc = prompt_setup(&w);                             /* training users, evidence, models, buffers */
    for (size_t k = 0; k < w.nm && !rc; k++) rc = prompt_train(&w, k);
    if (!rc) rc = prompt_open(&w);                              /* prompt.h5 and its /columns */
    if (!rc) rc = prompt_score(&w);                             /* per split and protocol */
    if (!rc) rc = prompt_latency(&w);
    rc = prompt_write(&w, rc);                                  /* weights, curves, latency; commit */
    prompt_free(&w);
    return par_agree(sr->ctx, rc);
}

/* ---- the stage's contract (stage.h) ---- */

const stage_def stage_prompt_def = {
    .name = "prompt",
    .output = "prompt.h5",
    .inputs = {"dataset.h5", "cf.h5", "align.h5", "lm.h5", "stream.h5", NULL},
    .groups = prompt_config_groups,
    .uses = prompt_uses,
    .check = check_prompt,
    .run = stage_prompt,
    .summary = "train the soft-prompt projectors of the LLM recommender through the frozen LM; rank by likelihood",
    .usage = USAGE,
};
