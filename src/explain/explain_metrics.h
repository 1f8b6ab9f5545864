/* explain_metrics.h: metrics of explanations, per user (so they can be tested for significance
 * like the ranking metrics), and the deletion-faithfulness helpers. MPI-free: the stage gathers
 * the per-user values and ORs the coverage marks across ranks.
 *
 * Features of a rationale F (sets of dataset attribute ids): explain_text_features finds the
 * attributes whose name occurs in the text (whole words, ASCII case-insensitive), as PETER's and
 * NETE's feature_detect finds feature words in generated text; explain_rationale_attrs gives the
 * attributes a template rationale names structurally.
 *
 * Text metrics, after L. Li, Y. Zhang, L. Chen, "Generate Neural Template Explanations for
 * Recommendation" (CIKM 2020, NETE) and "Personalized Transformer for Explainable Recommendation"
 * (ACL 2021, PETER), whose reference code defines, over N generated explanations:
 *   FMR = (1/N) sum_n [ f_n in F_n ]               f_n the feature of the ground-truth review
 *   FCR = |union_n F_n| / |feature vocabulary|
 *   DIV = sum_{n<m} |F_n cap F_m| / (N (N-1) / 2)  (lower = more diverse)
 * Here there is no ground-truth review, so FMR asks whether the rationale names an attribute of
 * the recommended item, and the metrics are per user over the user's top-K rationales:
 *   FMR_u = (1/K) sum_k [ F_k cap attrs(i_k) != {} ]
 *   DIV_u = sum_{k<l} |F_k cap F_l| / (K (K-1) / 2)   (NaN when K < 2)
 *   FCR_u = |union_k F_k| / V  (the user's own coverage);  FCR = |union over all users| / V
 * with V the number of vocabulary attributes of the kinds considered (explain_vocab_size). The
 * corpus FCR is not a mean of per-user values: mark `seen` per user, OR the marks across ranks,
 * then explain_fcr.
 *
 * Evidence precision: the share of tested evidence elements whose removal lowers the item's score
 * by more than tol, scores computed by the caller's callback (the recommender re-scored with the
 * evidence tokens of the set without that element; removed_index -1 = the full evidence).
 *
 * Deletion faithfulness: the score of i with its evidence, with the evidence masked (the empty set,
 * see explain_enc.h) and with as many random prompt tokens masked; the score drops and the rank
 * of i among the user's candidates (expected rank under ties, 1 = best) in each case.
 */
#ifndef DM_EXPLAIN_METRICS_H
#define DM_EXPLAIN_METRICS_H

#include "../data/dataset.h"
#include "explain.h"

#include <stddef.h>
#include <stdint.h>

/* bit sets of dataset attribute kinds (1 << DM_ATTR_*) */
#define EXPLAIN_FEAT_ALL ((1u << DM_ATTR_BRAND) | (1u << DM_ATTR_CATEGORY) | (1u << DM_ATTR_PRICE) | (1u << DM_ATTR_OTHER))

/* Attributes of kinds `kinds` in the dataset: the FCR denominator V. */
size_t explain_vocab_size(const dm_dataset *d, unsigned kinds);
/* Attribute ids (kinds in `kinds`) whose name occurs in text as whole words, case-insensitive
 * (ASCII), sorted ascending and distinct, at most cap into out; *n = count found (may exceed cap:
 * then only the first cap are written). */
int explain_text_features(const dm_dataset *d, unsigned kinds, const char *text, int32_t *out, int cap, int *n);

typedef struct {
    int K;          /* rationales of the user */
    double fmr;     /* FMR_u */
    double div;     /* DIV_u, NaN when K < 2 */
    double fcr;     /* FCR_u */
    int n_features; /* |union_k F_k| */
} explain_text_user;

/* One user's K rationales: F_k = feat[off[k] .. off[k+1]) (sorted ascending, distinct: DM_EINPUT
 * otherwise), item[k] the item rationale k explains, V the vocabulary size. seen (n_attr), when
 * non-NULL, gets seen[a] = 1 for every feature (corpus coverage). */
int explain_text_user_metrics(const dm_dataset *d, int K, const int64_t *off, const int32_t *feat, const int32_t *item,
                              size_t V, uint8_t *seen, explain_text_user *out);
/* Corpus FCR from the OR of every user's marks. */
double explain_fcr(const uint8_t *seen, size_t n_attr, size_t V);

/* The callback of evidence precision: the recommender's score of (ev->user, ev->item) with element
 * removed_index removed from the evidence (-1: nothing removed). */
typedef double (*explain_score_fn)(void *ctx, const explain_evidence *ev, int removed_index);
/* Tests elements idx[0..n_idx) (idx NULL: every neighbour user, history item and attribute
 * element, the modality excluded). lowered[k] (n_idx, or ev->n when idx is NULL; may be NULL) =
 * 1 when removing the k-th tested element lowers the score by more than tol. *precision = share
 * lowered (NaN when nothing is tested); *n_tested = elements tested. Calls score_without
 * n_tested + 1 times. */
int explain_evidence_precision(const explain_evidence *ev, const int *idx, int n_idx, explain_score_fn score_without,
                               void *ctx, double tol, uint8_t *lowered, double *precision, int *n_tested);

/* Expected rank (1 = best) of value v at candidate t among s[0..n): 1 + #{c != t: s_c > v}
 * + #{c != t: s_c == v} / 2. NaN when v is NaN. */
double explain_rank(const double *s, int n, int t, double v);

typedef struct {
    double s_full, s_masked, s_random; /* score of i: with evidence, evidence masked, random masked (mean) */
    double drop, drop_random;          /* s_full - s_masked, s_full - s_random */
    double rank_full, rank_masked, rank_random; /* expected rank among the candidates (random: mean) */
    double rank_drop, rank_drop_random;         /* rank_masked - rank_full, rank_random - rank_full (> 0: fell) */
} explain_deletion;

/* cand (n): the candidates' scores with their evidence, cand[t] = s(u, i | E); s_masked the score
 * of i with its evidence masked; s_random[0..n_random) with random prompt tokens masked instead
 * (NaN fields when n_random == 0). The other candidates keep their scores. */
void explain_deletion_eval(const double *cand, int n, int t, double s_masked, const double *s_random, int n_random,
                           explain_deletion *out);
/* L_faith = max(0, delta - (s_full - s_masked)) and its derivatives (may be NULL). */
double explain_faith_loss(double s_full, double s_masked, double delta, double *d_full, double *d_masked);
/* count distinct positions of [0, n), ascending, drawn from a generator keyed by (seed, a, b)
 * (e.g. user and draw), for the random-token control; count <= n. */
void explain_random_positions(uint64_t seed, uint64_t a, uint64_t b, int n, int count, int *out);

#endif
