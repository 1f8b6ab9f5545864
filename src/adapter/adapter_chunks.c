/* adapter_chunks.c: fixed-point chunked sums of the adapter's gradient and Fisher (see
 * adapter_chunks.h). */
#include "adapter_chunks.h"

#include "../core/err.h"

#include <math.h>
#include <string.h>

size_t adapter_chunks_count(size_t n)
{
    return (n + ADAPTER_CHUNK - 1) / ADAPTER_CHUNK;
}

int adapter_chunks_fix_add(int64_t *acc, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        double q = (double)x[k] * ADAPTER_CHUNK_FIX;
        if (!(fabs(q) < 9.0e18)) return DM_ERR(DM_ENUM, "adapter: gradient %g at parameter %zu is not finite or too large", (double)x[k], k);
        acc[k] += (int64_t)(q < 0 ? q - 0.5 : q + 0.5); /* round half away from zero */
    }
    return DM_OK;
}

void adapter_chunks_fix_get(const int64_t *acc, size_t n, float *out)
{
    for (size_t k = 0; k < n; k++) out[k] = (float)((double)acc[k] / ADAPTER_CHUNK_FIX);
}

int adapter_chunks_sum(adapter *m, adapter_acts *a, const adapter_tables *t, const int32_t *U,
                       const int32_t *P, const int32_t *Ng, size_t N, size_t clo, size_t chi,
                       int what, int64_t *fix)
{
    DM_ASSERT(m->cfg.max_batch >= ADAPTER_CHUNK);
    size_t K = (size_t)m->cfg.negatives;
    memset(fix, 0, m->nparams * sizeof *fix);
    int rc = DM_OK;
    for (size_t c = clo; c < chi && !rc; c++) {
        size_t lo = c * ADAPTER_CHUNK, hi = lo + ADAPTER_CHUNK < N ? lo + ADAPTER_CHUNK : N;
        adapter_batch bt = {(int)(hi - lo), U + lo, P + lo, Ng + lo * K, (double)N};
        if (what == ADAPTER_CHUNKS_FISHER) {
            adapter_fisher_begin(m);
            rc = adapter_fisher_accumulate(m, a, t, &bt);
            if (!rc) rc = adapter_chunks_fix_add(fix, m->fisher_acc, m->nparams);
        } else {
            adapter_zero_grad(m);
            rc = adapter_train_step(m, a, t, &bt, NULL);
            if (!rc) rc = adapter_chunks_fix_add(fix, m->grads_mem, m->nparams);
        }
    }
    return rc;
}
