/* test_bpr.c: BPR-MF (src/bpr/bpr.h)
 *  - the loss and every gradient of a batch of triples (repeated users and items among them)
 *    against PyTorch in float64 (tests/reference/gen_bpr.py), and against central finite
 *    differences of the loss in double
 *  - four Adam steps against torch.optim.Adam
 *  - negatives: never one of the user's training items, keyed by (seed, step, position) only
 *  - scores: U_u . V_i for every item
 * Tolerances: the C code works in float32 on float32 inputs, so each quantity carries a relative
 * rounding error of a few units of 2^-24 times the number of terms it sums (d = 5 products per dot,
 * at most N = 19 triples per gradient row); 1e-5 relative to the largest value bounds that with a
 * wide margin, and a dropped or doubled term (a change of at least 1e-2 relative here) fails it.
 */
#include "tap.h"
#include "testlib.h"

#include "../../src/bpr/bpr.h"
#include "../../src/core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_file(const char *dir, const char *name, void *buf, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/bpr/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, bytes, f);
    fclose(f);
    return n == bytes;
}

enum { NU = 7, NI = 11, D = 5, N = 19 };

/* a model over a tiny dataset with the given parameters (the training set is irrelevant here) */
static void make_model(bpr_model *m, const float *params, float reg, float lr)
{
    int64_t off[NU + 1] = {0};
    int32_t item[1] = {0};
    int8_t roles[1] = {DM_TRAIN};
    off[1] = 1;
    for (int u = 2; u <= NU; u++) off[u] = 1;
    dm_dataset d = tl_dataset_view(NU, NI, off, item);
    bpr_config c = {NU, NI, D, reg, 0.1f, lr, 0.9f, 0.999f, 1e-8f};
    CHECK(bpr_init(m, &c, &d, roles, 1) == DM_OK, "bpr_init: %s", dm_error_message());
    memcpy(m->params, params, m->nparams * sizeof *params);
}

static void test_reference(const char *ref)
{
    float p[(NU + NI) * D];
    int32_t u[N], i[N], j[N];
    double loss_ref, grad[(NU + NI) * D], adam[(NU + NI) * D];
    if (!read_file(ref, "params.f32", p, sizeof p) || !read_file(ref, "u.i32", u, sizeof u) || !read_file(ref, "i.i32", i, sizeof i) ||
        !read_file(ref, "j.i32", j, sizeof j) || !read_file(ref, "loss.f64", &loss_ref, sizeof loss_ref) ||
        !read_file(ref, "grad.f64", grad, sizeof grad) || !read_file(ref, "adam.f64", adam, sizeof adam)) {
        CHECK(0, "cannot read the reference files under %s/bpr (gen_bpr.py)", ref);
        return;
    }
    const double norm = 23.0;
    bpr_model m;
    make_model(&m, p, 0.01f, 0.01f);
    double loss = 0;
    memset(m.grads, 0, m.nparams * sizeof *m.grads);
    CHECK(bpr_grad_triples(&m, u, i, j, N, norm, &loss) == DM_OK, "grad: %s", dm_error_message());
    NEAR(loss, loss_ref, 1e-5 * fabs(loss_ref), "loss against PyTorch");
    double gmax = 0, dmax = 0;
    for (size_t k = 0; k < m.nparams; k++) gmax = fmax(gmax, fabs(grad[k]));
    for (size_t k = 0; k < m.nparams; k++) dmax = fmax(dmax, fabs(m.grads[k] - grad[k]));
    printf("# gradient: max |C - PyTorch| = %.3g (max |grad| %.3g)\n", dmax, gmax);
    CHECK(dmax <= 1e-5 * gmax, "gradient against PyTorch: %.3g > %.3g", dmax, 1e-5 * gmax);
    /* finite differences of the loss (double, on the float parameters) for a few parameters */
    for (size_t k = 0; k < m.nparams; k += 7) {
        float keep = m.params[k];
        double h = 1e-2, lp, lm;
        m.params[k] = keep + (float)h;
        memset(m.grads, 0, m.nparams * sizeof *m.grads);
        bpr_grad_triples(&m, u, i, j, N, norm, &lp);
        m.params[k] = keep - (float)h;
        memset(m.grads, 0, m.nparams * sizeof *m.grads);
        bpr_grad_triples(&m, u, i, j, N, norm, &lm);
        m.params[k] = keep;
        double fd = (lp - lm) / (2 * h) / norm;
        /* central differences: error O(h^2 |f'''|) ~ 1e-4 relative here, plus float rounding of the step */
        NEAR(fd, grad[k], 1e-3 * gmax + 1e-4, "finite difference");
    }
    /* Adam: the same triples every step */
    for (int s = 0; s < 4; s++) {
        memset(m.grads, 0, m.nparams * sizeof *m.grads);
        bpr_grad_triples(&m, u, i, j, N, norm, NULL);
        bpr_adam_step(&m);
    }
    double amax = 0;
    for (size_t k = 0; k < m.nparams; k++) amax = fmax(amax, fabs(m.params[k] - adam[k]));
    printf("# 4 Adam steps: max |C - torch.optim.Adam| = %.3g\n", amax);
    /* each step moves a parameter by at most lr = 0.01; float32 rounding of the moments is ~1e-7 of that */
    CHECK(amax <= 1e-6, "Adam against PyTorch: %.3g", amax);
    bpr_free(&m);
}

static void test_negatives_and_scores(void)
{
    /* 3 users; user 0 took items 0..8 of 10 in training, so its only negative is 9 */
    int64_t off[4] = {0, 9, 11, 12};
    int32_t item[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5};
    int8_t roles[12] = {0};
    dm_dataset d = tl_dataset_view(3, 10, off, item);
    bpr_config c = {3, 10, 4, 0.0f, 0.1f, 0.01f, 0.9f, 0.999f, 1e-8f};
    bpr_model m;
    CHECK(bpr_init(&m, &c, &d, roles, 3) == DM_OK, "init");
    CHECK(m.n_ex == 12, "the training interactions are the examples: %zu", m.n_ex);
    int ok = 1;
    for (uint64_t s = 0; s < 50; s++) ok &= bpr_negative(&m, 0, 5, s, (int64_t)s) == 9;
    CHECK(ok, "user 0's negatives avoid its training items");
    CHECK(bpr_negative(&m, 10, 5, 3, 17) == bpr_negative(&m, 10, 5, 3, 17), "a negative is a function of (seed, step, position)");
    int differ = 0;
    for (uint64_t s = 0; s < 20; s++) differ |= bpr_negative(&m, 10, 5, s, 0) != bpr_negative(&m, 10, 5, 0, 0);
    CHECK(differ, "negatives change with the step");
    size_t users[2] = {2, 0};
    float sc[20], tmp[8];
    bpr_scores(&m, users, 2, sc, tmp);
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int it = 0; it < 10; it++) {
            double want = 0;
            for (int k = 0; k < 4; k++) want += (double)m.params[users[b] * 4 + (size_t)k] * m.params[(3 + (size_t)it) * 4 + (size_t)k];
            worst = fmax(worst, fabs(want - sc[b * 10 + it]));
        }
    CHECK(worst < 1e-6, "scores are U_u . V_i: %.3g", worst);
    bpr_free(&m);
}

int main(void)
{
    tl_with_ref(test_reference);
    test_negatives_and_scores();
    return tap_done("test_bpr");
}
