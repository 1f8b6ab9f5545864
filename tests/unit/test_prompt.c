/* test_prompt.c: the soft-prompt projectors: fast vs naive kernels, and every parameter gradient
 * and the input gradient against central finite differences of L = sum(y * R). */
#include "../../src/core/err.h"
#include "../../src/core/rng.h"
#include "../../src/prompt/proj.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double loss(const proj *p, proj_acts *a, const float *x, int N, const float *R, float *y)
{
    proj_forward_naive(p, a, x, N, y);
    double s = 0;
    for (int k = 0; k < N * p->cfg.dout; k++) s += (double)y[k] * R[k];
    return s;
}

int main(void)
{
    proj_config c = {7, 12, 10, 1e-5f};
    size_t n = proj_size(&c);
    float *w = calloc(n, sizeof *w), *g = calloc(n, sizeof *g), *g2 = calloc(n, sizeof *g2);
    proj p, p2;
    proj_bind(&p, &c, w, g);
    proj_bind(&p2, &c, w, g2);
    proj_init(&p, 3, 0.5f);
    /* perturb the layer norm so its gradients are not trivially symmetric */
    dm_rng r;
    dm_rng_seed(&r, 9);
    for (int k = 0; k < c.hidden; k++) {
        p.lnw[k] = 1.0f + 0.3f * (float)dm_rng_normal(&r);
        p.lnb[k] = 0.2f * (float)dm_rng_normal(&r);
    }
    int N = 5;
    float x[5 * 7], R[5 * 10], y[5 * 10], y2[5 * 10], dx[5 * 7], dx2[5 * 7];
    for (int k = 0; k < N * 7; k++) x[k] = (float)dm_rng_normal(&r);
    for (int k = 0; k < N * 10; k++) R[k] = (float)dm_rng_normal(&r);
    proj_acts a;
    proj_acts_init(&a, &c, 8);
    CHECK(proj_forward(&p, &a, x, N, y) == DM_OK, "forward");
    proj_backward(&p, &a, R, dx);
    proj_forward_naive(&p2, &a, x, N, y2);
    proj_backward_naive(&p2, &a, R, dx2);
    double ey = 0, eg = 0, ex = 0;
    for (int k = 0; k < N * 10; k++) ey = fmax(ey, fabs(y[k] - y2[k]));
    for (size_t k = 0; k < n; k++) eg = fmax(eg, fabs(g[k] - g2[k]));
    for (int k = 0; k < N * 7; k++) ex = fmax(ex, fabs(dx[k] - dx2[k]));
    NEAR(ey, 0, 1e-5, "fast vs naive outputs");
    NEAR(eg, 0, 1e-4, "fast vs naive parameter gradients");
    NEAR(ex, 0, 1e-5, "fast vs naive input gradients");
    /* finite differences (central, in float; step 1e-2 with a tolerance relative to the gradient) */
    int bad = 0;
    double worst = 0;
    float ys[5 * 10];
    for (size_t k = 0; k < n; k++) {
        float keep = w[k], h = 1e-2f;
        w[k] = keep + h;
        double lp = loss(&p, &a, x, N, R, ys);
        w[k] = keep - h;
        double lm = loss(&p, &a, x, N, R, ys);
        w[k] = keep;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - g2[k]);
        worst = fmax(worst, e / (1e-2 + fabs(g2[k])));
        if (e > 2e-3 + 2e-2 * fabs(g2[k])) bad++;
    }
    CHECK(bad == 0, "%d of %zu parameter gradients disagree with finite differences (worst relative %.3g)", bad, n, worst);
    for (int k = 0; k < N * 7; k++) {
        float keep = x[k], h = 1e-2f;
        x[k] = keep + h;
        double lp = loss(&p, &a, x, N, R, ys);
        x[k] = keep - h;
        double lm = loss(&p, &a, x, N, R, ys);
        x[k] = keep;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd - dx2[k]) > 2e-3 + 2e-2 * fabs(dx2[k])) bad++;
    }
    CHECK(bad == 0, "input gradients disagree with finite differences");
    printf("projector: fast/naive %.2g %.2g %.2g; finite differences worst relative %.3g over %zu parameters\n", ey, eg, ex, worst, n);
    proj_acts_free(&a);
    free(w);
    free(g);
    free(g2);
    return tap_done("test_prompt");
}
