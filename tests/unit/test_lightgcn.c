/* test_lightgcn.c: LightGCN (src/lightgcn/lightgcn.h)
 *  - the final embeddings (2 layers over RecBole's normalised graph: a repeated pair counted once,
 *    an isolated user and item), the loss and every gradient of 13 triples, three Adam steps and the
 *    scores against PyTorch in float64 (tests/reference/gen_lightgcn.py), and central finite
 *    differences of the loss in double
 *  - the data-parallel contract: the gradients of two shares of a batch add up to the batch's
 *  - negatives avoid the user's training items; F follows the parameters when they change
 * Tolerances: float32 arithmetic on float32 inputs; each value sums at most ~20 rounded terms
 * (2 layers of at most 5 neighbours, d = 4 products, 13 triples), relative error a few units of
 * 2^-24 each: 1e-5 relative to the largest value bounds it with a wide margin, and a missing or
 * doubled term (at least 1e-2 relative here) fails it.
 */
#include "tap.h"
#include "testlib.h"

#include "../../src/core/err.h"
#include "../../src/lightgcn/lightgcn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NU = 6, NI = 8, D = 4, K = 2, N = 13, NINTER = 15 };
static const double NORM = 17.0;

static void make_model(lightgcn_model *m, const dm_dataset *d, const int8_t *roles)
{
    lightgcn_config c = {NU, NI, D, K, 0.01f, 0.01f, 0.9f, 0.999f, 1e-8f};
    CHECK(lightgcn_init(m, &c, d, roles, 3) == DM_OK, "lightgcn_init: %s", dm_error_message());
}

static double grad_of(lightgcn_model *m, const int32_t *u, const int32_t *i, const int32_t *j)
{
    double l = 0;
    memset(m->grads, 0, m->nparams * sizeof *m->grads);
    CHECK(lightgcn_grad_triples(m, u, i, j, N, NORM, &l) == DM_OK, "grad: %s", dm_error_message());
    return l;
}

static double against(const float *x, const double *ref, size_t n, const char *what)
{
    double rmax, d = tl_maxdiff_ref(x, ref, n, &rmax);
    printf("# %s: max |C - PyTorch| = %.3g (max |ref| %.3g)\n", what, d, rmax);
    CHECK(d <= 1e-5 * rmax, "%s against PyTorch: %.3g > %.3g", what, d, 1e-5 * rmax);
    return rmax;
}

static void test_reference(const char *ref)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/lightgcn", ref);
    const size_t np = (NU + NI) * D;
    int64_t *off = tl_load(dir, "off", ".i64", (NU + 1) * 8);
    int32_t *item = tl_load(dir, "item", ".i32", NINTER * 4), *u = tl_load(dir, "u", ".i32", N * 4), *i = tl_load(dir, "i", ".i32", N * 4),
            *j = tl_load(dir, "j", ".i32", N * 4);
    float *p = tl_load(dir, "params", ".f32", np * 4);
    double *F = tl_load(dir, "final", ".f64", np * 8), *loss = tl_load(dir, "loss", ".f64", 8), *grad = tl_load(dir, "grad", ".f64", np * 8),
           *adam = tl_load(dir, "adam", ".f64", np * 8), *scores = tl_load(dir, "scores", ".f64", NU * NI * 8);
    int8_t roles[NINTER] = {0};
    dm_dataset d = tl_dataset_view(NU, NI, off, item);
    lightgcn_model m;
    make_model(&m, &d, roles);
    CHECK(m.nnz == 2 * 14, "the graph holds each distinct pair twice: %zu", m.nnz);
    memcpy(m.params, p, np * sizeof *p);
    against(lightgcn_final(&m), F, np, "final embeddings");
    double l = grad_of(&m, u, i, j);
    NEAR(l, *loss, 1e-5 * fabs(*loss), "loss against PyTorch");
    double gmax = against(m.grads, grad, np, "gradient");
    double fdmax = 0;
    for (size_t k = 0; k < np; k += 3) {
        float keep = m.params[k];
        const double h = 1e-2;
        m.params[k] = keep + (float)h;
        double lp = grad_of(&m, u, i, j);
        m.params[k] = keep - (float)h;
        double lm = grad_of(&m, u, i, j);
        m.params[k] = keep;
        fdmax = fmax(fdmax, fabs((lp - lm) / (2 * h) / NORM - grad[k]));
    }
    /* central differences: O(h^2 |f'''|) ~ 1e-4 relative, plus float rounding of the loss / h */
    printf("# finite differences: max |fd - PyTorch| = %.3g\n", fdmax);
    CHECK(fdmax <= 1e-3 * gmax + 1e-5, "finite differences: %.3g", fdmax);
    float sc[NU * NI];
    size_t users[NU];
    for (size_t k = 0; k < NU; k++) users[k] = k;
    CHECK(lightgcn_scores(&m, users, NU, sc) == DM_OK, "scores");
    against(sc, scores, NU * NI, "scores");
    for (int s = 0; s < 3; s++) {
        grad_of(&m, u, i, j);
        lightgcn_adam_step(&m);
    }
    double amax = tl_maxdiff_ref(m.params, adam, np, NULL);
    printf("# 3 Adam steps: max |C - torch.optim.Adam| = %.3g\n", amax);
    /* a step moves a parameter by at most lr = 0.01; float32 rounding of the moments ~1e-7 of that */
    CHECK(amax <= 1e-6, "Adam against PyTorch: %.3g", amax);
    /* F follows the parameters: after the steps it is the propagation of the new ones */
    float *again = malloc(np * sizeof *again);
    const float *Fn = lightgcn_final(&m);
    lightgcn_model fresh;
    make_model(&fresh, &d, roles);
    memcpy(fresh.params, m.params, np * sizeof *again);
    memcpy(again, lightgcn_final(&fresh), np * sizeof *again);
    CHECK(tl_maxdiff(again, Fn, np) == 0, "F is recomputed when the parameters change");
    lightgcn_free(&fresh);
    free(again);
    lightgcn_free(&m);
    TL_FREE(off, item, u, i, j, p, F, loss, grad, adam, scores);
}

static void test_shares_and_negatives(void)
{
    /* 4 users, 10 items; user 0 took items 0..8, so its only negative is 9 */
    int64_t off[5] = {0, 9, 12, 14, 17};
    int32_t item[17] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5, 9, 1, 2, 7, 7};
    int8_t roles[17] = {0};
    dm_dataset d = tl_dataset_view(4, 10, off, item);
    lightgcn_config c = {4, 10, 5, 3, 0.001f, 0.01f, 0.9f, 0.999f, 1e-8f};
    lightgcn_model m;
    CHECK(lightgcn_init(&m, &c, &d, roles, 8) == DM_OK, "init");
    CHECK(m.n_ex == 17, "the training interactions are the examples: %zu", m.n_ex);
    int ok = 1;
    for (uint64_t s = 0; s < 50; s++) ok &= lightgcn_negative(&m, 0, 5, s, (int64_t)s) == 9;
    CHECK(ok, "user 0's negatives avoid its training items");
    size_t ex[6] = {16, 0, 9, 13, 3, 12};
    int64_t gidx[6] = {0, 1, 2, 3, 4, 5};
    double lw, l1, l2;
    float *whole = malloc(m.nparams * sizeof *whole);
    memset(m.grads, 0, m.nparams * sizeof *m.grads);
    lightgcn_model_ops.grad(&m, ex, 6, gidx, 4, 2, 6.0, &lw);
    memcpy(whole, m.grads, m.nparams * sizeof *whole);
    memset(m.grads, 0, m.nparams * sizeof *m.grads);
    lightgcn_model_ops.grad(&m, ex, 4, gidx, 4, 2, 6.0, &l1);
    lightgcn_model_ops.grad(&m, ex + 4, 2, gidx + 4, 4, 2, 6.0, &l2);
    double dmax = tl_maxdiff(whole, m.grads, m.nparams), gmax = tl_maxabs(whole, m.nparams);
    printf("# shares {0..3} + {4, 5} vs the whole batch: max gradient difference %.3g (max %.3g)\n", dmax, gmax);
    /* the same terms summed in another order: float rounding only */
    CHECK(dmax <= 1e-6 * gmax, "shares add up to the batch: %.3g", dmax);
    NEAR(l1 + l2, lw, 1e-9 * lw, "losses of the shares add up");
    free(whole);
    lightgcn_free(&m);
}

int main(void)
{
    tl_with_ref(test_reference);
    test_shares_and_negatives();
    return tap_done("test_lightgcn");
}
