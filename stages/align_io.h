/* align_io.h: the trained aligner in align.h5 (format "dynmm-align" v1, made by `dynmm align`,
 * stages/stage_align.c): its shape as integer attributes of /align (dim_cf, dim_text, dim_visual,
 * dim_audio, dim_user, d, hidden, act, fusion, rank_loss, negatives) and its weights as
 * /align/weights/<tensor> (align_tensor_info names and shapes). The writer and the reader share
 * that layout here; the rest of align.h5 (inputs, latents, curve) is the align stage's.
 */
#ifndef DM_ALIGN_IO_H
#define DM_ALIGN_IO_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/align/align.h"

#define ALIGN_FORMAT "dynmm-align"
#define ALIGN_VERSION 1

/* Writes m's shape (attributes of /align) and weights into f, an output being written. Collective
 * like every h5_write_all. */
int align_write_model(h5file *f, const align_model *m);

/* Loads the aligner of align.h5 (weights and shape) with activations for `batch` items/users, and
 * optionally its z_base (items, d) into *z_base (malloc'd, *n_items rows). m and ai are the
 * caller's to free (align_free, align_acts_free). Collective; errors agreed. */
int align_load(par_ctx *ctx, const char *path, int batch, align_model *m, align_acts *ai, float **z_base, size_t *n_items);

#endif
