/* cmd_info.c: `dynmm info FILE.h5`: what a dynmm file holds: its provenance; for a dataset the
 * counts, lengths, time span, splits, attributes, modalities and windows; for results.h5,
 * prompt.h5 and stream.h5 the mean of each metric over the users scored, per split, protocol and
 * model (computed from the per-user rows, metrics_io.h). */
#include "cmd.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "metrics_io.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/strv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
    "usage: dynmm info FILE.h5 [--config] [--metrics m1,m2]\n\n"
    "Summarises a dynmm file. For a dataset: users, items, interactions, density, sequence-length\n"
    "percentiles, time span, splits, attributes, modality coverage and windows. For results.h5,\n"
    "prompt.h5 and stream.h5: the mean Hit@10, NDCG@10 and MRR (--metrics m1,m2 for others) over\n"
    "the users scored, per split, protocol and model. For any dynmm file: its format, stage,\n"
    "provenance and (with --config) the resolved config it was made from. `dynmm export` writes the\n"
    "per-user values.\n";

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

/* the metrics shown: --metrics, else Hit@10, NDCG@10 (or the first cutoffs) and MRR */
static int summary_cols(const mio_list *l, const char *want, int *cols, int *nc)
{
    *nc = 0;
    if (want) {
        char **v = NULL;
        size_t n = 0;
        DM_CALL(dm_strv_split(want, ',', &v, &n));
        int rc = DM_OK;
        for (size_t i = 0; i < n && !rc && *nc < 16; i++) {
            int j = mio_col(l, v[i]);
            if (j < 0) rc = DM_ERR(DM_ECONFIG, "info --metrics: no metric '%s' in this file", v[i]);
            else cols[(*nc)++] = j;
        }
        dm_strv_free(v, n);
        return rc;
    }
    const char *pref[][2] = {{"hit@10", "hit@"}, {"ndcg@10", "ndcg@"}, {"mrr", "mrr"}};
    for (int p = 0; p < 3; p++) {
        int j = mio_col(l, pref[p][0]);
        for (size_t k = 0; j < 0 && k < l->ncols; k++)
            if (!strncmp(l->cols[k], pref[p][1], strlen(pref[p][1]))) j = (int)k;
        if (j >= 0) cols[(*nc)++] = j;
    }
    return DM_OK;
}

/* per split, protocol and model: users scored and the means of the chosen metrics. Collective. */
static int metrics_summary(par_ctx *ctx, h5file *f, const char *want)
{
    mio_list l;
    DM_CALL(mio_open(f, &l));
    int cols[16], nc = 0, rc = summary_cols(&l, want, cols, &nc);
    size_t wm = 5;
    for (size_t k = 0; k < l.n; k++)
        if (strlen(l.e[k].model) > wm) wm = strlen(l.e[k].model);
    if (!rc && l.n && ctx->rank == 0) {
        printf("  metrics: mean over the users scored (per user: dynmm export)\n    %-11s %-14s %-*s %7s", "split", "protocol", (int)wm,
               "model", "users");
        for (int c = 0; c < nc; c++) printf(" %9s", l.cols[cols[c]]);
        printf("\n");
    }
    for (size_t k = 0; !rc && k < l.n; k++) {
        const mio_entry *e = &l.e[k];
        double *rows, sum[16] = {0};
        size_t users = 0, cnt[16] = {0};
        rc = mio_rows(f, &l, e, &rows);
        for (size_t u = 0; !rc && u < e->rows; u++) {
            const double *r = rows + u * l.ncols;
            int any = 0;
            for (size_t j = 0; j < l.ncols; j++) any |= !isnan(r[j]);
            users += any;
            for (int c = 0; c < nc; c++)
                if (!isnan(r[cols[c]])) {
                    sum[c] += r[cols[c]];
                    cnt[c]++;
                }
        }
        if (!rc && ctx->rank == 0) {
            printf("    %-11s %-14s %-*s %7zu", e->split, e->protocol, (int)wm, e->model, users);
            for (int c = 0; c < nc; c++)
                if (cnt[c]) printf(" %9.4f", sum[c] / (double)cnt[c]);
                else printf(" %9s", "-");
            printf("\n");
        }
        if (!rc) free(rows);
    }
    mio_free(&l);
    return rc;
}

static int info_command(par_ctx *ctx, const cli_args *a)
{
    const char *path = NULL, *metrics = NULL;
    int show_cfg = 0, rc = DM_OK;
    for (int i = 0; i < a->npositional && !rc; i++) {
        if (!strcmp(a->positional[i], "--config")) show_cfg = 1;
        else if (!strncmp(a->positional[i], "--metrics=", 10)) metrics = a->positional[i] + 10;
        else if (!strcmp(a->positional[i], "--metrics") && i + 1 < a->npositional) metrics = a->positional[++i];
        else if (a->positional[i][0] == '-' && a->positional[i][1] == '-') {
            rc = DM_ERR(DM_ECONFIG, "info: unknown option '%s'", a->positional[i]);
            DM_HINT("options: --config, --metrics m1,m2; see `dynmm info --help`");
        } else if (path) {
            rc = DM_ERR(DM_ECONFIG, "info: one file at a time ('%s', then '%s')", path, a->positional[i]);
            DM_HINT("run `dynmm info` once per file");
        } else
            path = a->positional[i];
    }
    if (!rc && !path) {
        rc = DM_ERR(DM_ECONFIG, "info: which file? usage: dynmm info FILE.h5");
        DM_HINT("e.g. dynmm info runs/quickstart/results.h5");
    }
    if (rc) return rc;
    h5file f;
    rc = par_agree(ctx, h5_open(ctx, path, &f));
    if (rc) return rc;
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
    if (!strcmp(fmt, "dynmm-results") || !strcmp(fmt, "dynmm-prompt") || !strcmp(fmt, "dynmm-stream")) rc = metrics_summary(ctx, &f, metrics);
done:
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (!rc && !strcmp(fmt, DS_FORMAT)) rc = dataset_summary(ctx, path);
    DM_FREE_ALL(fmt, stage, ver, created, cfg, libs);
    return rc;
}

int cmd_info(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, info_command); }
