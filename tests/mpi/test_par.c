/* test_par.c: the MPI layer at any rank count: collective error agreement (a failure on the last
 * rank reaches every rank with its message), collectives, sharding, and parallel HDF5 row-block
 * writes/reads with atomic commit and discard. */
#include "../../mpi/h5io.h"
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../../src/core/shard.h"
#include "../unit/tap.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    int P = ctx.size, R = ctx.rank;

    /* error agreement */
    int rc = R == P - 1 ? DM_ERR(DM_EINPUT, "bad thing on the last rank") : DM_OK;
    rc = par_agree(&ctx, rc);
    CHECK(rc == DM_EINPUT && strstr(dm_error_message(), "bad thing on the last rank"), "agreed error: %d %s", rc, dm_error_message());
    char want[32];
    snprintf(want, sizeof want, "rank %d:", P - 1);
    if (P > 1) CHECK(strstr(dm_error_where(), want) != NULL, "names the failing rank: %s", dm_error_where());
    dm_error_clear();
    CHECK(par_agree(&ctx, DM_OK) == DM_OK, "no error agreed as ok");

    /* allgatherv with uneven sizes: rank r sends r+1 bytes of value r */
    char buf[8];
    memset(buf, R, sizeof buf);
    void *out;
    size_t *cnt;
    CHECK(par_allgatherv(&ctx, buf, (size_t)R + 1, &out, &cnt) == DM_OK, "allgatherv");
    size_t off = 0;
    int good = 1;
    for (int r = 0; r < P; r++) {
        good &= cnt[r] == (size_t)r + 1;
        for (int k = 0; k <= r; k++) good &= ((char *)out)[off + k] == r;
        off += cnt[r];
    }
    CHECK(good, "allgatherv contents");
    free(out);
    free(cnt);

    /* alltoallv: rank r sends (r * 10 + t) to rank t, t+1 copies */
    size_t sc[16], total = 0;
    int32_t send[256];
    for (int t = 0; t < P; t++) {
        sc[t] = (size_t)(t + 1) * sizeof(int32_t);
        for (int k = 0; k <= t; k++) send[total++] = R * 10 + t;
    }
    CHECK(par_alltoallv(&ctx, send, sc, &out, &cnt) == DM_OK, "alltoallv");
    good = 1;
    int32_t *in = out;
    for (int s = 0, q = 0; s < P; s++) {
        good &= cnt[s] == (size_t)(R + 1) * sizeof(int32_t);
        for (int k = 0; k <= R; k++) good &= in[q++] == s * 10 + R;
    }
    CHECK(good, "alltoallv contents");
    free(out);
    free(cnt);

    int64_t before, tot;
    par_exscan_i64(&ctx, R + 1, &before, &tot);
    CHECK(before == (int64_t)R * (R + 1) / 2 && tot == (int64_t)P * (P + 1) / 2, "exscan %lld %lld", (long long)before, (long long)tot);
    float g[3] = {(float)R, 1.0f, 0.5f};
    par_allreduce_sum_f32(&ctx, g, 3);
    CHECK(g[0] == (float)(P * (P - 1) / 2) && g[1] == (float)P && g[2] == 0.5f * (float)P, "allreduce sum");

    /* sharding covers every row exactly once */
    int64_t prefix[11] = {0, 1, 2, 3, 20, 21, 22, 23, 24, 30, 31};
    size_t lo, hi, next = 0;
    good = 1;
    for (int r = 0; r < P; r++) {
        dm_shard_weighted(prefix, 10, P, r, &lo, &hi);
        good &= lo == next && hi >= lo;
        next = hi;
    }
    CHECK(good && next == 10, "weighted shards tile the rows");

    /* parallel HDF5: 2-D float and 1-D int64 row blocks, a string table, attributes */
    const char *tmp = getenv("DM_TMP");
    char path[600];
    snprintf(path, sizeof path, "%s/test_par_%d.h5", tmp ? tmp : "/tmp", P);
    h5file f;
    size_t N = 1000, C = 3;
    dm_shard_even(N, P, R, &lo, &hi);
    float *x = malloc((hi - lo) * C * sizeof *x + 4);
    int64_t *y = malloc((hi - lo) * sizeof *y + 8);
    dm_strtab st = {0};
    for (size_t i = lo; i < hi; i++) {
        for (size_t c = 0; c < C; c++) x[(i - lo) * C + c] = (float)(i * 10 + c);
        y[i - lo] = (int64_t)i * 1000003LL;
        char s[32];
        int l = snprintf(s, sizeof s, "row-%zu", i);
        dm_strtab_add(&st, s, (size_t)l);
    }
    if (R == 0) unlink(path);
    par_barrier(&ctx);
    rc = h5_create(&ctx, path, 4, 64, &f);
    if (!rc) rc = h5_write_rows(&f, "/g/x", H5_F32, N, C, lo, hi - lo, x);
    if (!rc) rc = h5_write_rows(&f, "/g/y", H5_I64, N, 0, lo, hi - lo, y);
    if (!rc) rc = h5_write_strtab(&f, "/g/s", &st, lo, N);
    if (!rc) rc = h5_attr_str(&f, "/g", "note", "hello");
    rc = par_agree(&ctx, rc);
    CHECK(rc == DM_OK, "write: %s", dm_error_message());
    if (R == 0) CHECK(access(path, F_OK) != 0, "no final file before commit");
    CHECK(h5_commit(&f) == DM_OK, "commit");
    char part[620];
    snprintf(part, sizeof part, "%s.part", path);
    CHECK(access(path, F_OK) == 0 && access(part, F_OK) != 0, "renamed on commit");
    h5file g2;
    CHECK(h5_open(&ctx, path, &g2) == DM_OK, "open");
    void *px;
    size_t rows, cols;
    CHECK(h5_read_all(&g2, "/g/x", H5_F32, &px, &rows, &cols) == DM_OK && rows == N && cols == C, "read x");
    good = 1;
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < C; c++) good &= ((float *)px)[i * C + c] == (float)(i * 10 + c);
    CHECK(good, "x round trip");
    free(px);
    int64_t blk[5];
    CHECK(h5_read_rows(&g2, "/g/y", H5_I64, 500, 5, blk) == DM_OK && blk[4] == 504LL * 1000003LL, "row-block read");
    dm_strtab rs;
    CHECK(h5_read_strtab(&g2, "/g/s", &rs) == DM_OK && rs.n == N, "string table");
    size_t l;
    const char *s = dm_strtab_get(&rs, 999, &l);
    CHECK(l == 7 && !memcmp(s, "row-999", 7), "string 999");
    char *note = NULL;
    CHECK(h5_get_attr_str(&g2, "/g", "note", &note) == DM_OK && !strcmp(note, "hello"), "attribute");
    free(note);
    dm_strtab_free(&rs);
    h5_close(&g2);

    /* discard removes the partial file */
    rc = h5_create(&ctx, path, 0, 64, &f);
    CHECK(rc == DM_OK, "create again");
    h5_discard(&f);
    par_barrier(&ctx);
    CHECK(access(part, F_OK) != 0, "discard leaves no partial file");
    CHECK(access(path, F_OK) == 0, "and keeps the earlier complete file");

    free(x);
    free(y);
    dm_strtab_free(&st);
    int failed = tap_fail_count;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int ret = R == 0 ? tap_done("test_par") : 0;
    par_finalize(&ctx);
    return failed ? 1 : ret;
}
