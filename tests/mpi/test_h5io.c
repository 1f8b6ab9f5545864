/* test_h5io.c: h5io's failures at any rank count, without a full disk. A write that fails on some
 * ranks only (RLIMIT_FSIZE on every rank but 0, so rank 0, which would go on, is not among them)
 * must fail on every rank with the same code and message, in the same call, leave no .part, and
 * let the next file be written normally; likewise a failure at the close (the limit lowered to the
 * size the file has before its metadata is flushed). A truncated file is refused by h5_open with
 * its sizes; a file in a missing directory fails to create on every rank. A hang here is a bug
 * (tests/run.sh has no timeout of its own: run under `timeout`). */
#include "../../mpi/h5io.h"
#include "../../mpi/par.h"
#include "../../src/core/err.h"
#include "../../src/core/shard.h"
#include "../unit/tap.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void limit_size(rlim_t bytes)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &rl);
}

/* every rank holds the same rc and message as rank 0 */
static int same_everywhere(par_ctx *ctx, int rc)
{
    char msg[512] = "";
    snprintf(msg, sizeof msg, "%d %s", rc, dm_error_message());
    char root[512];
    memcpy(root, msg, sizeof msg);
    par_bcast(ctx, root, sizeof root, 0);
    int64_t same = !strcmp(root, msg);
    par_allreduce_min_i64(ctx, &same, 1);
    return (int)same;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* path with /x (n rows of c floats; this rank's rows lo..hi in x) committed, or discarded on any
 * rank's failure. Collective. */
static int write_x(par_ctx *ctx, const char *path, size_t n, size_t c, size_t lo, size_t hi, const float *x)
{
    h5file f;
    int rc = h5_create(ctx, path, 0, 4096, &f);
    if (!rc) rc = h5_write_rows(&f, "/x", H5_F32, n, c, lo, hi - lo, x);
    return h5_finish(&f, rc);
}

int main(int argc, char **argv)
{
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    int P = ctx.size, R = ctx.rank;
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead of killing */
    const char *tmp = getenv("DM_TMP");
    char path[600], part[620];
    snprintf(path, sizeof path, "%s/test_h5io_%d.h5", tmp ? tmp : "/tmp", P);
    snprintf(part, sizeof part, "%s.part", path);
    if (R == 0) unlink(path);
    par_barrier(&ctx);

    /* 4 MiB of floats in row blocks, uncompressed: every rank writes its own ~4/P MiB */
    size_t N = 262144, C = 4, lo, hi;
    dm_shard_even(N, P, R, &lo, &hi);
    float *x = malloc((hi - lo) * C * sizeof *x + 4);
    for (size_t i = lo; i < hi; i++)
        for (size_t c = 0; c < C; c++) x[(i - lo) * C + c] = (float)(i * 10 + c);

    /* 1. a write failing on some ranks: ranks 1.. (rank 0 at 1 rank) cannot write past 1 MiB */
    h5file f;
    int rc = h5_create(&ctx, path, 0, 4096, &f);
    CHECK(rc == DM_OK, "create: %s", dm_error_message());
    if (R > 0 || P == 1) limit_size((rlim_t)1 << 20);
    if (!rc) rc = h5_attr_str(&f, "/", "note", "before");
    int rc_attr = rc;
    if (!rc) rc = h5_write_rows(&f, "/x", H5_F32, N, C, lo, hi - lo, x);
    /* the failure is the write's on every rank, before any further collective */
    CHECK(rc_attr == DM_OK && rc != DM_OK, "the write fails (rc %d)", rc);
    CHECK(same_everywhere(&ctx, rc), "same code and message on every rank: %s", dm_error_message());
    CHECK(strstr(dm_error_message(), path) && strstr(dm_error_message(), "'/x'") &&
              strstr(dm_error_message(), "File too large"),
          "the message names the file, the dataset and the cause: %s", dm_error_message());
    h5_discard(&f);
    limit_size(RLIM_INFINITY);
    par_barrier(&ctx);
    CHECK(!exists(part) && !exists(path), "nothing left behind after the failed write");

    /* 2. the next file is written normally */
    dm_error_clear();
    rc = write_x(&ctx, path, N, C, lo, hi, x);
    CHECK(rc == DM_OK && exists(path), "a file after the failure: %s", dm_error_message());
    h5file g;
    void *px = NULL;
    size_t rows = 0, cols = 0;
    CHECK(h5_open(&ctx, path, &g) == DM_OK && h5_read_all(&g, "/x", H5_F32, &px, &rows, &cols) == DM_OK &&
              rows == N && cols == C,
          "read it back");
    int good = px != NULL;
    for (size_t i = 0; good && i < N; i += 997) good &= ((float *)px)[i * C + 3] == (float)(i * 10 + 3);
    CHECK(good, "its contents");
    free(px);
    h5_close(&g);

    /* 3. a failure at the close: all data written, the metadata flush cannot extend the file */
    struct stat st;
    if (R == 0) unlink(path);
    par_barrier(&ctx);
    rc = h5_create(&ctx, path, 0, 4096, &f);
    if (!rc) rc = h5_write_rows(&f, "/x", H5_F32, N, C, lo, hi - lo, x);
    for (int k = 0; !rc && k < 40; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "a%02d", k);
        rc = h5_attr_str(&f, "/", nm, "some metadata that is only written at the close");
    }
    rc = par_agree(&ctx, rc);
    CHECK(rc == DM_OK, "write before the close: %s", dm_error_message());
    int64_t size = stat(part, &st) == 0 ? (int64_t)st.st_size : -1;
    par_allreduce_max_i64(&ctx, &size, 1);
    if (!rc) {
        limit_size((rlim_t)size);
        rc = h5_commit(&f);
        limit_size(RLIM_INFINITY);
        CHECK(rc != DM_OK && strstr(dm_error_message(), "at close"), "the close fails: %d %s", rc, dm_error_message());
        CHECK(same_everywhere(&ctx, rc), "same code and message on every rank: %s", dm_error_message());
    }
    par_barrier(&ctx);
    CHECK(!exists(part) && !exists(path), "nothing left behind after the failed close");

    /* 4. a truncated file (the complete one cut to half) */
    dm_error_clear();
    rc = write_x(&ctx, path, N, C, lo, hi, x);
    CHECK(rc == DM_OK, "write: %s", dm_error_message());
    size = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
    par_barrier(&ctx); /* every rank has its size before rank 0 cuts the file */
    if (R == 0) CHECK(truncate(path, size / 2) == 0, "truncate");
    par_barrier(&ctx);
    rc = par_agree(&ctx, h5_open(&ctx, path, &g));
    char want[128];
    snprintf(want, sizeof want, "truncated: %lld of %lld bytes", (long long)(size / 2), (long long)size);
    CHECK(rc == DM_EFORMAT && strstr(dm_error_message(), "is not a complete HDF5 file") &&
              strstr(dm_error_message(), want),
          "truncated file refused: %s", dm_error_message());
    if (!rc) h5_close(&g);

    /* 5. a missing directory: every rank fails to create, nothing hangs */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.h5", tmp ? tmp : "/tmp");
    rc = h5_create(&ctx, bad, 0, 4096, &f);
    CHECK(rc != DM_OK && f.id < 0 && same_everywhere(&ctx, rc), "create in a missing directory: %s",
          dm_error_message());

    if (R == 0) unlink(path);
    free(x);
    int failed = tap_fail_count;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int ret = R == 0 ? tap_done("test_h5io") : 0;
    par_finalize(&ctx);
    return failed ? 1 : ret;
}
