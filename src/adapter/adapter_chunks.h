/* adapter_chunks.h: reproducible data-parallel sums of the online adapter's gradient and Fisher.
 *
 * A global batch of N examples is cut into chunks of ADAPTER_CHUNK examples whatever the rank
 * count (chunk c = examples [c ADAPTER_CHUNK, min((c + 1) ADAPTER_CHUNK, N))), and ranks share out
 * whole chunks. Each chunk's gradient (or Fisher sum) x_c is computed in float by the same code on
 * the same examples, with the global norm N, and turned into fixed point
 *     q_c,k = round_half_away_from_zero(x_c,k 2^40)     (an int64; |x_c,k 2^40| < 9e18 else DM_ENUM)
 * The integer sums sum_c q_c,k are exact and independent of the order, so any split of the chunks
 * over ranks followed by an integer allreduce (the caller's: kernels never see ranks) gives bitwise
 * the same total, turned back once: g_k = (float)(sum_c q_c,k / 2^40). Float sums in a rank-dependent
 * order would not be, and Adam amplifies that rounding over hundreds of steps. Error against the
 * exact sum of the chunks' floats: at most nchunks 2^-41 before the final float rounding.
 * Bitwise chunk results need bitwise inputs and a fixed-order matrix product (reproducible mode,
 * src/nn/gemm.h); that switch is the caller's.
 */
#ifndef DM_ADAPTER_CHUNKS_H
#define DM_ADAPTER_CHUNKS_H

#include "adapter.h"

#include <stddef.h>
#include <stdint.h>

#define ADAPTER_CHUNK 64                     /* examples per chunk (the adapter's max_batch) */
#define ADAPTER_CHUNK_FIX 1099511627776.0    /* 2^40: fixed-point units per 1 */

enum { ADAPTER_CHUNKS_GRAD = 0, ADAPTER_CHUNKS_FISHER = 1 };

/* Chunks of a batch of n examples: ceil(n / ADAPTER_CHUNK). */
size_t adapter_chunks_count(size_t n);
/* acc[k] += q(x[k]), k < n; DM_ENUM naming the first x[k] not finite or too large (acc then
 * holds a partial sum). */
int adapter_chunks_fix_add(int64_t *acc, const float *x, size_t n);
/* out[k] = (float)(acc[k] / 2^40), k < n. */
void adapter_chunks_fix_get(const int64_t *acc, size_t n, float *out);
/* fix (m->nparams) = the fixed-point sum over chunks [clo, chi) of the batch (U (N), P (N),
 * Ng (N, K)) of the gradient (what = ADAPTER_CHUNKS_GRAD: adapter_train_step into m->grads_mem)
 * or the Fisher sum (ADAPTER_CHUNKS_FISHER: adapter_fisher_accumulate into m->fisher_acc), each
 * with norm N; fix is zeroed first. Leaves the last chunk's float result in m's buffer; the
 * caller sums fix over ranks and writes it back with adapter_chunks_fix_get. Needs
 * m->cfg.max_batch >= ADAPTER_CHUNK (asserted). */
int adapter_chunks_sum(adapter *m, adapter_acts *a, const adapter_tables *t, const int32_t *U,
                       const int32_t *P, const int32_t *Ng, size_t N, size_t clo, size_t chi,
                       int what, int64_t *fix);

#endif
