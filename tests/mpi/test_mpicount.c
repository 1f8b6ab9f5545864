/* test_mpicount.c: the MPI counting layer (mpi/mpicount.h) at any rank count. Known calls under two
 * labels must be counted exactly (calls, bytes as defined in mpicount.h, the largest call), a call
 * made inside a counted call must not be counted again, calls after the label is cleared go to
 * "other", and the CSV written at MPI_Finalize must hold every rank's rows. */
#include "../../mpi/mpicount.h"
#include "../../mpi/par.h"
#include "../unit/tap.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL(stage, op, calls_, bytes_, maxb_)                                                                     \
    do {                                                                                                       \
        mpicount_cell c_ = mpicount_get(stage, op);                                                            \
        CHECK(c_.calls == (calls_) && c_.bytes == (uint64_t)(bytes_) && c_.max_bytes == (uint64_t)(maxb_),      \
              "%s/%s: calls %llu bytes %llu max %llu, want %llu %llu %llu", stage, op, (unsigned long long)c_.calls, \
              (unsigned long long)c_.bytes, (unsigned long long)c_.max_bytes, (unsigned long long)(calls_),     \
              (unsigned long long)(bytes_), (unsigned long long)(maxb_));                                       \
        CHECK(c_.seconds >= 0 && c_.cpu_seconds >= 0, "%s/%s: times %g %g", stage, op, c_.seconds, c_.cpu_seconds); \
    } while (0)

int main(int argc, char **argv)
{
    char path[4096];
    const char *tmp = getenv("DM_TMP");
    /* the file name carries the rank count: the runs at 1, 2 and 3 ranks never share a file */
    int np = 0;
    const char *e = getenv("OMPI_COMM_WORLD_SIZE");
    if (e) np = atoi(e);
    snprintf(path, sizeof path, "%s/mpicount_test_%d.csv", tmp && tmp[0] ? tmp : "/tmp", np);
    remove(path);
    setenv("DM_MPI_COUNT", path, 1);
    par_ctx ctx;
    if (par_init(&argc, &argv, &ctx)) return 1;
    int P = ctx.size, R = ctx.rank;
    CHECK(mpicount_enabled(), "DM_MPI_COUNT turns counting on");
    mpicount_reset();

    /* stage "alpha": MPI directly */
    mpicount_stage("alpha");
    double d[10] = {0};
    for (int k = 0; k < 3; k++) MPI_Allreduce(MPI_IN_PLACE, d, 10, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    int32_t v5[5] = {1, 2, 3, 4, 5};
    MPI_Allreduce(MPI_IN_PLACE, v5, 2, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
    MPI_Bcast(v5, 5, MPI_INT32_T, 0, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    float f3[3] = {0}, *fall = calloc((size_t)P * 3, sizeof *fall);
    MPI_Allgather(f3, 3, MPI_FLOAT, fall, 3, MPI_FLOAT, MPI_COMM_WORLD);
    int32_t *a2 = calloc((size_t)P * 2, sizeof *a2), *b2 = calloc((size_t)P * 2, sizeof *b2);
    MPI_Alltoall(a2, 2, MPI_INT32_T, b2, 2, MPI_INT32_T, MPI_COMM_WORLD);
    /* gatherv: rank r contributes r + 1 int32 */
    int32_t g[16] = {0}, *gall = calloc((size_t)P * (P + 1) / 2 + 1, sizeof *gall);
    int *cnt = calloc((size_t)P, sizeof *cnt), *dis = calloc((size_t)P, sizeof *dis);
    for (int r = 0; r < P; r++) {
        cnt[r] = r + 1;
        dis[r] = r ? dis[r - 1] + cnt[r - 1] : 0;
    }
    MPI_Gatherv(g, R + 1, MPI_INT32_T, gall, cnt, dis, MPI_INT32_T, 0, MPI_COMM_WORLD);
    /* a ring of 7-byte messages */
    char out7[7] = "abcdef", in7[7];
    MPI_Request q[2];
    MPI_Irecv(in7, 7, MPI_CHAR, (R + P - 1) % P, 3, MPI_COMM_WORLD, &q[0]);
    MPI_Isend(out7, 7, MPI_CHAR, (R + 1) % P, 3, MPI_COMM_WORLD, &q[1]);
    MPI_Waitall(2, q, MPI_STATUSES_IGNORE);
    CHECK(!memcmp(in7, "abcdef", 7), "ring message received");

    CELL("alpha", "Allreduce", 4, 3 * 80 + 8, 80);
    CELL("alpha", "Bcast", 1, 20, 20);
    CELL("alpha", "Barrier", 2, 0, 0);
    CELL("alpha", "Allgather", 1, 12, 12);
    CELL("alpha", "Alltoall", 1, 8 * P, 8 * P);
    CELL("alpha", "Gatherv", 1, 4 * (R + 1), 4 * (R + 1));
    CELL("alpha", "Isend", 1, 7, 7);
    CELL("alpha", "Irecv", 1, 7, 7);
    CELL("alpha", "Waitall", 1, 0, 0);
    CELL("alpha", "Scatterv", 0, 0, 0);

    /* stage "beta": through dynmm's MPI layer, which skips the collective at one rank */
    mpicount_stage("beta");
    float x[1000] = {0};
    CHECK(par_allreduce_sum_f32(&ctx, x, 1000) == 0, "par allreduce");
    CELL("beta", "Allreduce", P > 1 ? 1 : 0, P > 1 ? 4000 : 0, P > 1 ? 4000 : 0);
    /* a call inside a counted call (an MPI-IO call that agrees with an allreduce) is part of it */
    mpicount_t0 t0;
    int on = mpicount_enter(&t0);
    CHECK(on, "the outer call is counted");
    MPI_Barrier(MPI_COMM_WORLD);
    if (on) mpicount_leave(&t0, MC_FILE_SYNC, 0);
    CELL("beta", "Barrier", 0, 0, 0);
    CELL("beta", "File_sync", 1, 0, 0);
    /* the label "alpha" again adds to its cells */
    mpicount_stage("alpha");
    MPI_Bcast(v5, 3, MPI_INT32_T, 0, MPI_COMM_WORLD);
    CELL("alpha", "Bcast", 2, 32, 20);
    mpicount_stage(NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    CELL("other", "Barrier", 1, 0, 0);
    CELL("alpha", "Barrier", 2, 0, 0);

    free(fall);
    free(a2);
    free(b2);
    free(gall);
    free(cnt);
    free(dis);
    int failed = tap_fail_count;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    par_finalize(&ctx); /* writes the file on rank 0 */

    if (R == 0) {
        /* every rank's rows: the Allreduce of "alpha" (4 calls, 248 bytes) once per rank, each rank's
           Gatherv with its own bytes, and the stage rows */
        FILE *f = fopen(path, "r");
        CHECK(f != NULL, "DM_MPI_COUNT file written: %s", path);
        char line[1024];
        int header = 0, allreduce = 0, gatherv = 0, walls = 0, bad = 0;
        while (f && fgets(line, sizeof line, f)) {
            if (!header) {
                header = !strcmp(line, "ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds\n");
                continue;
            }
            int ranks, rank;
            char stage[64], op[64], kind[16];
            unsigned long long calls, bytes, maxb;
            double s, c;
            if (sscanf(line, "%d,%d,%63[^,],%63[^,],%15[^,],%llu,%llu,%llu,%lf,%lf", &ranks, &rank, stage, op, kind, &calls,
                       &bytes, &maxb, &s, &c) != 10 || ranks != P || rank < 0 || rank >= P) {
                bad++;
                continue;
            }
            if (!strcmp(stage, "alpha") && !strcmp(op, "Allreduce")) allreduce += calls == 4 && bytes == 248 && !strcmp(kind, "coll");
            if (!strcmp(stage, "alpha") && !strcmp(op, "Gatherv")) gatherv += calls == 1 && bytes == 4ull * (unsigned)(rank + 1);
            if (!strcmp(op, "wall")) walls += !strcmp(kind, "stage") && calls == 1 && s >= 0;
        }
        if (f) fclose(f);
        CHECK(header, "CSV header");
        CHECK(!bad, "%d malformed rows", bad);
        CHECK(allreduce == P, "one alpha/Allreduce row per rank: %d of %d", allreduce, P);
        CHECK(gatherv == P, "one alpha/Gatherv row per rank with its bytes: %d of %d", gatherv, P);
        CHECK(walls == 3 * P, "wall rows for other, alpha, beta on every rank: %d", walls);
        remove(path);
        int ret = tap_done("test_mpicount");
        return failed || ret ? 1 : 0;
    }
    return failed ? 1 : 0;
}
