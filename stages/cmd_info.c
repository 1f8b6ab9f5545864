/* cmd_info.c: `dynmm info FILE.h5`: what a dynmm file holds. */
#include "cmd.h"
#include "../mpi/cli.h"
#include "dataset_io.h"

#include "../src/core/err.h"
#include "../src/core/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
    "usage: dynmm info FILE.h5 [--config]\n\n"
    "Summarises a dynmm file. For a dataset: users, items, interactions, density, sequence-length\n"
    "percentiles, time span, splits, attributes, modality coverage and windows. For any dynmm file:\n"
    "its format, stage, provenance and (with --config) the resolved config it was made from.\n";

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void fmt_time(int64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%d", &tm);
}

static int dataset_summary(par_ctx *ctx, const char *path)
{
    dm_dataset d;
    DM_CALL(ds_read(ctx, path, &d));
    if (ctx->rank != 0) {
        dm_dataset_free(&d);
        return DM_OK;
    }
    printf("  users %zu, items %zu, interactions %zu, density %.4g%%\n", d.n_users, d.n_items, d.n_inter,
           100.0 * (double)d.n_inter / ((double)d.n_users * (double)d.n_items));
    int64_t *len = malloc((d.n_users + 1) * sizeof *len);
    if (!len) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t u = 0; u < d.n_users; u++) len[u] = d.user_off[u + 1] - d.user_off[u];
    qsort(len, d.n_users, sizeof *len, cmp_i64);
#define PCT(p) len[(size_t)((p) * (double)(d.n_users - 1) + 0.5)]
    printf("  sequence length: min %lld, p25 %lld, median %lld, mean %.2f, p75 %lld, p95 %lld, max %lld\n",
           (long long)len[0], (long long)PCT(0.25), (long long)PCT(0.5), (double)d.n_inter / (double)d.n_users,
           (long long)PCT(0.75), (long long)PCT(0.95), (long long)len[d.n_users - 1]);
#undef PCT
    free(len);
    int64_t *ic = calloc(d.n_items + 1, sizeof *ic);
    if (!ic) return DM_ERR(DM_ENOMEM, "out of memory");
    for (size_t i = 0; i < d.n_inter; i++) ic[d.item[i]]++;
    qsort(ic, d.n_items, sizeof *ic, cmp_i64);
    printf("  item popularity: min %lld, median %lld, max %lld\n", (long long)ic[0], (long long)ic[d.n_items / 2],
           (long long)ic[d.n_items - 1]);
    free(ic);
    if (d.has_time) {
        int64_t tmin = INT64_MAX, tmax = INT64_MIN;
        for (size_t i = 0; i < d.n_inter; i++) {
            if (d.time[i] < tmin) tmin = d.time[i];
            if (d.time[i] > tmax) tmax = d.time[i];
        }
        char a[32], b[32];
        fmt_time(tmin, a, sizeof a);
        fmt_time(tmax, b, sizeof b);
        printf("  time span: %s .. %s (%.0f days)\n", a, b, (double)(tmax - tmin) / 86400000.0);
    } else
        printf("  time span: no timestamps (input order is the order)\n");
    const char *sn[3] = {"loo", "temporal", "given"};
    const int8_t *sp[3] = {d.split_loo, d.split_temporal, d.split_given};
    for (int s = 0; s < 3; s++) {
        if (!sp[s]) continue;
        size_t c[3] = {0, 0, 0};
        for (size_t i = 0; i < d.n_inter; i++) c[sp[s][i]]++;
        printf("  split %-8s train %zu, valid %zu, test %zu\n", sn[s], c[0], c[1], c[2]);
    }
    size_t nt = 0, nb = 0, nc = 0, np = 0;
    for (size_t i = 0; i < d.n_items; i++) {
        size_t l;
        nt += d.has_title[i];
        dm_strtab_get(&d.brand, i, &l);
        nb += l > 0;
        dm_strtab_get(&d.category, i, &l);
        nc += l > 0;
        np += !isnan(d.price[i]);
    }
    size_t kinds[4] = {0, 0, 0, 0};
    for (size_t a = 0; a < d.n_attr; a++) kinds[d.attr_kind[a]]++;
    printf("  items with title %zu, brand %zu, category %zu, price %zu\n", nt, nb, nc, np);
    printf("  attributes %zu: %zu brands, %zu categories, %zu price buckets, %zu other\n", d.n_attr, kinds[0], kinds[1],
           kinds[2], kinds[3]);
    for (int m = 0; m < d.n_modal; m++) {
        size_t cnt = 0;
        for (size_t i = 0; i < d.n_items; i++) cnt += d.modal[m].present[i];
        printf("  modality %-6s dim %zu, present %zu/%zu (%.1f%%)  [%s]\n", d.modal[m].name, d.modal[m].dim, cnt,
               d.n_items, 100.0 * (double)cnt / (double)d.n_items, d.modal[m].source);
    }
    if (d.n_windows) {
        size_t *wc = calloc(d.n_windows + 1, sizeof *wc), hist = 0;
        if (!wc) return DM_ERR(DM_ENOMEM, "out of memory");
        for (size_t i = 0; i < d.n_inter; i++) {
            if (d.window[i] < 0) hist++;
            else wc[d.window[i]]++;
        }
        size_t mn = (size_t)-1, mx = 0;
        for (size_t k = 0; k < d.n_windows; k++) {
            if (wc[k] < mn) mn = wc[k];
            if (wc[k] > mx) mx = wc[k];
        }
        printf("  windows %zu (%zu interactions before the first), sizes %zu..%zu", d.n_windows, hist, mn, mx);
        if (d.has_time) {
            char a[32], b[32];
            fmt_time(d.window_start[0], a, sizeof a);
            fmt_time(d.window_start[d.n_windows], b, sizeof b);
            printf(", %s .. %s", a, b);
        }
        printf("\n");
        free(wc);
    }
    if (d.drift_user) {
        size_t nd = 0;
        for (size_t u = 0; u < d.n_users; u++) nd += d.drift_user[u];
        char a[32];
        fmt_time(d.drift_time, a, sizeof a);
        printf("  synthetic ground truth: %zu drifting users (shift at %s)\n", nd, a);
    }
    if (d.sources.len) {
        printf("  sources:\n");
        for (const char *p = d.sources.data; *p;) {
            const char *e = strchr(p, '\n');
            int l = e ? (int)(e - p) : (int)strlen(p);
            printf("    %.*s\n", l, p);
            p += l + (e ? 1 : 0);
        }
    }
    dm_dataset_free(&d);
    return DM_OK;
}

int cmd_info(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, USAGE)) {
        cli_args_free(&a);
        return DM_OK;
    }
    const char *path = NULL;
    int show_cfg = 0;
    for (int i = 0; i < a.npositional; i++) {
        if (!strcmp(a.positional[i], "--config")) show_cfg = 1;
        else path = a.positional[i];
    }
    cli_args_free(&a);
    if (!path) {
        DM_ERR(DM_ECONFIG, "info: which file? usage: dynmm info FILE.h5");
        return DM_ECONFIG;
    }
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    int rc = DM_OK;
    char *fmt = NULL, *stage = NULL, *ver = NULL, *created = NULL, *cfg = NULL, *libs = NULL;
    int64_t fv = 0, ranks = 0;
    if (!h5_has_attr(&f, "/", "format")) {
        rc = DM_ERR(DM_EFORMAT, "'%s' is an HDF5 file but not a dynmm file (no 'format' attribute)", path);
        goto done;
    }
    if ((rc = h5_get_attr_str(&f, "/", "format", &fmt)) || (rc = h5_get_attr_i64(&f, "/", "format_version", &fv)) ||
        (rc = h5_get_attr_str(&f, "/", "stage", &stage)) || (rc = h5_get_attr_str(&f, "/", "code_version", &ver)) ||
        (rc = h5_get_attr_str(&f, "/", "created_utc", &created)) || (rc = h5_get_attr_i64(&f, "/", "ranks", &ranks)) ||
        (rc = h5_get_attr_str(&f, "/", "libraries", &libs)) || (rc = h5_get_attr_str(&f, "/", "config", &cfg)))
        goto done;
    if (ctx->rank == 0) {
        printf("%s: %s v%lld, stage '%s', made %s by dynmm %s on %lld rank%s\n  libraries: %s\n", path, fmt, (long long)fv,
               stage, created, ver, (long long)ranks, ranks > 1 ? "s" : "", libs);
        if (show_cfg) printf("  resolved config:\n%s", cfg);
    }
done:
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (!rc && !strcmp(fmt, DS_FORMAT)) rc = dataset_summary(ctx, path);
    free(fmt);
    free(stage);
    free(ver);
    free(created);
    free(cfg);
    free(libs);
    return rc;
}
