/* explain_free.h: free-form rationales (explain.rationale = free), decoded by the frozen LM under a
 * constraint that lets it name nothing outside the recommendation's evidence (the paper's open
 * question 1).
 *
 * The decoder writes a sequence of segments, each one entry of a token trie built per
 * recommendation over
 *   - the evidence values: the titles of the evidence items ({item}) and the names of the evidence
 *     attributes of kind brand, category and price, each distinct string once, written with a
 *     leading space;
 *   - the connective words of explain.free_words (fixed for the run), written with a leading space
 *     except '.', ',' and ';'. Words equal (ignoring case) to any item title or attribute name of
 *     the dataset are dropped at init, so a catalogue entry can only be named by an evidence value.
 * Every entry is tokenized on its own (lm_encode). At each step the next token is the most likely
 * (lm_cache_logp, ties: the earlier child) among those the trie allows: inside an entry, its
 * continuations; at an entry's end (or the start), also the first tokens of every entry. The first
 * entry is a connective starting with a capital letter (a sentence opening such as "Recommended"
 * or "You"); within one rationale a value is written at most once, a connective at most twice and
 * never twice in a row, and '.' only after a value. Decoding stops after a '.' once a value has been written, after
 * EXPLAIN_MAX_SLOTS values, or when no entry fits in the rest of explain.free_max_tokens (and of the
 * LM's context): a token is taken only when the entry it belongs to can still be completed within
 * the bound, and before the first value only when a value still fits after it, so a rationale never
 * ends inside an evidence value and writes at least one when any fits. The end-of-text token is never
 * written. Cost: one LM step per token, at most max_tokens of them.
 *
 * The result goes into an explain_rationale (tpl = EXPLAIN_FREE_TPL): the text (the segments
 * concatenated, the leading space dropped), its value segments as slots (slot_kind ITEM / BRAND /
 * CATEGORY / PRICE, slot_elem the evidence element, the value string), the distinct cited
 * elements, ll and n_tokens; and here the segment list (for audits). The cache is restored to its
 * length on entry. Ownership: explain_free owns the words, their tokens, the trie and the segments.
 */
#ifndef DM_EXPLAIN_FREE_H
#define DM_EXPLAIN_FREE_H

#include "explain_rationale.h"

#define EXPLAIN_FREE_TPL (-2) /* explain_rationale.tpl of a free-form rationale */

typedef struct {
    int tok;       /* token id leading here from the parent */
    int child;     /* first child, -1 none */
    int sibling;   /* next sibling, -1 none */
    int entry;     /* entry ending here, -1 none */
    int need;      /* tokens still needed to end an enabled entry (INT_MAX: none reachable) */
    int needv;     /* ... to end an enabled value */
} explain_trie_node;

typedef struct {
    /* fixed for the run */
    int n_words;
    char **word;              /* (n_words) written text of each connective (" because", ".") */
    uint8_t *punct;           /* (n_words) 1 = '.', ',' or ';' alone */
    int *wtok;                /* connective tokens */
    int64_t *wtok_off;        /* (n_words + 1) */
    int period;               /* index of "." among the words, -1 none */
    int max_tokens;
    /* one recommendation: entries n_words.. are the values */
    int n_entries;
    int *ent_elem;            /* (entries) evidence element of a value entry, -1 for words */
    int *ent_slot;            /* (entries) EXPLAIN_SLOT_* of a value entry */
    uint8_t *ent_off;         /* (entries) 1 = disabled for the next choice */
    uint8_t *ent_used;        /* (entries) times written in this rationale */
    int *ent_len;             /* (entries) tokens of a value entry */
    int vmin;                 /* fewest tokens of a value not yet written */
    int ent_cap;
    explain_trie_node *node;
    int n_nodes, node_cap;
    bpe_ids vtok;             /* value tokens (scratch) */
    dm_buf vtext;             /* written value texts, NUL-separated (scratch) */
    size_t *vtext_off;
    /* the last rationale's segments */
    int n_seg;
    int *seg;                 /* (max_tokens) entry of each segment */
} explain_free;

/* words: explain.free_words. Drops the words that name a catalogue entry of d (see above); a list
 * left empty is a DM_ECONFIG error naming the key. */
int explain_free_init(explain_free *f, const char *words, int max_tokens, const dm_dataset *d, const lm_model *lm);
void explain_free_free(explain_free *f);
/* Decodes one rationale after the prompt cached in c (see above) into r. r->tpl = -1 and an empty
 * text when the evidence has no value or nothing fits. */
int explain_free_make(explain_free *f, const dm_dataset *d, const explain_evidence *ev, const lm_model *lm, lm_cache *c,
                      explain_rationale *r);
/* The written text of entry e of the last recommendation (a connective or " value"). */
const char *explain_free_entry_text(const explain_free *f, int e);

#endif
