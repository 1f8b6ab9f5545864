/* adam.c: see adam.h. */
#include "adam.h"

#include "linear.h" /* NN_PAR_MIN */

#ifdef __AVX__
#include <immintrin.h>
#endif
#include <math.h>

enum { DECAY_NONE, DECAY_L2, DECAY_W };

/* One range of n elements. mode is a constant at every call, so each specialisation is
 * branch-free. sqrtf keeps errno semantics under the project's flags and so never vectorises; with
 * AVX the body is written with 8-wide intrinsics (the same operations in the same order, so the
 * results equal the scalar loop's). */
static inline __attribute__((always_inline)) void
range(float *restrict w, const float *restrict gr, float *restrict mm, float *restrict vv, size_t n,
      int mode, float b1, float b2, float eps, float wd, float shrink, float step_size,
      float inv_bc2s)
{
    size_t nb = (n + 1023) / 1024;
#pragma omp parallel for schedule(static) if (n > NN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t i = blk * 1024, end = i + 1024 < n ? i + 1024 : n;
#ifdef __AVX__
        const __m256 vb1 = _mm256_set1_ps(b1), vb1c = _mm256_set1_ps(1.0f - b1);
        const __m256 vb2 = _mm256_set1_ps(b2), vb2c = _mm256_set1_ps(1.0f - b2);
        const __m256 vwd = _mm256_set1_ps(wd), vshr = _mm256_set1_ps(shrink);
        const __m256 vst = _mm256_set1_ps(step_size);
        const __m256 vinv = _mm256_set1_ps(inv_bc2s), veps = _mm256_set1_ps(eps);
        for (; i + 8 <= end; i += 8) {
            __m256 wi = _mm256_loadu_ps(w + i), g = _mm256_loadu_ps(gr + i);
            if (mode == DECAY_L2) g = _mm256_add_ps(g, _mm256_mul_ps(vwd, wi));
            if (mode == DECAY_W) wi = _mm256_mul_ps(wi, vshr);
            __m256 mi =
                _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(mm + i)), _mm256_mul_ps(vb1c, g));
            __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(vv + i)),
                                      _mm256_mul_ps(_mm256_mul_ps(vb2c, g), g));
            _mm256_storeu_ps(mm + i, mi);
            _mm256_storeu_ps(vv + i, vi);
            __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vinv), veps);
            _mm256_storeu_ps(w + i, _mm256_sub_ps(wi, _mm256_div_ps(_mm256_mul_ps(vst, mi), den)));
        }
#endif
        for (; i < end; i++) {
            float wi = w[i], g = gr[i];
            if (mode == DECAY_L2) g = g + wd * wi;
            if (mode == DECAY_W) wi = wi * shrink;
            float mi = b1 * mm[i] + (1.0f - b1) * g;
            float vi = b2 * vv[i] + (1.0f - b2) * g * g;
            mm[i] = mi;
            vv[i] = vi;
            w[i] = wi - step_size * mi / (sqrtf(vi) * inv_bc2s + eps);
        }
    }
}

void nn_adam_step_tensors(const nn_adam *o, long t, float *w, const float *g, float *m, float *v,
                          int ntensors, const size_t *sizes, const unsigned char *decay)
{
    const double bc1 = 1.0 - pow(o->beta1, (double)t);
    const double bc2 = 1.0 - pow(o->beta2, (double)t);
    const float step_size = (float)(o->lr / bc1), inv_bc2s = (float)(1.0 / sqrt(bc2));
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    const float shrink = 1.0f - o->lr * wd;
    size_t off = 0;
    for (int k = 0; k < ntensors; k++) {
        size_t n = sizes[k];
        float *wk = w + off, *mk = m + off, *vk = v + off;
        const float *gk = g + off;
        int mode = wd == 0.0f || (decay && !decay[k]) ? DECAY_NONE
                   : o->decay_mode == NN_ADAM_L2      ? DECAY_L2
                                                      : DECAY_W;
        if (mode == DECAY_L2)
            range(wk, gk, mk, vk, n, DECAY_L2, b1, b2, eps, wd, shrink, step_size, inv_bc2s);
        else if (mode == DECAY_W)
            range(wk, gk, mk, vk, n, DECAY_W, b1, b2, eps, wd, shrink, step_size, inv_bc2s);
        else
            range(wk, gk, mk, vk, n, DECAY_NONE, b1, b2, eps, wd, shrink, step_size, inv_bc2s);
        off += n;
    }
}

void nn_adam_step(const nn_adam *o, long t, float *w, const float *g, float *m, float *v, size_t n)
{
    nn_adam_step_tensors(o, t, w, g, m, v, 1, &n, NULL);
}

void nn_adam_step_naive(const nn_adam *o, long t, float *w, const float *g, float *m, float *v,
                        size_t n)
{
    const double lr = o->lr, b1 = o->beta1, b2 = o->beta2, wd = o->weight_decay;
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    for (size_t i = 0; i < n; i++) {
        double wi = w[i], gi = g[i];
        if (o->decay_mode == NN_ADAM_L2) gi += wd * wi;
        else wi *= 1.0 - lr * wd;
        double mi = b1 * m[i] + (1.0 - b1) * gi, vi = b2 * v[i] + (1.0 - b2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        w[i] = (float)(wi - lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + o->eps));
    }
}
