/* align_inputs.h: the frozen per-item inputs of the multimodal aligner, on every rank.
 *
 *   cf      e_cf from cf.h5 (SASRec item embeddings); present for items seen in the training split
 *           (a cold item's embedding was never trained, so it counts as absent)
 *   text    imported text features from the dataset; otherwise LSA of the items' titles, brands and
 *           category paths (TF-IDF, randomised SVD on ScaLAPACK), present where an item has terms
 *   visual, audio   imported features from the dataset, with their presence masks
 * Modalities wider than modal.pca_above are reduced to modal.pca_dim principal components (pdsyevd)
 * when modal.pca_dim > 0. Everything is computed on row blocks and gathered, so all ranks end with
 * the same matrices.
 */
#ifndef DM_ALIGN_INPUTS_H
#define DM_ALIGN_INPUTS_H

#include "../mpi/par.h"

#include "../src/align/align.h"

#include "../src/config/config.h"
#include "../src/data/dataset.h"

enum { AI_CF = 0, AI_TEXT = 1, AI_VISUAL = 2, AI_AUDIO = 3, AI_NMOD = 4 };
extern const char *const ai_names[AI_NMOD];

typedef struct {
    size_t n_items;
    size_t dim[AI_NMOD];      /* 0 = modality unavailable for the whole dataset */
    float *x[AI_NMOD];        /* (n_items, dim) */
    uint8_t *present[AI_NMOD]; /* (n_items) */
    char source[AI_NMOD][160];
    double lsa_s[64];         /* leading singular values of the LSA (provenance) */
    int n_lsa_s;
} ai_inputs;

int ai_build(par_ctx *ctx, const dm_cfg *cfg, const dm_dataset *d, const int8_t *roles, const float *e_cf, size_t C,
             ai_inputs *in);
void ai_free(ai_inputs *in);

/* The per-modality item latents z_i^k of the trained aligner in align.h5 (path), from its stored
 * inputs (/align/inputs): *zm (n_items, AI_NMOD, d) (zero where absent), *present (n_items,
 * AI_NMOD); every rank a full copy, malloc'd for the caller. The evidence of explanations uses them
 * (the modality that agrees most with the user). */
int ai_modal_latents(par_ctx *ctx, const char *path, size_t n_items, size_t d, float **zm, uint8_t **present);

/* The aligner's stored inputs in align.h5 (path) for the modalities am uses: x[k] (n, D_k), NULL
 * where D_k = 0, and present (n, ALIGN_K) (left as given where D_k = 0); every rank a full copy,
 * malloc'd for the caller (freed here on failure). Agreed. */
int ai_read_stored(par_ctx *ctx, const char *path, const align_model *am, size_t n, float *x[ALIGN_K], uint8_t *present);

/* The fused item latents of the aligner in align.h5 with the modalities of `drop` (bit k =
 * ALIGN_CF..ALIGN_AUDIO) taken from every item, as the fusion treats an item that lacks them (an
 * item left with none gets 0): zs (n_items, d), the stored z_base, for the items that have none of
 * them, recomputed rows for the *changed others. So dropping a modality no item has gives z_base
 * bitwise. *z (n_items, d) on every rank, malloc'd for the caller. Agreed. */
int ai_latents_without(par_ctx *ctx, const char *path, const float *zs, size_t n_items, size_t d, unsigned drop, float **z,
                       size_t *changed);

#endif
