/* stress.h: the test-time stress experiments of `dynmm eval` on the multimodal aligner (DESIGN.md,
 * "Evaluation, done right"): which variants run, and the perturbed inputs of each.
 *
 * The aligner is frozen; a variant perturbs its stored item inputs (align.h5 /align/inputs: the
 * features x^k and presence flags m^k of cf, text, visual, audio) and the eval stage recomputes
 * z_base (align_item_latents) for the items the perturbation touches; every other item keeps its
 * stored z_base row, and the user latents h_base are unchanged. So a variant that touches no item
 * (a 0% rate, a modality no item has) scores bitwise like the intact model.
 *
 *   drop     modality dropout: each item in a seeded choice of rate% of the items loses the whole
 *            modality set S (one modality, or a pair) by clearing its presence flags. Item i is
 *            chosen when u_i < rate / 100, u_i uniform from dm_rng_key(seed ^ TAG, mask(S), i): the
 *            choice depends on (seed, set, item) only, not on the rank count, and the rates are
 *            nested (the items dropped at 25% are among those dropped at 50%). An item left with
 *            no modality at all gets what the fusion gives an empty set: z_base = 0 (align.h),
 *            so it scores 0 for every user.
 *   noise    Gaussian noise on modality k at a given SNR (dB): x_i^k += sigma eps_i for every item
 *            with k present, sigma^2 = P_k / 10^(snr / 10), P_k = the mean square of the stored
 *            features over the present rows of k (signal power per element); eps_i (D_k standard
 *            normals) is keyed by (seed, k, i), the same draws at every SNR (common random numbers).
 *   shuffle  the features of modality k permuted among the items that have k: item P[j] gets the
 *            features of item P[pi(j)], pi a seeded uniform permutation (fixed points possible).
 *
 * Variant names (after '@', so `align@drop_visual_050`) follow the report's contract
 * (analysis/README.md): the family is the first word, a trailing number is the x of a curve, and
 * a family without numbers is drawn as bars:
 *   drop_<set>_<rate>      set = "visual", a pair "cf+text" or a set of stress.sets, modalities
 *                          in cf, text, visual, audio order;
 *                          the rate has three digits (drop_visual_025) so that the report, which
 *                          lists variants by name, lists the rates in order
 *   without_<set>          the set dropped from every item: the rows of drop_<set>_100 under a
 *                          second name (the family of the modality-removal bars); computed alone
 *                          when 100 is not among the rates
 *   noise_<modality>_<snr> e.g. noise_audio_-10 (SNR in dB, %g)
 *   shuffle_<modality>
 * (The cold-item subset, <model>@cold, needs no perturbation; the eval stage writes it.)
 *
 * Memory: stress_plan allocates the variant list (stress_plan_free); stress_work owns the per-
 * variant buffers, allocated once for the largest variant (stress_work_init/free).
 */
#ifndef DM_STRESS_H
#define DM_STRESS_H

#include "../src/align/align.h"
#include "../src/config/config.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { STRESS_DROP = 0, STRESS_NOISE = 1, STRESS_SHUFFLE = 2 } stress_kind;

typedef struct {
    stress_kind kind;
    unsigned mask;  /* modalities perturbed: bit k = ALIGN_CF..ALIGN_AUDIO */
    double level;   /* drop: rate in percent; noise: SNR in dB; shuffle: unused */
    char name[96];  /* "drop_visual_050" */
    char alias[96]; /* a second name for the same rows ("without_visual" for a 100% drop), or "" */
} stress_variant;

/* The aligner's stored inputs (from align.h5). */
typedef struct {
    size_t n;                  /* items */
    int dim[ALIGN_K];          /* D_k; 0 = the aligner does not use modality k */
    const float *x[ALIGN_K];   /* (n, D_k) features; NULL when D_k = 0 */
    const uint8_t *present;    /* (n, K) presence flags, 0 where D_k = 0 */
    double power[ALIGN_K];     /* P_k: mean square of x^k over present rows (stress_inputs_power) */
    uint64_t seed;             /* stress seed */
} stress_inputs;

/* Fills in->power from x and present. */
void stress_inputs_power(stress_inputs *in);

/* The variants of the stress.* keys, in output order: drop (each single modality, then each pair
 * when stress.pairs, then the further sets of stress.sets; each rate), noise (each modality, each
 * SNR), shuffle (each modality).
 * Modalities: stress.modalities, or (empty) those with D_k > 0 and at least one present item.
 * DM_ECONFIG naming the key for unknown or repeated modalities, repeated rates or SNRs, bad sets. */
int stress_plan(const dm_cfg *cfg, const stress_inputs *in, stress_variant **v, size_t *nv);

/* Work buffers of one variant. */
typedef struct {
    size_t n;                /* capacity in items */
    int64_t *rows;           /* (n) items whose z_base is recomputed, ascending */
    uint8_t *pres;           /* (n, K) their presence flags under the variant */
    float *xp;               /* (n, max D_k) the perturbed feature table of one modality */
    size_t nrows;            /* rows used */
    const float *x[ALIGN_K]; /* tables for align_item_latents with xrow = rows */
    double sigma;            /* noise: the standard deviation used */
    int64_t *perm;           /* (n) scratch of the shuffle */
} stress_work;

int stress_work_init(stress_work *w, const stress_inputs *in);
void stress_work_free(stress_work *w);

/* Builds variant v's affected items, their presence flags and feature tables into w. */
int stress_apply(const stress_inputs *in, const stress_variant *v, stress_work *w);

/* "cf+text" for a mask. */
void stress_set_name(unsigned mask, char *out, size_t cap);

#endif
