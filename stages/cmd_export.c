/* cmd_export.c: `dynmm export`: the per-user metrics of results.h5, prompt.h5 and stream.h5 as one
 * long table, CSV or TSV, with the original user and item ids of dataset.h5.
 *
 * One line per (file, split, protocol, model, user, metric) with a value (NaN rows, users a model
 * did not score, are left out):
 *
 *   run,source,model,split,protocol,user,items,metric,value
 *   runs/a,results,sasrec,test,full,A1XYGS9BACL5XM,B002JL1Y6C,ndcg@10,0.3868528072345416
 *
 * run is the directory of the file, source its stem (results, prompt, stream), user the original
 * id, items the original ids of the user's targets in that split (the held-out items the metrics
 * are of, space-separated; empty for stream's prequential means over windows), value the shortest
 * text that reads back as the stored double. Fields holding the separator, a quote or a line break
 * are quoted as in RFC 4180. analysis/dynmm_results.py reads the table (and the files directly).
 *
 * Every rank reads (the files are read collectively); rank 0 writes <out>.part and renames it.
 */
#include "cmd.h"
#include "../mpi/cli.h"
#include "dataset_io.h"
#include "evalcore.h"
#include "metrics_io.h"

#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char USAGE[] =
    "usage: dynmm export RUN_DIR|FILE.h5 ... [--out FILE.csv|FILE.tsv|-] [--tsv] [--metrics m1,m2]\n"
    "                    [--dataset dataset.h5]\n\n"
    "Writes the per-user metrics of results.h5 (eval), prompt.h5 (the LLM recommenders) and stream.h5\n"
    "(prequential means over the windows) as a long table, one line per user, model, split, protocol\n"
    "and metric:\n\n"
    "  run,source,model,split,protocol,user,items,metric,value\n\n"
    "with the original user ids and the original ids of each user's held-out items (from dataset.h5\n"
    "beside the file, or --dataset). A run directory stands for every one of those files in it.\n"
    "Without --out each file's table goes beside it (runs/a/results.csv); with --out every input goes\n"
    "into that one file (.tsv: tab-separated; '-': standard output). --metrics keeps some columns\n"
    "(hit@10,ndcg@10,mrr). Read the table with pandas.read_csv, or with analysis/dynmm_results.py.\n";

static const char *const SOURCES[] = {"results.h5", "prompt.h5", "stream.h5", NULL};

typedef struct {
    char **inputs;        /* result files */
    size_t ninputs;
    const char *out;      /* NULL: beside each input */
    const char *dataset;  /* NULL: dataset.h5 beside each input */
    char **metrics;       /* NULL: all */
    size_t nmetrics;
    int tsv;
} export_opts;

typedef struct {
    FILE *fp;
    char *path, *tmp;     /* tmp NULL for stdout */
    char sep;
    size_t lines;
} export_out;

typedef struct {
    char *path;           /* the dataset read, NULL none */
    dm_dataset d;
    int32_t *buf;         /* (longest sequence) targets of one user */
} export_data;

static void opts_free(export_opts *o)
{
    dm_strv_free(o->inputs, o->ninputs);
    dm_strv_free(o->metrics, o->nmetrics);
    memset(o, 0, sizeof *o);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* a run directory: each of SOURCES in it; else the file itself */
static int add_input(export_opts *o, const char *p)
{
    if (!is_dir(p)) return dm_strv_push(&o->inputs, &o->ninputs, p);
    size_t before = o->ninputs;
    for (int k = 0; SOURCES[k]; k++) {
        char f[4096];
        snprintf(f, sizeof f, "%s%s%s", p, p[strlen(p) - 1] == '/' ? "" : "/", SOURCES[k]);
        struct stat st;
        if (stat(f, &st) == 0) DM_CALL(dm_strv_push(&o->inputs, &o->ninputs, f));
    }
    if (o->ninputs == before) {
        DM_ERR(DM_ECONFIG, "export: '%s' holds none of results.h5, prompt.h5, stream.h5", p);
        DM_HINT("give a run directory after `dynmm run`, or the files themselves");
        return DM_ECONFIG;
    }
    return DM_OK;
}

static int parse_opts(const cli_args *a, export_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < a->npositional; i++) {
        const char *s = a->positional[i], *val = NULL;
        static const char *const with_value[] = {"--out", "--metrics", "--dataset", NULL};
        int k = -1;
        for (int j = 0; with_value[j]; j++) {
            size_t l = strlen(with_value[j]);
            if (!strncmp(s, with_value[j], l) && (s[l] == '\0' || s[l] == '=')) {
                k = j;
                if (s[l] == '=') val = s + l + 1;
                else if (i + 1 < a->npositional) val = a->positional[++i];
                else return DM_ERR(DM_ECONFIG, "export: %s needs a value; see `dynmm export --help`", s);
            }
        }
        if (k == 0) o->out = val;
        else if (k == 1) DM_CALL(dm_strv_split(val, ',', &o->metrics, &o->nmetrics));
        else if (k == 2) o->dataset = val;
        else if (!strcmp(s, "--tsv")) o->tsv = 1;
        else if (s[0] == '-' && s[1] == '-') {
            DM_ERR(DM_ECONFIG, "export: unknown option '%s'", s);
            DM_HINT("options: --out, --tsv, --metrics, --dataset; see `dynmm export --help`");
            return DM_ECONFIG;
        } else
            DM_CALL(add_input(o, s));
    }
    if (!o->ninputs) {
        DM_ERR(DM_ECONFIG, "export: which files? usage: dynmm export RUN_DIR|FILE.h5 ... [--out FILE.csv]");
        DM_HINT("e.g. dynmm export runs/quickstart");
        return DM_ECONFIG;
    }
    if (o->out && strcmp(o->out, "-")) {
        size_t l = strlen(o->out);
        if (l > 4 && !strcmp(o->out + l - 4, ".tsv")) o->tsv = 1;
    }
    return DM_OK;
}

/* ---- the table ------------------------------------------------------------------------------ */

static int out_open(export_out *w, const char *path, int tsv)
{
    memset(w, 0, sizeof *w);
    w->sep = tsv ? '\t' : ',';
    if (!strcmp(path, "-")) {
        w->fp = stdout;
        return DM_OK;
    }
    w->path = dm_str_dup(path);
    size_t n = strlen(path) + 6;
    w->tmp = malloc(n);
    if (!w->path || !w->tmp) return DM_ERR(DM_ENOMEM, "out of memory");
    snprintf(w->tmp, n, "%s.part", path);
    w->fp = fopen(w->tmp, "w");
    if (!w->fp) return DM_ERR(DM_EIO, "cannot create '%s': %s", w->tmp, strerror(errno));
    return DM_OK;
}

/* commit (ok) or remove the partial file */
static int out_close(export_out *w, int ok)
{
    int rc = DM_OK;
    if (w->fp && w->fp != stdout) {
        int bad = ferror(w->fp);
        if (fclose(w->fp) != 0 || bad) {
            if (ok) rc = DM_ERR(DM_EIO, "cannot write '%s': %s", w->tmp, strerror(errno ? errno : EIO));
            ok = 0;
        }
        if (ok && rename(w->tmp, w->path) != 0) rc = DM_ERR(DM_EIO, "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
        if (!ok || rc) remove(w->tmp);
    } else if (w->fp == stdout && fflush(stdout) != 0 && ok)
        rc = DM_ERR(DM_EIO, "cannot write the table to standard output: %s", strerror(errno));
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
    return rc;
}

static void put_field(export_out *w, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++) quote = s[i] == w->sep || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, n, w->fp);
        return;
    }
    fputc('"', w->fp);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', w->fp);
        fputc(s[i], w->fp);
    }
    fputc('"', w->fp);
}

static void put_str(export_out *w, const char *s, char after)
{
    put_field(w, s, strlen(s));
    fputc(after, w->fp);
}

/* the shortest %g text that reads back as x */
static void put_value(export_out *w, double x)
{
    char t[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    fputs(t, w->fp);
    fputc('\n', w->fp);
}

static void put_header(export_out *w)
{
    const char *h[] = {"run", "source", "model", "split", "protocol", "user", "items", "metric", "value"};
    for (int i = 0; i < 9; i++) put_str(w, h[i], i < 8 ? w->sep : '\n');
}

/* ---- one file -------------------------------------------------------------------------------- */

static void data_free(export_data *x)
{
    if (x->path) dm_dataset_free(&x->d);
    free(x->path);
    free(x->buf);
    memset(x, 0, sizeof *x);
}

/* the dataset of file f (read once per path) and that it is the one f was made from */
static int data_for(par_ctx *ctx, h5file *f, const export_opts *o, export_data *x)
{
    char path[4096];
    if (o->dataset) snprintf(path, sizeof path, "%s", o->dataset);
    else {
        const char *slash = strrchr(f->path, '/');
        snprintf(path, sizeof path, "%.*sdataset.h5", slash ? (int)(slash - f->path + 1) : 0, f->path);
    }
    if (!x->path || strcmp(x->path, path)) {
        data_free(x);
        DM_CALL(ds_read(ctx, path, &x->d));
        x->path = dm_str_dup(path);
        size_t longest = 1;
        for (size_t u = 0; u < x->d.n_users; u++)
            if ((size_t)(x->d.user_off[u + 1] - x->d.user_off[u]) > longest) longest = (size_t)(x->d.user_off[u + 1] - x->d.user_off[u]);
        x->buf = malloc(longest * sizeof *x->buf);
        if (!x->path || !x->buf) return DM_ERR(DM_ENOMEM, "out of memory");
    }
    char *want = NULL, *have = NULL;
    h5file df;
    if (!h5_has_attr(f, "/", "dataset_hash")) return DM_OK; /* made before files recorded it */
    int rc = h5_get_attr_str(f, "/", "dataset_hash", &want);
    if (!rc) rc = h5_open(ctx, path, &df);
    if (!rc) {
        rc = h5_get_attr_str(&df, "/", "stage_hash", &have);
        h5_close(&df);
    }
    if (!rc && strcmp(want, have)) {
        rc = DM_ERR(DM_EINPUT, "'%s' was made from another dataset (stage hash %.12s), not from '%s' (%.12s)", f->path, want, path, have);
        DM_HINT("give the dataset it was made from with --dataset");
    }
    free(want);
    free(have);
    return rc;
}

/* the split roles the file's stage used: its split.protocol (stored config; read alone, so files of
 * other versions, whose other keys may be gone, export too) */
static int roles_for(h5file *f, const dm_dataset *d, const int8_t **roles)
{
    char *text = NULL, p[64];
    int rc = h5_get_attr_str(f, "/", "config", &text);
    if (!rc) rc = dm_cfg_text_str(text, "split.protocol", p, sizeof p);
    free(text);
    if (rc) return DM_ERR(DM_EFORMAT, "'%s': %s", f->path, dm_error_message());
    *roles = !strcmp(p, "loo") ? d->split_loo : !strcmp(p, "temporal") ? d->split_temporal : !strcmp(p, "stream") ? d->split_stream
                                                                                              : d->split_given;
    if (!*roles) return DM_ERR(DM_EINPUT, "'%s' was made with split.protocol = \"%s\", which its dataset does not hold", f->path, p);
    return DM_OK;
}

static int metric_columns(const mio_list *l, const export_opts *o, const char *file, int *keep)
{
    for (size_t j = 0; j < l->ncols; j++) keep[j] = o->metrics == NULL;
    for (size_t m = 0; m < o->nmetrics; m++) {
        int j = mio_col(l, o->metrics[m]);
        if (j < 0) {
            dm_buf b = {0};
            for (size_t k = 0; k < l->ncols; k++) dm_buf_printf(&b, "%s%s", k ? ", " : "", l->cols[k]);
            DM_ERR(DM_ECONFIG, "export --metrics: '%s' has no metric '%s'", file, o->metrics[m]);
            DM_HINT("its metrics: %s", b.data ? b.data : "(none)");
            dm_buf_free(&b);
            return DM_ECONFIG;
        }
        keep[j] = 1;
    }
    return DM_OK;
}

/* the targets of user u in `split` as original ids, space-separated */
static void put_items(export_out *w, export_data *x, const int8_t *roles, const char *split, size_t u)
{
    int s = !strcmp(split, "test") ? DM_TEST : !strcmp(split, "valid") ? DM_VALID : -1;
    if (s >= 0 && roles) {
        ev_split es = {&x->d, roles, s, NULL};
        size_t n = ev_targets(&es, u, x->buf);
        dm_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            size_t l;
            const char *id = dm_strtab_get(&x->d.item_id, (size_t)x->buf[i], &l);
            if (i) dm_buf_addc(&b, ' ');
            dm_buf_add(&b, id, l);
        }
        put_field(w, b.data ? b.data : "", b.len);
        dm_buf_free(&b);
    }
    fputc(w->sep, w->fp);
}

/* every entry of l in f: the lines of its scored users */
static int export_entries(h5file *f, const mio_list *l, const int *keep, const char *run, const char *source, export_data *x,
                          const int8_t *roles, export_out *w)
{
    for (size_t k = 0; k < l->n; k++) {
        const mio_entry *e = &l->e[k];
        if (e->rows != x->d.n_users)
            return DM_ERR(DM_EINPUT, "'%s': /%s has %zu rows, but '%s' has %zu users", f->path, e->name, e->rows, x->path, x->d.n_users);
        double *rows;
        DM_CALL(mio_rows(f, l, e, &rows));
        for (size_t u = 0; w->fp && u < e->rows; u++) {
            const double *r = rows + u * l->ncols;
            size_t any = 0;
            for (size_t j = 0; j < l->ncols; j++) any += keep[j] && !isnan(r[j]);
            if (!any) continue;
            size_t lid;
            const char *uid = dm_strtab_get(&x->d.user_id, u, &lid);
            for (size_t j = 0; j < l->ncols; j++) {
                if (!keep[j] || isnan(r[j])) continue;
                put_str(w, run, w->sep);
                put_str(w, source, w->sep);
                put_str(w, e->model, w->sep);
                put_str(w, e->split, w->sep);
                put_str(w, e->protocol, w->sep);
                put_field(w, uid, lid);
                fputc(w->sep, w->fp);
                put_items(w, x, roles, e->split, u);
                put_str(w, l->cols[j], w->sep);
                put_value(w, r[j]);
                w->lines++;
            }
        }
        free(rows);
    }
    return DM_OK;
}

/* file `path` into w (rank 0 writes; w->fp is NULL elsewhere). Collective. */
static int export_file(par_ctx *ctx, const char *path, const export_opts *o, export_data *x, export_out *w, size_t *nentries)
{
    h5file f;
    DM_CALL(par_agree(ctx, h5_open(ctx, path, &f)));
    mio_list l = {0};
    const int8_t *roles = NULL;
    int *keep = NULL;
    char *fmt = NULL;
    int rc = h5_has_attr(&f, "/", "format") ? h5_get_attr_str(&f, "/", "format", &fmt) : DM_OK;
    if (!rc && (!fmt || (strcmp(fmt, "dynmm-results") && strcmp(fmt, "dynmm-prompt") && strcmp(fmt, "dynmm-stream")))) {
        rc = DM_ERR(DM_EFORMAT, "'%s' is %s%s%s, not a file of per-user metrics", path, fmt ? "a '" : "not a dynmm file", fmt ? fmt : "",
                    fmt ? "' file" : "");
        DM_HINT("export reads results.h5 (eval), prompt.h5 (prompt) and stream.h5 (stream)");
    }
    if (!rc) rc = mio_open(&f, &l);
    if (!rc) rc = data_for(ctx, &f, o, x);
    if (!rc) rc = roles_for(&f, &x->d, &roles);
    if (!rc && !(keep = calloc(l.ncols + 1, sizeof *keep))) rc = DM_ERR(DM_ENOMEM, "out of memory");
    if (!rc) rc = metric_columns(&l, o, path, keep);
    rc = par_agree(ctx, rc);
    if (!rc) {
        char run[4096], source[256];
        const char *slash = strrchr(path, '/');
        snprintf(run, sizeof run, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
        snprintf(source, sizeof source, "%s", slash ? slash + 1 : path);
        char *dot = strrchr(source, '.');
        if (dot) *dot = '\0';
        rc = export_entries(&f, &l, keep, run, source, x, roles, w);
        *nentries = l.n;
    }
    free(fmt);
    free(keep);
    mio_free(&l);
    h5_close(&f);
    return rc;
}

static int export_all(par_ctx *ctx, const export_opts *o)
{
    export_data x = {0};
    export_out w = {0};
    int rc = DM_OK;
    for (size_t i = 0; !rc && i < o->ninputs; i++) {
        char beside[4200];
        const char *out = o->out;
        if (!out) {
            const char *in = o->inputs[i], *dot = strrchr(in, '.'), *slash = strrchr(in, '/');
            int stem = dot && (!slash || dot > slash) ? (int)(dot - in) : (int)strlen(in);
            snprintf(beside, sizeof beside, "%.*s%s", stem, in, o->tsv ? ".tsv" : ".csv");
            out = beside;
        }
        if (!w.fp && (!o->out || i == 0)) {
            rc = ctx->rank == 0 ? out_open(&w, out, o->tsv) : DM_OK;
            rc = par_agree(ctx, rc);
            if (!rc && w.fp) put_header(&w);
        }
        size_t before = w.lines, nentries = 0;
        if (!rc) rc = export_file(ctx, o->inputs[i], o, &x, &w, &nentries);
        if (!rc && strcmp(out, "-"))
            dm_log("%s: %zu lines from %zu split/protocol/model entries -> %s", o->inputs[i], w.lines - before, nentries, out);
        if (!o->out || i + 1 == o->ninputs || rc) {
            int rc2 = ctx->rank == 0 ? out_close(&w, !rc) : DM_OK;
            rc2 = par_agree(ctx, rc2);
            if (!rc) rc = rc2;
        }
    }
    data_free(&x);
    return rc;
}

static int export_command(par_ctx *ctx, const cli_args *a)
{
    export_opts o;
    dm_log_init(ctx->rank == 0, a->verbose >= 0 ? a->verbose : 1);
    int rc = parse_opts(a, &o);
    if (!rc && (a->nconfigs || a->nsets)) {
        rc = DM_ERR(DM_ECONFIG, "export takes no config: the files hold the config they were made with");
        DM_HINT("usage: dynmm export RUN_DIR|FILE.h5 ... [--out FILE.csv]");
    }
    if (!rc && o.out && !strcmp(o.out, "-")) dm_log_init(0, 0);
    if (!rc) rc = export_all(ctx, &o);
    opts_free(&o);
    return rc;
}

int cmd_export(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, export_command); }
