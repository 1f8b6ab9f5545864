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

#endif
