/* test_bert4rec.c: BERT4Rec (src/bert4rec/bert4rec.h)
 *  - logits, loss and every gradient of a batch of three rows (lengths 5, 2, 4; two blocks of two
 *    heads; a fixed cloze mask of five positions; fixed dropout flags on the embeddings, the attention
 *    probabilities and both residual branches; a repeated input item) against PyTorch in float64
 *    (tests/reference/gen_bert4rec.py), and against central finite differences of the loss
 *  - three Adam steps against torch.optim.Adam (the key bias's gradient set to its exact zero on both
 *    sides, as training does: bert4rec_model.c)
 *  - scores of every item from users' histories ([mask] appended; one history longer than maxlen - 1,
 *    one empty) against PyTorch
 *  - the data-parallel contract: the gradients of the shares {0} and {1, 2} of a batch add up to
 *    the gradient of the whole batch, and a row's cloze and dropout masks depend on (seed, step,
 *    global position) only; max(1, round(mask_prob n)) positions masked
 *  - the untrained model's loss is ln(n_items) (RecBole's N(0, 0.02^2) initialisation)
 *  - a head count that does not divide the dimension is refused naming bert4rec.heads
 * Tolerances: float32 arithmetic on float32 inputs. A logit goes through ~25 layers in sequence
 * (embedding, 2 x (QKV, attention, W_o, LN, W_1, GELU, W_2, LN), the head) of at most ~40 rounded
 * operations each, relative error 2^-24 ~ 6e-8 per operation, i.e. ~6e-5 in the worst case and
 * ~1e-6 for random-signed errors; layer norms rescale errors by at most their gains (~1) since the
 * rows' spreads are O(1) here, and nn_expf / the GELU's tanh add 2e-7 / 1e-6. The checks allow 2e-5
 * of the largest value (measured: ~1e-6, see the printed maxima): above every rounding path seen on
 * AVX2 and AVX-512 OpenBLAS kernels at any thread count, far below a dropped or doubled term (a change
 * of at least 1e-2 relative on these random values).
 */
#include "tap.h"
#include "testlib.h"

#include "../../src/bert4rec/bert4rec.h"
#include "../../src/core/err.h"
#include "../../src/nn/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NI = 13, C = 8, H = 2, F = 12, L = 2, T = 5, B = 3, N = 11, M = 5, NATT = 90 };
static const double NORM = 7.0, TOL = 2e-5;

static void make_model(bert4rec_model *m, const dm_dataset *d, const int8_t *roles, int max_batch)
{
    bert4rec_config c = {NI, C, L, H, F, T, 0.4f, 0.3f, 0.01f, 0.9f, 0.999f, 1e-8f, max_batch};
    CHECK(bert4rec_init(m, &c, d, roles, 5) == DM_OK, "bert4rec_init: %s", dm_error_message());
}

/* the loss of the packed batch with its flags (grads zeroed first) */
static double loss_grad(bert4rec_model *m, int drop)
{
    double loss = 0;
    memset(m->grads, 0, m->nparams * sizeof *m->grads);
    CHECK(bert4rec_forward_backward(m, drop, 1, NORM, &loss) == DM_OK, "forward/backward: %s", dm_error_message());
    return loss;
}

static double relmax(const float *x, const double *ref, size_t n, const char *what) { return tl_check_ref(x, ref, n, TOL, what); }
static double fd_loss(void *m) { return loss_grad(m, 1); }

static void test_reference(const char *ref)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/bert4rec", ref);
    int32_t *seq = tl_load(dir, "seq", ".i32", B * T * 4), *tgt = tl_load(dir, "tgt", ".i32", B * T * 4), *len = tl_load(dir, "len", ".i32", B * 4);
    int32_t *hist = tl_load(dir, "hist", ".i32", 9 * 4), *hlen = tl_load(dir, "hlen", ".i32", B * 4);
    int64_t off[B + 1] = {0};
    for (int b = 0; b < B; b++) off[b + 1] = off[b] + hlen[b];
    int8_t roles[9] = {0}; /* every history row DM_TRAIN: scored as the valid split's history */
    dm_dataset d = tl_dataset_view(B, NI, off, hist);
    bert4rec_model m;
    make_model(&m, &d, roles, B);
    bert4rec_acts *a = &m.a;
    const size_t maxN = (size_t)B * T, attL = maxN * H * T;
    float *p = tl_load(dir, "params", ".f32", m.nparams * 4);
    uint8_t *me = tl_load(dir, "m_emb", ".u8", N * C), *ma = tl_load(dir, "m_att", ".u8", L * NATT);
    uint8_t *mo = tl_load(dir, "m_o", ".u8", L * N * C), *mf = tl_load(dir, "m_f", ".u8", L * N * C);
    double *logits = tl_load(dir, "logits", ".f64", M * NI * 8), *loss_ref = tl_load(dir, "loss", ".f64", 8);
    double *grad = tl_load(dir, "grad", ".f64", m.nparams * 8), *adam = tl_load(dir, "adam", ".f64", m.nparams * 8);
    double *scores_ref = tl_load(dir, "scores", ".f64", B * NI * 8);
    memcpy(m.params, p, m.nparams * sizeof *p);
    memcpy(a->seq, seq, sizeof(int32_t) * B * T);
    memcpy(a->tgt, tgt, sizeof(int32_t) * B * T);
    for (int b = 0; b < B; b++) a->len[b] = len[b];
    CHECK(bert4rec_pack(&m, B) == DM_OK && a->N == N && a->M == M && a->att_off[B] == NATT, "packed %d positions, %d targets", a->N, a->M);
    memcpy(a->m_emb, me, N * C);
    for (int l = 0; l < L; l++) {
        memcpy(a->m_att + l * attL, ma + l * NATT, NATT);
        memcpy(a->m_o + l * maxN * C, mo + l * N * C, N * C);
        memcpy(a->m_f + l * maxN * C, mf + l * N * C, N * C);
    }
    double loss = loss_grad(&m, 1);
    NEAR(loss, *loss_ref, TOL * fabs(*loss_ref), "loss against PyTorch");
    printf("# loss: C %.9g, PyTorch %.9g\n", loss, *loss_ref);
    /* the logits at the targets, from the head's output */
    float lg[M * NI];
    for (int r = 0; r < M; r++) memcpy(lg + r * NI, m.p.outb, NI * sizeof(float));
    nn_sgemm_naive(CblasNoTrans, CblasTrans, M, NI, C, 1.0f, a->hz, C, m.p.emb, C, 1.0f, lg, NI);
    relmax(lg, logits, M * NI, "logits");
    double gmax = relmax(m.grads, grad, m.nparams, "gradient");
    /* central differences of the loss for every 7th parameter (every tensor is visited) */
    double fdmax = tl_fd_maxdiff(m.params, m.nparams, 7, 1e-2, NORM, grad, fd_loss, &m);
    /* O(h^2 |f'''|) ~ 1e-4 relative to the gradient, plus float rounding of the loss / h ~ 1e-5 */
    printf("# finite differences: max |fd - PyTorch| = %.3g (max |grad| %.3g)\n", fdmax, gmax);
    CHECK(fdmax <= 1e-3 * gmax + 1e-4, "finite differences: %.3g", fdmax);
    for (int s = 0; s < 3; s++) {
        loss_grad(&m, 1);
        bert4rec_model_ops.after_reduce(&m); /* the key bias's exact zero gradient, as in training */
        bert4rec_adam_step(&m);
    }
    double amax = tl_maxdiff_ref(m.params, adam, m.nparams, NULL);
    printf("# 3 Adam steps: max |C - torch.optim.Adam| = %.3g\n", amax);
    /* a step moves a parameter by at most lr = 0.01; float rounding of the gradient and the moments
       ~1e-5 of that */
    CHECK(amax <= 1e-6, "Adam against PyTorch: %.3g", amax);
    /* scores from the histories (roles 0 < DM_VALID), with the reference's parameters */
    memcpy(m.params, p, m.nparams * sizeof *p);
    size_t users[B] = {0, 1, 2};
    float sc[B * NI];
    CHECK(bert4rec_scores(&m, &d, roles, DM_VALID, users, B, sc) == DM_OK, "scores");
    relmax(sc, scores_ref, B * NI, "scores");
    bert4rec_free(&m);
    TL_FREE(seq, tgt, len, hist, hlen, p, me, ma, mo, mf, logits, loss_ref, grad, adam, scores_ref);
}

static void test_shares(void)
{
    /* 4 users with 3..8 training items; rows beyond T are cut to the latest T */
    int64_t off[5] = {0, 3, 7, 12, 20};
    int32_t item[20];
    for (int k = 0; k < 20; k++) item[k] = (k * 7 + 3) % NI;
    int8_t roles[20] = {0};
    dm_dataset d = tl_dataset_view(4, NI, off, item);
    bert4rec_model m;
    make_model(&m, &d, roles, 4);
    CHECK(m.seqs.n == 4, "training users: %zu", m.seqs.n);
    /* max(1, round(0.4 n)) of n = min(len, T) positions: 3 -> 1, 4 -> 2, 5 -> 2 */
    CHECK(bert4rec_targets(&m, 0) == 1 && bert4rec_targets(&m, 1) == 2 && bert4rec_targets(&m, 3) == 2, "masked positions per row");
    size_t ex[3] = {3, 0, 2};
    int64_t gidx[3] = {5, 6, 7};
    double norm = bert4rec_model_ops.batch_norm(&m, ex, 3);
    CHECK(norm == 2 + 1 + 2, "normaliser: masked positions summed: %g", norm);
    /* the same terms summed in another order, and each row's float loss from logits computed in other
       blocks: float rounding only (~1e-7 relative) */
    tl_model_shares(&bert4rec_model_ops, &m, ex, 3, gidx, 9, 4, 1e-6, 1e-6);
    /* a row's cloze mask depends on (seed, step, global position) only; it masks its targets */
    int32_t s1[T], t1[T], s2[T], t2[T];
    int n1 = bert4rec_train_row(&m, 3, 9, 4, 5, s1, t1), n2 = bert4rec_train_row(&m, 3, 9, 4, 5, s2, t2), masked = 0, other = 0;
    for (int t = 0; t < n1; t++) {
        masked += t1[t] >= 0 && s1[t] == NI && t1[t] == item[15 + t];
        other += t1[t] < 0 && s1[t] == item[15 + t];
    }
    CHECK(n1 == T && n2 == T && !memcmp(s1, s2, sizeof s1) && !memcmp(t1, t2, sizeof t1), "a row's cloze mask is a function of its key");
    CHECK(masked == 2 && other == T - 2, "the latest T items with 2 of them masked: %d masked, %d kept", masked, other);
    bert4rec_train_row(&m, 3, 9, 5, 5, s2, t2);
    int differ = memcmp(t1, t2, sizeof t1) != 0;
    for (int st = 6; st < 12 && !differ; st++) {
        bert4rec_train_row(&m, 3, 9, (uint64_t)st, 5, s2, t2);
        differ = memcmp(t1, t2, sizeof t1) != 0;
    }
    CHECK(differ, "the cloze mask is redrawn at other steps");
    /* the dropout flags of a row do not depend on its place in the batch */
    m.a.len[0] = 4, m.a.len[1] = 5;
    for (int t = 0; t < T; t++) m.a.seq[t] = m.a.seq[T + t] = 1, m.a.tgt[t] = m.a.tgt[T + t] = -1;
    CHECK(bert4rec_pack(&m, 2) == DM_OK, "pack");
    bert4rec_draw_dropout(&m, 1, 9, 4, 7);
    uint8_t row[T * C];
    memcpy(row, m.a.m_emb + 4 * C, sizeof row);
    m.a.len[0] = 5;
    CHECK(bert4rec_pack(&m, 1) == DM_OK, "pack");
    bert4rec_draw_dropout(&m, 0, 9, 4, 7);
    int zeros = 0;
    for (int k = 0; k < T * C; k++) zeros += !row[k];
    CHECK(!memcmp(row, m.a.m_emb, sizeof row), "a row's dropout flags do not depend on its batch");
    CHECK(zeros > 0 && zeros < T * C, "the flags drop some and keep some: %d of %d", zeros, T * C);
    bert4rec_free(&m);
}

static void test_init_and_errors(void)
{
    /* RecBole's initialisation: logits near 0, so the untrained loss is ~ln(n_items) per target */
    enum { NU = 40, NB = 16, NIT = 500 };
    int64_t off[NU + 1];
    int32_t item[NU * 6];
    for (int u = 0; u <= NU; u++) off[u] = 6 * u;
    for (int k = 0; k < NU * 6; k++) item[k] = (k * 37 + 11) % NIT;
    int8_t roles[NU * 6] = {0};
    dm_dataset d = tl_dataset_view(NU, NIT, off, item);
    bert4rec_config c = {NIT, 16, 2, 2, 64, 8, 0.5f, 0.1f, 0.001f, 0.9f, 0.999f, 1e-8f, NB};
    bert4rec_model m;
    CHECK(bert4rec_init(&m, &c, &d, roles, 3) == DM_OK, "init: %s", dm_error_message());
    size_t ex[NB];
    int64_t gidx[NB];
    for (int k = 0; k < NB; k++) ex[k] = (size_t)k, gidx[k] = k;
    double norm = bert4rec_model_ops.batch_norm(&m, ex, NB), loss = 0;
    memset(m.grads, 0, m.nparams * sizeof *m.grads);
    CHECK(bert4rec_model_ops.grad(&m, ex, NB, gidx, 1, 1, norm, &loss) == DM_OK, "grad");
    printf("# untrained loss per target %.4f, ln(%d) = %.4f\n", loss / norm, NIT, log(NIT));
    CHECK(fabs(loss / norm - log(NIT)) < 0.05, "untrained loss %.4f is not ~ln(n_items) %.4f", loss / norm, log(NIT));
    bert4rec_free(&m);
    c.H = 3;
    CHECK(bert4rec_init(&m, &c, &d, roles, 3) == DM_ECONFIG && strstr(dm_error_message(), "bert4rec.heads = 3 does not divide bert4rec.dim = 16"),
          "heads not dividing dim refused: %s", dm_error_message());
    dm_error_clear();
    /* a mask share of 0 is refused by the key table when the config is read */
    dm_cfg cfg;
    CHECK(dm_cfg_init(&cfg) == DM_OK, "config");
    CHECK(dm_cfg_set(&cfg, "bert4rec.mask_prob=0") == DM_ECONFIG && strstr(dm_error_message(), "bert4rec.mask_prob"), "mask_prob 0 refused: %s",
          dm_error_message());
    dm_error_clear();
    dm_cfg_free(&cfg);
}

int main(void)
{
    tl_with_ref(test_reference);
    test_shares();
    test_init_and_errors();
    return tap_done("test_bert4rec");
}
