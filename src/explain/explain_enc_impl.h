/* explain_enc_impl.h: internals shared by the fast and naive evidence encoder kernels. */
#ifndef DM_EXPLAIN_ENC_IMPL_H
#define DM_EXPLAIN_ENC_IMPL_H

#include "explain_enc.h"

/* Validates a batch and copies it into the activations (off, kind, x, w, and the kind grouping). */
int explain_enc_stash(const explain_enc *e, explain_enc_acts *a, const int64_t *off, int B, const int8_t *kind,
                      const float *x, const float *w);

#endif
