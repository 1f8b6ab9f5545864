/* test_gru4rec.c: GRU4Rec (src/gru4rec/gru4rec.h)
 *  - logits, loss and every gradient of a batch of three left-aligned rows (two GRU layers, an
 *    explicit dropout mask, a repeated input item) against PyTorch in float64
 *    (tests/reference/gen_gru4rec.py: nn.GRU, nn.Linear, cross_entropy), and against central
 *    finite differences of the loss in double
 *  - three Adam steps against torch.optim.Adam
 *  - scores of every item from a user's history (no dropout, the last position) against PyTorch
 *  - the data-parallel contract: the gradients of the shares {0} and {1, 2} of a batch add up to
 *    the gradient of the whole batch (the dropout masks keyed by global position), and the masks
 *    do not depend on the batch a row is in
 * Tolerances: float32 arithmetic on float32 inputs; each quantity goes through at most ~40 rounded
 * operations in sequence (4 GRU steps of 2 layers, the dense layer, 13 logits), each with a
 * relative error of 2^-24 ~ 6e-8, and the sigmoid/tanh saturations only shrink errors: 1e-5 relative
 * to the largest value bounds that with a margin of ~4x; a dropped or doubled term (a change of at
 * least 1e-2 relative on these random values) fails it.
 */
#include "tap.h"
#include "testlib.h"

#include "../../src/core/err.h"
#include "../../src/gru4rec/gru4rec.h"
#include "../../src/nn/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NI = 13, E = 6, H = 5, L = 2, T = 4, B = 3, NV = 9 };
static const double NORM = 11.0;

static void make_model(gru4rec_model *m, const dm_dataset *d, const int8_t *roles, int max_batch)
{
    gru4rec_config c = {NI, E, H, L, T, 0.3f, 0.01f, 0.9f, 0.999f, 1e-8f, max_batch};
    CHECK(gru4rec_init(m, &c, d, roles, 5) == DM_OK, "gru4rec_init: %s", dm_error_message());
}

/* loss of the batch already in m->a with mask (grads zeroed first) */
static double loss_grad(gru4rec_model *m, const float *mask)
{
    double loss = 0;
    memset(m->grads, 0, m->nparams * sizeof *m->grads);
    size_t nv = gru4rec_forward(m, B, mask);
    CHECK(gru4rec_backward(m, B, nv, NORM, &loss) == DM_OK, "backward: %s", dm_error_message());
    return loss;
}

static double relmax(const float *x, const double *ref, size_t n, const char *what) { return tl_check_ref(x, ref, n, 1e-5, what); }

/* the loss of the batch in the model with the reference's mask, for finite differences */
typedef struct {
    gru4rec_model *m;
    const float *mask;
} fd_ctx;
static double fd_loss(void *c) { return loss_grad(((fd_ctx *)c)->m, ((fd_ctx *)c)->mask); }

static void test_reference(const char *ref)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gru4rec", ref);
    int64_t off[B + 1] = {0};
    int32_t *seq = tl_load(dir, "seq", ".i32", B * T * 4), *tgt = tl_load(dir, "tgt", ".i32", B * T * 4), *len = tl_load(dir, "len", ".i32", B * 4);
    for (int b = 0; b < B; b++) off[b + 1] = off[b] + len[b];
    int32_t hist[B * T];
    for (int b = 0; b < B; b++) memcpy(hist + off[b], seq + b * T, (size_t)len[b] * sizeof *hist);
    int8_t roles[B * T] = {0}; /* every history row DM_TRAIN: scored as the valid split's history */
    dm_dataset d = tl_dataset_view(B, NI, off, hist);
    gru4rec_model m;
    make_model(&m, &d, roles, B);
    float *p = tl_load(dir, "params", ".f32", m.nparams * 4), *mask = tl_load(dir, "mask", ".f32", T * B * E * 4);
    double *logits = tl_load(dir, "logits", ".f64", NV * NI * 8), *loss_ref = tl_load(dir, "loss", ".f64", 8);
    double *grad = tl_load(dir, "grad", ".f64", m.nparams * 8), *adam = tl_load(dir, "adam", ".f64", m.nparams * 8);
    double *scores_ref = tl_load(dir, "scores", ".f64", B * NI * 8);
    memcpy(m.params, p, m.nparams * sizeof *p);
    memcpy(m.a.seq, seq, sizeof(int32_t) * B * T);
    memcpy(m.a.tgt, tgt, sizeof(int32_t) * B * T);
    for (int b = 0; b < B; b++) m.a.len[b] = len[b];
    /* logits of the valid rows */
    size_t nv = gru4rec_forward(&m, B, mask);
    CHECK(nv == NV, "valid rows: %zu", nv);
    float lg[NV * NI];
    nn_sgemm_naive(CblasNoTrans, CblasTrans, NV, NI, E, 1.0f, m.a.ov, E, m.p.emb, E, 0.0f, lg, NI);
    relmax(lg, logits, NV * NI, "logits");
    double loss = loss_grad(&m, mask);
    NEAR(loss, *loss_ref, 1e-5 * fabs(*loss_ref), "loss against PyTorch");
    double gmax = relmax(m.grads, grad, m.nparams, "gradient");
    /* finite differences of the loss for every 11th parameter (every tensor is visited) */
    fd_ctx fc = {&m, mask};
    double fdmax = tl_fd_maxdiff(m.params, m.nparams, 11, 1e-2, NORM, grad, fd_loss, &fc);
    /* central differences: O(h^2 |f'''|) ~ 1e-4 relative, plus float rounding of the loss / h */
    printf("# finite differences: max |fd - PyTorch| = %.3g\n", fdmax);
    CHECK(fdmax <= 1e-3 * gmax + 1e-4, "finite differences: %.3g", fdmax);
    for (int s = 0; s < 3; s++) {
        loss_grad(&m, mask);
        gru4rec_adam_step(&m);
    }
    double amax = tl_maxdiff_ref(m.params, adam, m.nparams, NULL);
    printf("# 3 Adam steps: max |C - torch.optim.Adam| = %.3g\n", amax);
    /* a step moves a parameter by at most lr = 0.01; float32 rounding of the moments ~1e-7 of that */
    CHECK(amax <= 1e-6, "Adam against PyTorch: %.3g", amax);
    /* scores from the histories (roles 0 < DM_VALID), with the reference's parameters */
    memcpy(m.params, p, m.nparams * sizeof *p);
    size_t users[B] = {0, 1, 2};
    float sc[B * NI];
    CHECK(gru4rec_scores(&m, &d, roles, DM_VALID, users, B, sc) == DM_OK, "scores");
    relmax(sc, scores_ref, B * NI, "scores");
    gru4rec_free(&m);
    TL_FREE(seq, tgt, len, p, mask, logits, loss_ref, grad, adam, scores_ref);
}

static void test_shares(void)
{
    /* 4 users with 3..6 training items; the last user's items beyond T + 1 are cut */
    int64_t off[5] = {0, 3, 7, 12, 18};
    int32_t item[18];
    for (int k = 0; k < 18; k++) item[k] = (k * 7 + 3) % NI;
    int8_t roles[18] = {0};
    dm_dataset d = tl_dataset_view(4, NI, off, item);
    gru4rec_model m;
    make_model(&m, &d, roles, 4);
    CHECK(m.seqs.n == 4, "training users: %zu", m.seqs.n);
    size_t ex[3] = {3, 0, 2};
    int64_t gidx[3] = {5, 6, 7};
    double norm = 0;
    for (int k = 0; k < 3; k++) norm += gru4rec_model_ops.batch_norm(&m, ex + k, 1);
    CHECK(norm == 4 + 2 + 4, "normaliser: targets min(len - 1, T) summed: %g", norm);
    /* the same terms summed in another order: float rounding only */
    tl_model_shares(&gru4rec_model_ops, &m, ex, 3, gidx, 9, 4, 1e-6, 1e-9);
    /* a row's mask depends on (seed, step, global position) only, not on the batch */
    float *m3 = calloc((size_t)T * 3 * E, sizeof *m3), *m1 = calloc((size_t)T * E, sizeof *m1);
    gru4rec_dropout_row(&m, 3, 2, 9, 4, 7, m3);
    gru4rec_dropout_row(&m, 1, 0, 9, 4, 7, m1);
    int same = 1, zeros = 0;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < E; k++) {
            same &= m3[((size_t)t * 3 + 2) * E + (size_t)k] == m1[(size_t)t * E + (size_t)k];
            zeros += m1[(size_t)t * E + (size_t)k] == 0.0f;
        }
    CHECK(same, "a row's dropout mask does not depend on its batch");
    CHECK(zeros > 0 && zeros < T * E, "the mask drops some and keeps some: %d of %d", zeros, T * E);
    /* scoring an empty history gives o = b_d */
    float sc[NI], want[NI];
    size_t u = 0;
    int8_t later[18];
    memset(later, DM_TEST, sizeof later);
    CHECK(gru4rec_scores(&m, &d, later, DM_VALID, &u, 1, sc) == DM_OK, "scores");
    nn_sgemm_naive(CblasNoTrans, CblasTrans, 1, NI, E, 1.0f, m.p.dense_b, E, m.p.emb, E, 0.0f, want, NI);
    CHECK(tl_maxdiff(sc, want, NI) <= 1e-6 * tl_maxabs(want, NI), "an empty history scores b_d . E");
    TL_FREE(m3, m1);
    gru4rec_free(&m);
}

int main(void)
{
    tl_with_ref(test_reference);
    test_shares();
    return tap_done("test_gru4rec");
}
