/* explain_rationale.h: rationales written by the frozen LM from structured templates whose slots
 * take values from the recommendation's evidence only (DESIGN.md idea 3).
 *
 * Templates (explain.templates) are '|'-separated strings of fixed text and slots {item},
 * {brand}, {category}, {price}, {n}. For a recommendation with evidence ev, a slot's allowed values
 * are, in evidence order, each distinct string once:
 *   {item}      titles (non-empty) of ev's EXPLAIN_ITEM elements (history items near i)
 *   {brand}     names of ev's EXPLAIN_ATTR elements of dataset kind DM_ATTR_BRAND
 *   {category}  ... of kind DM_ATTR_CATEGORY (any level)
 *   {price}     ... of kind DM_ATTR_PRICE (i's price bucket, e.g. "price <= 25")
 *   {n}         the history count (explain_elem.count > 0) of the attribute named by the nearest
 *               earlier {brand}/{category}/{price} slot of the template: "a {category}, like {n}
 *               of your items" states how many of u's items share that category; without an
 *               earlier attribute slot, the distinct positive counts of all evidence attributes.
 * A value already written into an earlier slot of the same kind in the same template is not
 * allowed again ("you bought X and X" cannot happen). A slot without allowed values disqualifies
 * the template.
 *
 * Each qualifying template is written after the cached prompt with lm_fill_template, one part at a
 * time (fixed text is scored as a one-value slot), each slot taking its strongest allowed value:
 * the first in evidence order, i.e. the element of highest weight of the slot's kind (the nearest
 * history item, the attribute with the most attention) not yet written into an earlier slot of the
 * same kind. The template is scored by its fluency with a coverage/length term,
 *     score = (ll + explain.coverage_weight * n_cite) / n_tokens,
 * ll the log-likelihood of its n_tokens tokens after the prompt and n_cite the distinct evidence
 * elements it names: each named element is worth coverage_weight nats, and the total is per token,
 * so a long template must say more to win. explain_rationale_make keeps the template of highest
 * score for one recommendation (ties: the earlier template). Over a user's top K,
 * explain_templates_assign chooses the templates jointly under a share cap (see there). Values that
 * do not fit in the rest of the LM's context (long titles after a long prompt) are passed over for
 * the next strongest; a template with a part that cannot fit at all is disqualified, so a rationale
 * never fails on length. The cache is restored to its length on entry. The result holds the text,
 * which template, the evidence element each slot names, the distinct elements cited, and the
 * per-slot values; every value is by construction the title / name / count of a cited evidence
 * element, never anything else.
 */
#ifndef DM_EXPLAIN_RATIONALE_H
#define DM_EXPLAIN_RATIONALE_H

#include "../core/buf.h"
#include "../data/dataset.h"
#include "../lm/lm.h"
#include "explain.h"

enum {
    EXPLAIN_SLOT_ITEM = 0,
    EXPLAIN_SLOT_BRAND = 1,
    EXPLAIN_SLOT_CATEGORY = 2,
    EXPLAIN_SLOT_PRICE = 3,
    EXPLAIN_SLOT_N = 4,
    EXPLAIN_NSLOTS = 5
};
extern const char *const explain_slot_names[EXPLAIN_NSLOTS]; /* "item", "brand", "category", "price", "n" */

#define EXPLAIN_MAX_SLOTS 32 /* slots per template */

typedef struct {
    int n;          /* templates */
    int *part_off;  /* (n + 1) template t = parts [part_off[t], part_off[t + 1]) */
    int *slot;      /* (parts) -1 = fixed text, else EXPLAIN_SLOT_* */
    char **text;    /* (parts) fixed text (NUL-terminated, owned), NULL for slots */
    int n_parts;
} explain_templates;

/* Parses explain.templates syntax. Unknown slots, an unclosed '{', an empty template or more
 * than EXPLAIN_MAX_SLOTS slots in one template are DM_ECONFIG errors naming the template. */
int explain_templates_parse(const char *spec, explain_templates *t);
void explain_templates_free(explain_templates *t);

typedef struct {
    int tpl;                              /* template written; -1 when none qualifies */
    double ll;                            /* log-likelihood of the text's tokens after the prompt */
    int n_tokens;                         /* tokens of the text (pieces tokenized on their own) */
    double score;                         /* ll / n_tokens, what chose the template */
    dm_buf text;
    int n_slots;
    int slot_kind[EXPLAIN_MAX_SLOTS];     /* EXPLAIN_SLOT_* */
    int slot_elem[EXPLAIN_MAX_SLOTS];     /* evidence element (index into ev->el) the value names */
    size_t value_off[EXPLAIN_MAX_SLOTS];  /* slot s's value: values.data + value_off[s] */
    dm_buf values;                        /* slot values, NUL-separated */
    int n_cite;
    int cite[EXPLAIN_MAX_SLOTS];          /* distinct cited elements, in order of first mention */
    /* scratch */
    int cur_elem[EXPLAIN_MAX_SLOTS];
    dm_buf cand;                          /* allowed values of one slot, NUL-separated */
    size_t *cand_off;
    const char **cand_ptr;
    int *cand_elem;
    int cand_cap;
} explain_rationale;

int explain_rationale_init(explain_rationale *r);
void explain_rationale_free(explain_rationale *r);

/* Appends the allowed values of a slot of kind `slot` (part p of template tpl, after the choices
 * r->cur_elem of the template's earlier slots) to the candidate scratch: r->cand_ptr[0..*n) and
 * the evidence element each names, r->cand_elem. Exposed for tests. */
int explain_slot_values(const explain_templates *t, int tpl, int p, const dm_dataset *d, const explain_evidence *ev,
                        explain_rationale *r, int *n);
/* The value string of evidence element `elem` written into a slot of kind `slot`. */
int explain_slot_value(const dm_dataset *d, const explain_evidence *ev, int slot, int elem, dm_buf *out);

/* One template written for one recommendation: ok = 1 when it qualifies; its log-likelihood,
 * tokens, distinct cited elements, score (above; -INFINITY when it does not qualify) and the
 * evidence element of each slot. */
typedef struct {
    int ok;
    double ll;
    int n_tokens;
    int n_cite;
    double score;
    int elem[EXPLAIN_MAX_SLOTS];
} explain_fit;

/* score = (ll + coverage_weight * n_cite) / n_tokens (0 without tokens). */
double explain_fit_score(double ll, int n_tokens, int n_cite, double coverage_weight);
/* Every template of t written after the prompt cached in c: fit (t->n). r is scratch. */
int explain_rationale_fit(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                          const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r, explain_fit *fit);
/* r = template tpl of fit (which must qualify); tpl = -1: no rationale (empty text). */
int explain_rationale_set(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                          const explain_fit *fit, explain_rationale *r);
/* Writes the best template (see above) after the prompt cached in c; r receives the result. A
 * recommendation whose evidence qualifies no template gets r->tpl = -1 and an empty text. */
int explain_rationale_make(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                           const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r);
/* The written template alone (tpl), for comparisons; r->tpl = -1 when it does not qualify. */
int explain_rationale_make_one(const explain_templates *t, int tpl, const dm_dataset *d, const explain_evidence *ev,
                               const lm_model *lm, lm_cache *c, double coverage_weight, explain_rationale *r);

/* The templates of n_items recommendations (a user's top K) chosen jointly: score (n_items, n_tpl)
 * row-major, -INFINITY where a template does not qualify. Every template has a cap of
 * explain_template_cap(n_items, share) items. The assignment minimises first the number of items
 * beyond the caps, then maximises the total score: a template takes more than its cap only when
 * the data demand it, i.e. no assignment of qualifying templates stays within the caps (e.g. an
 * item for which that template alone qualifies). tpl[k] = the chosen template (-1 when none
 * qualifies); *over = the items beyond the caps (0 unless demanded). Exact (Kuhn-Munkres on
 * n_items x n_tpl n_items slots, O(n_items^3 n_tpl)); ties resolve deterministically. */
int explain_templates_assign(int n_items, int n_tpl, const double *score, double share, int *tpl, int *over);
/* max(1, floor(share n_items)) */
int explain_template_cap(int n_items, double share);
/* The reference rationale of the explanation loss, without the LM: the first template (in order)
 * that qualifies, each slot its first allowed value (the strongest evidence of that kind); ll and
 * n_tokens are 0. r->tpl = -1 when no template qualifies. */
int explain_rationale_reference(const explain_templates *t, const dm_dataset *d, const explain_evidence *ev,
                                explain_rationale *r);
/* Token ids of a rationale as it was written (each fixed segment and value tokenized on its own),
 * e.g. as targets of the explanation loss. Appends to out. */
int explain_rationale_tokens(const lm_model *lm, const explain_templates *t, const explain_rationale *r, bpe_ids *out);
/* Attribute ids the rationale names (its {brand}/{category}/{price} slots and the attribute of each
 * {n}), sorted ascending and distinct, into out (cap >= EXPLAIN_MAX_SLOTS); *n = count. */
void explain_rationale_attrs(const explain_rationale *r, const explain_evidence *ev, int32_t *out, int *n);

#endif
