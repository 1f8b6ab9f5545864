/* rpt.c: the data of `dynmm report`: resolving files, directories, manifests and globs, reading
 * the results files' metadata into runs and configurations, the queries over them, and the
 * report's options (see rpt.h). */
#include "rpt.h"

#include "../mpi/h5io.h"

#include "../src/config/cfgtext.h"
#include "../src/core/err.h"
#include "../src/core/json.h"
#include "../src/core/lines.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- inputs ------------------------------------------------------------------------------ */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int add_path(char ***v, size_t *n, const char *p)
{
    char real[PATH_MAX];
    if (!realpath(p, real)) return DM_ERR(DM_EIO, "cannot resolve '%s': %s", p, strerror(errno));
    return dm_strv_push(v, n, real);
}

/* A run directory of a manifest: dir/results.h5, relative to the cwd or to the manifest's workdir. */
static int add_run(char ***v, size_t *n, const char *dir, const char *workdir, const char *id, size_t *missing)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results.h5", dir);
    if (!is_file(p) && dir[0] != '/' && workdir[0]) snprintf(p, sizeof p, "%s/%s/results.h5", workdir, dir);
    if (!is_file(p)) {
        dm_warn("run %s has no results.h5 yet (%s): not finished, or run.stages has no eval", id, dir);
        (*missing)++;
        return DM_OK;
    }
    return add_path(v, n, p);
}

static int read_manifest_tsv(const char *path, char ***v, size_t *n, size_t *missing)
{
    char *text;
    size_t len;
    DM_CALL(dm_read_file(path, &text, &len));
    if (strncmp(text, "# dynmm-sweep-manifest v1", 25) != 0) {
        free(text);
        DM_ERR(DM_EFORMAT, "'%s' is not a dynmm sweep manifest (v1)", path);
        DM_HINT("manifests are written by `dynmm sweep`; give results.h5 files or run directories instead");
        return DM_EFORMAT;
    }
    char workdir[PATH_MAX] = "";
    int rc = DM_OK, lineno = 0;
    for (char *line = text, *next; line && *line && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        if (!strncmp(line, "# workdir: ", 11)) snprintf(workdir, sizeof workdir, "%s", line + 11);
        if (line[0] == '#' || !strncmp(line, "index\t", 6) || !line[0]) continue;
        char **f = NULL;
        size_t nf = 0;
        /* columns are tab-separated; values hold no tabs */
        for (char *p = line, *t; p && !rc; p = t) {
            t = strchr(p, '\t');
            if (t) *t++ = '\0';
            rc = dm_strv_push(&f, &nf, p);
        }
        if (!rc && nf < 6) rc = DM_ERR(DM_EFORMAT, "'%s' line %d: expected at least 6 tab-separated columns", path, lineno);
        if (!rc) rc = add_run(v, n, f[4], workdir, f[1], missing);
        dm_strv_free(f, nf);
    }
    free(text);
    return rc;
}

static int read_manifest_json(const char *path, char ***v, size_t *n, size_t *missing)
{
    char *text;
    size_t len;
    DM_CALL(dm_read_file(path, &text, &len));
    dm_jdoc doc = {0};
    dm_json *root = NULL;
    dm_jerr err;
    int rc = DM_OK;
    if (dm_json_parse(&doc, text, len, 0, &root, &err) != 0)
        rc = DM_ERR(DM_EFORMAT, "'%s' byte %zu: %s", path, err.offset, err.what);
    const dm_json *fmt = rc ? NULL : dm_json_get(root, "format"), *runs = rc ? NULL : dm_json_get(root, "runs");
    const dm_json *wd = rc ? NULL : dm_json_get(root, "workdir");
    if (!rc && (!fmt || fmt->type != DM_JSTR || strcmp(fmt->str, "dynmm-sweep-manifest") || !runs || runs->type != DM_JARR))
        rc = DM_ERR(DM_EFORMAT, "'%s' is not a dynmm sweep manifest", path);
    for (size_t i = 0; !rc && i < runs->len; i++) {
        const dm_json *r = dm_json_at(runs, i), *d = r ? dm_json_get(r, "dir") : NULL, *id = r ? dm_json_get(r, "id") : NULL;
        if (!d || d->type != DM_JSTR) rc = DM_ERR(DM_EFORMAT, "'%s': run %zu has no \"dir\"", path, i);
        else rc = add_run(v, n, d->str, wd && wd->type == DM_JSTR ? wd->str : "", id && id->type == DM_JSTR ? id->str : d->str, missing);
    }
    dm_jdoc_free(&doc);
    free(text);
    return rc;
}

static int walk_dir(const char *dir, int depth, char ***v, size_t *n)
{
    char p[PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/results.h5", dir);
    if (is_file(p)) return add_path(v, n, p);
    snprintf(p, sizeof p, "%s/stream.h5", dir); /* a streaming run without an eval stage */
    if (is_file(p)) return add_path(v, n, p);
    if (depth <= 0) return DM_OK;
    struct dirent **list = NULL;
    int k = scandir(dir, &list, NULL, alphasort);
    if (k < 0) return DM_ERR(DM_EIO, "cannot list '%s': %s", dir, strerror(errno));
    int rc = DM_OK;
    for (int i = 0; i < k; i++) {
        if (!rc && list[i]->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, list[i]->d_name);
            if (is_dir(p)) rc = walk_dir(p, depth - 1, v, n);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

static int resolve_one(const char *in, char ***v, size_t *n, size_t *missing)
{
    char p[PATH_MAX + 64];
    if (is_dir(in)) {
        snprintf(p, sizeof p, "%s/manifest.tsv", in);
        if (is_file(p)) return read_manifest_tsv(p, v, n, missing);
        size_t before = *n;
        DM_CALL(walk_dir(in, 3, v, n));
        if (*n == before) {
            DM_ERR(DM_EIO, "no results.h5 (or stream.h5) in '%s' or its subdirectories", in);
            DM_HINT("run the eval stage first (run.stages ending in eval)");
            return DM_EIO;
        }
        return DM_OK;
    }
    if (!is_file(in)) {
        DM_ERR(DM_EIO, "cannot open '%s': no such file or directory", in);
        DM_HINT("give results.h5 files, run directories, sweep directories or manifests");
        return DM_EIO;
    }
    if (ends_with(in, ".tsv")) return read_manifest_tsv(in, v, n, missing);
    if (ends_with(in, ".json")) return read_manifest_json(in, v, n, missing);
    return add_path(v, n, in);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int rpt_resolve_inputs(char *const *inputs, size_t n, char ***paths, size_t *npaths, size_t *missing)
{
    char **v = NULL;
    size_t nv = 0;
    *missing = 0;
    int rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (strpbrk(inputs[i], "*?[")) {
            glob_t g;
            int e = glob(inputs[i], 0, NULL, &g);
            if (e == GLOB_NOMATCH) rc = DM_ERR(DM_EIO, "'%s' matches no file", inputs[i]);
            else if (e) rc = DM_ERR(DM_EIO, "cannot expand '%s'", inputs[i]);
            for (size_t j = 0; !rc && j < g.gl_pathc; j++) rc = resolve_one(g.gl_pathv[j], &v, &nv, missing);
            if (e != GLOB_NOMATCH) globfree(&g);
        } else
            rc = resolve_one(inputs[i], &v, &nv, missing);
    }
    if (rc) {
        dm_strv_free(v, nv);
        return rc;
    }
    if (nv) qsort(v, nv, sizeof *v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < nv; i++) {
        if (k && !strcmp(v[k - 1], v[i])) free(v[i]);
        else v[k++] = v[i];
    }
    *paths = v;
    *npaths = k;
    return DM_OK;
}

/* ---- reading files ----------------------------------------------------------------------- */

static void entry_free(rpt_entry *e)
{
    DM_FREE_ALL(e->name, e->file, e->note, e->group, e->leaf, e->split, e->protocol, e->model, e->mean, e->data);
    dm_strv_free(e->colnames, e->cols);
    memset(e, 0, sizeof *e);
}

/* The column names of dataset obj in group: its own "columns" attribute, else the nearest "columns"
 * string table upwards (*root_cols: the root's, the metric columns). None found: *ncn = 0. */
static int entry_columns(h5file *f, const char *obj, const char *group, char ***cn, size_t *ncn, int *root_cols)
{
    *cn = NULL;
    *ncn = 0;
    *root_cols = 0;
    if (h5_has_attr(f, obj, "columns")) {
        char *s = NULL;
        DM_CALL(h5_get_attr_str(f, obj, "columns", &s));
        int rc = dm_strv_split(s, ',', cn, ncn);
        free(s);
        return rc;
    }
    char g[600];
    snprintf(g, sizeof g, "%s", group);
    for (;;) {
        char t[700];
        snprintf(t, sizeof t, "%s%s/columns/offsets", g[0] ? "/" : "", g);
        if (h5_exists(f, t)) {
            snprintf(t, sizeof t, "%s%s/columns", g[0] ? "/" : "", g);
            DM_CALL(h5_read_strv(f, t, cn, ncn));
            *root_cols = !g[0];
            return DM_OK;
        }
        if (!g[0]) return DM_OK;
        char *sl = strrchr(g, '/');
        if (sl) *sl = '\0';
        else g[0] = '\0';
    }
}

/* The means and user count of a users entry: the stored attributes "mean" and "users", else
 * computed over the scored (non-NaN) rows. */
static int entry_means(h5file *f, const char *obj, rpt_entry *e)
{
    size_t cols = e->cols;
    DM_ALLOC(e->mean, cols + 1);
    if (h5_has_attr(f, obj, "users")) DM_CALL(h5_get_attr_i64(f, obj, "users", &e->users));
    int stored = 0;
    DM_CALL(h5_get_attr_f64s(f, obj, "mean", e->mean, cols, &stored));
    if (stored && h5_has_attr(f, obj, "users")) return DM_OK;
    void *p;
    size_t r, c;
    DM_CALL(h5_read_all(f, obj, H5_F64, &p, &r, &c));
    double *x = p;
    int64_t cnt = 0;
    for (size_t j = 0; j < cols; j++) e->mean[j] = 0;
    for (size_t i = 0; i < r; i++) {
        if (isnan(x[i * c])) continue;
        cnt++;
        for (size_t j = 0; j < cols; j++) e->mean[j] += x[i * c + j];
    }
    for (size_t j = 0; j < cols; j++) e->mean[j] = cnt ? e->mean[j] / (double)cnt : NAN;
    e->users = cnt;
    free(p);
    return DM_OK;
}

/* model labels stored in the results files read: pairs (model, label) */
static char **g_stored;
static size_t g_nstored;

const char *rpt_stored_label(const char *model)
{
    for (size_t i = 0; i + 1 < g_nstored; i += 2)
        if (!strcmp(g_stored[i], model)) return g_stored[i + 1];
    return NULL;
}

/* The note of a points entry: its "note" attribute, and "batches of U users x C candidates" from
 * "batch_users" and "candidates" (the latency of `dynmm prompt`). */
static int entry_note(h5file *f, const char *obj, rpt_entry *e)
{
    dm_buf b = {0};
    int rc = DM_OK;
    if (h5_has_attr(f, obj, "note")) {
        char *n = NULL;
        rc = h5_get_attr_str(f, obj, "note", &n);
        if (!rc) rc = dm_buf_adds(&b, n);
        free(n);
    }
    int64_t u = 0, c = 0;
    if (!rc && h5_has_attr(f, obj, "batch_users") && h5_has_attr(f, obj, "candidates")) {
        rc = h5_get_attr_i64(f, obj, "batch_users", &u);
        if (!rc) rc = h5_get_attr_i64(f, obj, "candidates", &c);
        if (!rc) rc = dm_buf_printf(&b, "%sbatches of %lld users x %lld candidates", b.len ? "; " : "", (long long)u, (long long)c);
    }
    if (!rc && b.len && !(e->note = dm_str_dup(b.data))) rc = DM_ENOMEM;
    dm_buf_free(&b);
    return rc;
}

/* users_ok: the file holds per-user entries (a results file); n_users: its user count (0 = unknown) */
static int read_entry(h5file *f, const char *name, int users_ok, int64_t n_users, rpt_entry *e, int *keep)
{
    *keep = 0;
    memset(e, 0, sizeof *e);
    char obj[600];
    snprintf(obj, sizeof obj, "/%s", name);
    size_t rows, cols;
    int exists;
    DM_CALL(h5_shape(f, obj, &rows, &cols, &exists));
    if (h5_has_attr(f, obj, "kind")) { /* kind "rows": per-user rows of another shape, "latents": a
                                          model's latents (stream.h5 /serve); both left out */
        char *k = NULL;
        DM_CALL(h5_get_attr_str(f, obj, "kind", &k));
        int skip = !strcmp(k, "rows") || !strcmp(k, "latents");
        free(k);
        if (skip) return DM_OK;
    }
    e->name = dm_str_dup(name);
    const char *slash = strrchr(name, '/');
    e->group = slash ? dm_str_ndup(name, (size_t)(slash - name)) : dm_str_dup("");
    e->leaf = dm_str_dup(slash ? slash + 1 : name);
    if (!e->name || !e->group || !e->leaf) return DM_ENOMEM;
    e->rows = rows;
    e->cols = cols;
    char **cn = NULL;
    size_t ncn = 0;
    int root_cols = 0;
    DM_CALL(entry_columns(f, obj, e->group, &cn, &ncn, &root_cols));
    if (ncn != cols) {
        if (ncn) dm_log_v(2, "  %s: %s has %zu columns but its column table %zu; left out", f->path, obj, cols, ncn);
        else dm_log_v(2, "  %s: %s has no column names (a 'columns' table or attribute); left out", f->path, obj);
        dm_strv_free(cn, ncn);
        return DM_OK;
    }
    e->colnames = cn;
    char *kind = NULL;
    if (h5_has_attr(f, obj, "kind")) DM_CALL(h5_get_attr_str(f, obj, "kind", &kind));
    int nslash = 0;
    for (const char *p = name; *p; p++) nslash += *p == '/';
    e->root_cols = root_cols;
    e->kind = users_ok && root_cols && nslash >= 2 && !(kind && !strcmp(kind, "points")) && (!n_users || (int64_t)rows == n_users)
                  ? RPT_USERS
                  : RPT_POINTS;
    free(kind);
    if (e->kind == RPT_USERS) {
        const char *a = strchr(name, '/'), *b = strchr(a + 1, '/');
        e->split = dm_str_ndup(name, (size_t)(a - name));
        e->protocol = dm_str_ndup(a + 1, (size_t)(b - a - 1));
        e->model = dm_str_dup(b + 1);
        if (!e->split || !e->protocol || !e->model) return DM_ENOMEM;
        if (h5_has_attr(f, obj, "label")) {
            char *lab = NULL;
            DM_CALL(h5_get_attr_str(f, obj, "label", &lab));
            int rc = DM_OK;
            if (!rpt_stored_label(e->model)) {
                rc = dm_strv_push(&g_stored, &g_nstored, e->model);
                if (!rc) rc = dm_strv_push(&g_stored, &g_nstored, lab);
            }
            free(lab);
            DM_CALL(rc);
        }
        DM_CALL(entry_means(f, obj, e));
    } else {
        void *p;
        size_t r, c;
        DM_CALL(h5_read_all(f, obj, H5_F64, &p, &r, &c));
        e->data = p;
        DM_CALL(entry_note(f, obj, e));
    }
    *keep = 1;
    return DM_OK;
}

/* ---- configs written by other versions --------------------------------------------------- */

static int is_group_prefix(const char *path)
{
    size_t n, l = strlen(path);
    const dm_key *k = dm_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(k[i].name, path, l) && k[i].name[l] == '.') return 1;
    return 0;
}

/* Removes the settings this version does not know; returns how many. */
static size_t prune(config_setting_t *g, const char *prefix)
{
    size_t dropped = 0;
    for (int j = config_setting_length(g) - 1; j >= 0; j--) {
        config_setting_t *st = config_setting_get_elem(g, (unsigned)j);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", config_setting_name(st));
        if (config_setting_type(st) == CONFIG_TYPE_GROUP && dm_key_index(path) < 0) {
            if (is_group_prefix(path)) dropped += prune(st, path);
            else {
                dropped += (size_t)config_setting_length(st) + 1;
                config_setting_remove_elem(g, (unsigned)j);
            }
        } else if (config_setting_type(st) != CONFIG_TYPE_GROUP && dm_key_index(path) < 0) {
            config_setting_remove_elem(g, (unsigned)j);
            dropped++;
        }
    }
    return dropped;
}

/* The resolved config stored in a results file. A file written by another version may hold keys
 * this one does not know: they are dropped (with a warning), as they cannot matter to the report. */
static int load_stored_config(dm_cfg *c, const char *text, const char *path)
{
    if (dm_cfg_load_string(c, text, path) == DM_OK) return DM_OK;
    config_t lc;
    config_init(&lc);
    if (!config_read_string(&lc, text)) {
        config_destroy(&lc);
        DM_ERR(DM_EFORMAT, "'%s': the stored config does not parse", path);
        return DM_EFORMAT;
    }
    size_t dropped = prune(config_root_setting(&lc), "");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int rc = DM_OK;
    if (!m) rc = DM_ERR(DM_ENOMEM, "out of memory");
    else {
        config_write(&lc, m);
        fclose(m);
        dm_cfg_free(c);
        rc = dm_cfg_init(c);
        if (!rc) rc = dm_cfg_load_string(c, buf, path);
    }
    free(buf);
    config_destroy(&lc);
    if (!rc && dropped) {
        static int warned;
        if (!warned++) dm_warn("'%s' was written by a version of dynmm with %zu setting%s this one does not know; ignored", path, dropped,
                               dropped == 1 ? "" : "s");
    }
    return rc;
}

/* Appends the entries of an open file to the run: its 2-D float datasets but column tables. */
static int read_entries(h5file *f, int users_ok, int64_t n_users, rpt_run *run)
{
    h5_dataset_info *ds = NULL;
    size_t nds = 0;
    int rc = h5_list_datasets(f, &ds, &nds);
    rpt_entry *ne = rc ? NULL : dm_realloc_at(run->e, run->ne + nds + 1, sizeof *run->e, __FILE__, __LINE__);
    if (!rc && !ne) rc = DM_ENOMEM;
    if (ne) run->e = ne;
    for (size_t i = 0; !rc && i < nds; i++) {
        if (ds[i].rank != 2 || !ds[i].is_float || strstr(ds[i].name, "columns/")) continue;
        int keep;
        rc = read_entry(f, ds[i].name, users_ok, n_users, &run->e[run->ne], &keep);
        if (rc || !keep) entry_free(&run->e[run->ne]);
        else run->ne++;
    }
    h5_dataset_info_free(ds, nds);
    return rc;
}

static int read_run(par_ctx *ctx, const char *path, rpt_run *run)
{
    memset(run, 0, sizeof *run);
    run->path = dm_str_dup(path);
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *s = strrchr(d, '/');
    if (s) *s = '\0';
    s = strrchr(d, '/');
    run->id = dm_str_dup(s ? s + 1 : d);
    if (!run->path || !run->id) return DM_ENOMEM;
    h5file f;
    DM_CALL(h5_open_local(ctx, path, &f));
    size_t pl = strlen(path);
    const int stream_only = pl >= 10 && !strcmp(path + pl - 10, "/stream.h5");
    int rc = h5_check_format(&f, stream_only ? "dynmm-stream" : "dynmm-results", stream_only ? 2 : 1);
    int64_t fver = 1;
    if (!rc) rc = h5_get_attr_i64(&f, "/", "format_version", &fver);
    char *text = NULL;
    if (!rc) rc = h5_get_attr_str(&f, "/", "config", &text);
    if (!rc) rc = dm_cfg_init(&run->cfg);
    if (!rc) rc = load_stored_config(&run->cfg, text, path);
    free(text);
    if (!rc) run->seed = dm_cfg_int(&run->cfg, "run.seed");
    int64_t nu = 0;
    if (!rc && h5_has_attr(&f, "/", "n_users")) rc = h5_get_attr_i64(&f, "/", "n_users", &nu);
    /* stream.h5 v2 holds per-user rows (/prequential/...) beside its curves */
    if (!rc) rc = read_entries(&f, !stream_only || fver >= 2, nu, run);
    h5_close(&f);
    /* the run's other outputs: stream.h5 (metrics per streaming window, as curves; from v2 also
     * per-user rows of the prequential protocol, split "prequential") and prompt.h5 (per-user rows
     * of the LLM recommenders and of the models beside them, on the same stored candidate sets but
     * a sample of the users: its protocols are named "<protocol>-llm", so they make tables of their
     * own where every model has the same users) */
    static const struct {
        const char *file, *format;
        int version, rows_from, rename; /* per-user rows from format version rows_from on */
    } extra[] = {{"stream.h5", "dynmm-stream", 2, 2, 0}, {"prompt.h5", "dynmm-prompt", 2, 1, 1}};
    for (size_t i = 0; !rc && i < sizeof extra / sizeof extra[0]; i++) {
        char p[PATH_MAX + 64];
        if (stream_only && !strcmp(extra[i].file, "stream.h5")) continue; /* read above */
        const char *sl = strrchr(path, '/'); /* paths are absolute (realpath) */
        snprintf(p, sizeof p, "%.*s/%s", (int)(sl ? sl - path : 0), path, extra[i].file);
        if (!is_file(p)) continue;
        size_t before = run->ne;
        rc = h5_open_local(ctx, p, &f);
        int64_t ev = 1;
        if (!rc) {
            rc = h5_check_format(&f, extra[i].format, extra[i].version);
            if (!rc) rc = h5_get_attr_i64(&f, "/", "format_version", &ev);
            int users = ev >= extra[i].rows_from;
            if (!rc) rc = read_entries(&f, users, users ? nu : 0, run);
            h5_close(&f);
        }
        for (size_t k = before; !rc && k < run->ne; k++) {
            rpt_entry *e = &run->e[k];
            if (e->kind == RPT_USERS && extra[i].rename) {
                char proto[300];
                snprintf(proto, sizeof proto, "%s-llm", e->protocol);
                free(e->protocol);
                e->protocol = dm_str_dup(proto);
                if (!e->protocol) rc = DM_ENOMEM;
            }
            e->file = dm_str_dup(p);
            if (!e->file) rc = DM_ENOMEM;
        }
    }
    return rc;
}

/* ---- configurations ---------------------------------------------------------------------- */

static int ignored_key(const char *k)
{
    static const char *const keys[] = {"run.dir", "run.seed", "run.threads", "run.verbose", "run.resume", "run.force",
                                       "run.stages", "eval.batch", "sasrec.eval_batch", "sasrec.ce_chunk_mb", NULL};
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i])) return 1;
    return !strncmp(k, "io.", 3) || !strncmp(k, "report.", 7) || !strncmp(k, "sweep.", 6) || !strncmp(k, "stats.", 6);
}

static int add_unique(char ***v, size_t *n, const char *s)
{
    return dm_strv_find(*v, *n, s) >= 0 ? DM_OK : dm_strv_push(v, n, s);
}

static const rpt_set *g_sort_set;

static int cmp_values(const char *a, const char *b)
{
    double x, y;
    if (dm_str_is_number(a, &x) && dm_str_is_number(b, &y)) return x < y ? -1 : x > y;
    return strcmp(a, b);
}

static int cmp_conf(const void *pa, const void *pb)
{
    const rpt_conf *a = pa, *b = pb;
    for (size_t i = 0; i < g_sort_set->nvaried; i++) {
        int c = cmp_values(a->values[i], b->values[i]);
        if (c) return c;
    }
    return 0;
}

static const rpt_run *g_sort_runs;
static int cmp_run_seed(const void *pa, const void *pb)
{
    const rpt_run *a = &g_sort_runs[*(const size_t *)pa], *b = &g_sort_runs[*(const size_t *)pb];
    return a->seed < b->seed ? -1 : a->seed > b->seed;
}

/* The canonical text of each run's config without the ignored keys: text[r], malloc'd. */
static int conf_texts(const rpt_set *s, char ***out)
{
    size_t nk;
    const dm_key *keys = dm_keys(&nk);
    char **text = dm_calloc_at(s->nruns + 1, sizeof *text, __FILE__, __LINE__);
    if (!text) return DM_ENOMEM;
    int rc = DM_OK;
    for (size_t r = 0; r < s->nruns && !rc; r++) {
        dm_buf b = {0};
        for (size_t k = 0; k < nk && !rc; k++) {
            if (ignored_key(keys[k].name)) continue;
            rc = dm_buf_printf(&b, "%s=", keys[k].name);
            if (!rc) rc = dm_cfgtext_value(&s->runs[r].cfg, keys[k].name, &b);
            if (!rc) rc = dm_buf_addc(&b, '\n');
        }
        text[r] = b.data;
    }
    *out = text;
    return rc;
}

/* Configurations in order of first appearance, each with its runs; takes the texts it keeps. */
static int assign_confs(rpt_set *s, char **text)
{
    s->confs = dm_calloc_at(s->nruns + 1, sizeof *s->confs, __FILE__, __LINE__);
    if (!s->confs) return DM_ENOMEM;
    for (size_t r = 0; r < s->nruns; r++) {
        size_t c = 0;
        while (c < s->nconfs && strcmp(s->confs[c].key, text[r])) c++;
        if (c == s->nconfs) {
            s->confs[c].key = text[r];
            text[r] = NULL;
            s->nconfs++;
        }
        rpt_conf *cf = &s->confs[c];
        size_t *nr = dm_realloc_at(cf->runs, cf->nruns + 1, sizeof *nr, __FILE__, __LINE__);
        if (!nr) return DM_ENOMEM;
        cf->runs = nr;
        cf->runs[cf->nruns++] = r;
    }
    return DM_OK;
}

/* The keys (not ignored) whose values differ between configurations, in key-table order. */
static int find_varied(rpt_set *s)
{
    size_t nk;
    const dm_key *keys = dm_keys(&nk);
    int rc = DM_OK;
    for (size_t k = 0; k < nk && !rc && s->nconfs > 1; k++) {
        if (ignored_key(keys[k].name)) continue;
        dm_buf v0 = {0}, v = {0};
        rc = dm_cfgtext_value(&s->runs[s->confs[0].runs[0]].cfg, keys[k].name, &v0);
        for (size_t c = 1; c < s->nconfs && !rc; c++) {
            dm_buf_reset(&v);
            rc = dm_cfgtext_value(&s->runs[s->confs[c].runs[0]].cfg, keys[k].name, &v);
            if (!rc && strcmp(v.data, v0.data)) {
                rc = dm_strv_push(&s->varied, &s->nvaried, keys[k].name);
                break;
            }
        }
        dm_buf_free(&v0);
        dm_buf_free(&v);
    }
    return rc;
}

/* Moves the varied keys a sweep names (sweep.grid, then sweep.random) to the front, in its order. */
static void order_as_sweep(rpt_set *s)
{
    const dm_cfg *c0 = &s->runs[s->confs[0].runs[0]].cfg;
    size_t k = 0;
    const char *lists[2] = {"sweep.grid", "sweep.random"};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < dm_cfg_len(c0, lists[l]); i++) {
            const char *e = dm_cfg_str_at(c0, lists[l], i), *eq = strchr(e, '=');
            if (!eq) continue;
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - e), e);
            for (char *q = key + strlen(key); q > key && q[-1] == ' '; q--) q[-1] = '\0';
            int j = dm_strv_find(s->varied, s->nvaried, key[0] == ' ' ? key + 1 : key);
            if (j < 0 || (size_t)j < k) continue;
            char *t = s->varied[j];
            memmove(s->varied + k + 1, s->varied + k, (size_t)j - k > 0 ? ((size_t)j - k) * sizeof *s->varied : 0);
            s->varied[k++] = t;
        }
}

/* The varied keys' values of configuration c, and its runs by seed (the same seed twice: the
 * first file is kept, the other left out with a warning). */
static int conf_values_and_seeds(rpt_set *s, rpt_conf *cf)
{
    cf->values = dm_calloc_at(s->nvaried + 1, sizeof *cf->values, __FILE__, __LINE__);
    if (!cf->values) return DM_ENOMEM;
    for (size_t k = 0; k < s->nvaried; k++) {
        dm_buf v = {0};
        int rc = dm_cfgtext_value(&s->runs[cf->runs[0]].cfg, s->varied[k], &v);
        if (!rc && !(cf->values[k] = dm_str_dup(v.data))) rc = DM_ENOMEM;
        dm_buf_free(&v);
        DM_CALL(rc);
    }
    g_sort_runs = s->runs;
    qsort(cf->runs, cf->nruns, sizeof *cf->runs, cmp_run_seed);
    size_t k = 0;
    for (size_t i = 0; i < cf->nruns; i++) {
        if (k && s->runs[cf->runs[k - 1]].seed == s->runs[cf->runs[i]].seed) {
            dm_warn("%s and %s hold the same configuration and seed %lld; using the first",
                    s->runs[cf->runs[k - 1]].path, s->runs[cf->runs[i]].path, (long long)s->runs[cf->runs[i]].seed);
            s->runs[cf->runs[i]].conf = SIZE_MAX;
            continue;
        }
        cf->runs[k++] = cf->runs[i];
    }
    cf->nruns = k;
    return DM_OK;
}

/* Groups the runs into configurations ordered by their varied values, and finds the varied keys. */
static int group_confs(rpt_set *s)
{
    char **text = NULL;
    int rc = conf_texts(s, &text);
    if (!rc) rc = assign_confs(s, text);
    for (size_t r = 0; text && r < s->nruns; r++) free(text[r]);
    free(text);
    if (!rc) rc = find_varied(s);
    if (!rc && s->nvaried > 1) order_as_sweep(s);
    for (size_t c = 0; c < s->nconfs && !rc; c++) rc = conf_values_and_seeds(s, &s->confs[c]);
    if (rc) return rc;
    g_sort_set = s;
    qsort(s->confs, s->nconfs, sizeof *s->confs, cmp_conf);
    for (size_t c = 0; c < s->nconfs; c++)
        for (size_t i = 0; i < s->confs[c].nruns; i++) s->runs[s->confs[c].runs[i]].conf = c;
    return DM_OK;
}

static int build_labels(rpt_set *s)
{
    for (size_t c = 0; c < s->nconfs; c++) {
        dm_buf b = {0};
        for (size_t k = 0; k < s->nvaried; k++) {
            const char *key = s->varied[k], *dot = strrchr(key, '.');
            /* the short name unless another varied key shares it */
            int clash = 0;
            for (size_t j = 0; j < s->nvaried; j++)
                if (j != k && !strcmp(strrchr(s->varied[j], '.') ? strrchr(s->varied[j], '.') + 1 : s->varied[j], dot ? dot + 1 : key)) clash = 1;
            DM_CALL(dm_buf_printf(&b, "%s%s=%s", k ? ", " : "", clash || !dot ? key : dot + 1, s->confs[c].values[k]));
        }
        s->confs[c].label = dm_str_dup(b.data ? b.data : "");
        dm_buf_free(&b);
        if (!s->confs[c].label) return DM_ENOMEM;
    }
    return DM_OK;
}

static int collect_names(rpt_set *s)
{
    /* models, splits and protocols: eval.* order of each run first (the streaming variants in
     * stream.variants order after eval.models), then any others by name */
    for (size_t r = 0; r < s->nruns; r++) {
        const rpt_run *run = &s->runs[r];
        if (run->conf == SIZE_MAX) continue;
        const char *lists[4] = {"eval.models", "stream.variants", "eval.splits", "eval.protocols"};
        char ***dst[4] = {&s->models, &s->models, &s->splits, &s->protocols};
        size_t *dn[4] = {&s->nmodels, &s->nmodels, &s->nsplits, &s->nprotocols};
        for (int l = 0; l < 4; l++)
            for (size_t i = 0; i < dm_cfg_len(&run->cfg, lists[l]); i++) {
                const char *nm = dm_cfg_str_at(&run->cfg, lists[l], i);
                for (size_t e = 0; e < run->ne; e++) {
                    const rpt_entry *en = &run->e[e];
                    if (en->kind != RPT_USERS) continue;
                    const char *have = l <= 1 ? en->model : l == 2 ? en->split : en->protocol;
                    if (!strcmp(have, nm)) {
                        DM_CALL(add_unique(dst[l], dn[l], nm));
                        break;
                    }
                }
            }
    }
    for (size_t r = 0; r < s->nruns; r++) {
        const rpt_run *run = &s->runs[r];
        if (run->conf == SIZE_MAX) continue;
        for (size_t e = 0; e < run->ne; e++) {
            const rpt_entry *en = &run->e[e];
            if (en->kind == RPT_USERS) {
                DM_CALL(add_unique(&s->models, &s->nmodels, en->model));
                DM_CALL(add_unique(&s->splits, &s->nsplits, en->split));
                DM_CALL(add_unique(&s->protocols, &s->nprotocols, en->protocol));
            } else
                DM_CALL(add_unique(&s->groups, &s->ngroups, en->group));
        }
    }
    return DM_OK;
}

int rpt_load(par_ctx *ctx, char *const *paths, size_t n, rpt_set *s)
{
    memset(s, 0, sizeof *s);
    DM_ALLOC(s->runs, n + 1);
    int rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = read_run(ctx, paths[i], &s->runs[i]);
        s->nruns = i + 1;
    }
    if (!rc) rc = group_confs(s);
    if (!rc) rc = build_labels(s);
    if (!rc) rc = collect_names(s);
    return par_agree(ctx, rc);
}

void rpt_set_free(rpt_set *s)
{
    dm_strv_free(g_stored, g_nstored);
    g_stored = NULL;
    g_nstored = 0;
    for (size_t r = 0; r < s->nruns; r++) {
        rpt_run *run = &s->runs[r];
        for (size_t e = 0; e < run->ne; e++) entry_free(&run->e[e]);
        DM_FREE_ALL(run->e, run->path, run->id);
        dm_cfg_free(&run->cfg);
    }
    free(s->runs);
    for (size_t c = 0; c < s->nconfs; c++) {
        DM_FREE_ALL(s->confs[c].key, s->confs[c].runs, s->confs[c].label);
        dm_strv_free(s->confs[c].values, s->nvaried);
    }
    free(s->confs);
    dm_strv_free(s->varied, s->nvaried);
    dm_strv_free(s->models, s->nmodels);
    dm_strv_free(s->splits, s->nsplits);
    dm_strv_free(s->protocols, s->nprotocols);
    dm_strv_free(s->groups, s->ngroups);
    memset(s, 0, sizeof *s);
}

int rpt_read_rows(par_ctx *ctx, const rpt_run *r, const rpt_entry *e, double **rows)
{
    h5file f;
    const char *src = e->file ? e->file : r->path;
    DM_CALL(h5_open_local(ctx, src, &f));
    char obj[600];
    snprintf(obj, sizeof obj, "/%s", e->name);
    void *p = NULL;
    size_t nr, nc;
    int rc = h5_read_all(&f, obj, H5_F64, &p, &nr, &nc);
    h5_close(&f);
    if (!rc && (nr != e->rows || nc != e->cols)) {
        free(p);
        rc = DM_ERR(DM_EFORMAT, "%s: %s changed shape while the report read it", src, obj);
    }
    *rows = rc ? NULL : p;
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

const rpt_entry *rpt_find(const rpt_run *r, const char *split, const char *protocol, const char *model)
{
    for (size_t i = 0; i < r->ne; i++) {
        const rpt_entry *e = &r->e[i];
        if (e->kind == RPT_USERS && !strcmp(e->split, split) && !strcmp(e->protocol, protocol) && !strcmp(e->model, model)) return e;
    }
    return NULL;
}

const rpt_entry *rpt_find_name(const rpt_run *r, const char *name)
{
    for (size_t i = 0; i < r->ne; i++)
        if (!strcmp(r->e[i].name, name)) return &r->e[i];
    return NULL;
}

int rpt_col(const rpt_entry *e, const char *metric)
{
    for (size_t j = 0; j < e->cols; j++)
        if (!strcmp(e->colnames[j], metric)) return (int)j;
    return -1;
}

int rpt_has_entry(const rpt_set *s, const char *split, const char *protocol, const char *model)
{
    for (size_t r = 0; r < s->nruns; r++)
        for (size_t e = 0; e < s->runs[r].ne; e++) {
            const rpt_entry *en = &s->runs[r].e[e];
            if (en->kind == RPT_USERS && !strcmp(en->split, split) && (!protocol || !strcmp(en->protocol, protocol)) &&
                (!model || !strcmp(en->model, model)))
                return 1;
        }
    return 0;
}

int rpt_match_models(const rpt_set *s, char *const *globs, size_t n, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    for (size_t g = 0; g < n; g++)
        for (size_t m = 0; m < s->nmodels; m++)
            if (dm_str_match(globs[g], s->models[m]) && dm_strv_find(*out, *nout, s->models[m]) < 0)
                DM_CALL(dm_strv_push(out, nout, s->models[m]));
    return DM_OK;
}

int rpt_conf_ok(const rpt_set *s, size_t c, char *const *where, size_t nwhere)
{
    const rpt_run *r = &s->runs[s->confs[c].runs[0]];
    for (size_t i = 0; i < nwhere; i++) {
        const char *eq = strchr(where[i], '=');
        if (!eq) continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - where[i]), where[i]);
        if (dm_key_index(key) < 0) return 0;
        dm_buf v = {0};
        int ok = !dm_cfgtext_value(&r->cfg, key, &v) && v.data && !strcmp(v.data, eq + 1);
        if (!ok && v.data) {
            double a, b;
            ok = dm_str_is_number(v.data, &a) && dm_str_is_number(eq + 1, &b) && a == b;
        }
        dm_buf_free(&v);
        if (!ok) return 0;
    }
    return 1;
}

size_t rpt_conf_values(const rpt_set *s, size_t c, const char *split, const char *protocol, const char *model,
                       const char *metric, double *vals)
{
    const rpt_conf *cf = &s->confs[c];
    size_t k = 0;
    for (size_t i = 0; i < cf->nruns; i++) {
        const rpt_entry *e = rpt_find(&s->runs[cf->runs[i]], split, protocol, model);
        int col = e ? rpt_col(e, metric) : -1;
        vals[i] = col >= 0 ? e->mean[col] : NAN;
        k += col >= 0 && !isnan(vals[i]);
    }
    return k;
}

/* ---- options ----------------------------------------------------------------------------- */

/* The tests' options from the stats.* keys. */
static int stats_options(const dm_cfg *c, stats_opts *so)
{
    stats_opts_default(so);
    DM_CALL(stats_test_parse(dm_cfg_str(c, "stats.test"), &so->test));
    DM_CALL(stats_alt_parse(dm_cfg_str(c, "stats.alternative"), &so->alt));
    DM_CALL(stats_zero_parse(dm_cfg_str(c, "stats.zero_method"), &so->zero_method));
    DM_CALL(stats_method_parse(dm_cfg_str(c, "stats.method"), &so->method));
    DM_CALL(stats_ci_parse(dm_cfg_str(c, "stats.ci_method"), &so->ci_method));
    so->continuity = dm_cfg_bool(c, "stats.continuity");
    so->permutations = (size_t)dm_cfg_int(c, "stats.permutations");
    so->resamples = (size_t)dm_cfg_int(c, "stats.bootstrap");
    so->level = dm_cfg_float(c, "stats.ci");
    so->hedges = !strcmp(dm_cfg_str(c, "stats.effect"), "hedges");
    so->seed = (uint64_t)dm_cfg_int(c, "stats.seed");
    if (!so->seed) so->seed = dm_rng_key((uint64_t)dm_cfg_int(c, "run.seed"), 0x5354415453ULL, 0);
    return DM_OK;
}

/* Sets *flags[j] for every entry of the list `key` that is names[j]; any other entry is an error
 * ("unknown <what> format") with the names as the hint. */
static int parse_formats(const dm_cfg *c, const char *key, const char *what, const char *const *names, int *const *flags, size_t n)
{
    for (size_t i = 0; i < dm_cfg_len(c, key); i++) {
        const char *f = dm_cfg_str_at(c, key, i);
        size_t j = 0;
        while (j < n && strcmp(f, names[j])) j++;
        if (j < n) {
            *flags[j] = 1;
            continue;
        }
        char w[256];
        dm_buf h = {0};
        for (j = 0; j < n; j++) dm_buf_printf(&h, "%s%s", j ? ", " : "", names[j]);
        DM_ERR(DM_ECONFIG, "%s: unknown %s format '%s'", dm_cfg_where(c, key, w, sizeof w), what, f);
        DM_HINT("%s", h.data);
        dm_buf_free(&h);
        return DM_ECONFIG;
    }
    return DM_OK;
}

int rpt_opts_init(const dm_cfg *c, rpt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cfg = c;
    DM_CALL(stats_options(c, &o->so));
    o->alpha = dm_cfg_float(c, "stats.alpha");
    o->holm = !strcmp(dm_cfg_str(c, "stats.correction"), "holm");
    const char *a = dm_cfg_str(c, "report.across_seeds");
    o->across = !strcmp(a, "ttest") ? 0 : !strcmp(a, "test") ? 1 : 2;
    o->digits = (int)dm_cfg_int(c, "report.digits");
    o->percent = dm_cfg_bool(c, "report.percent");
    o->std = dm_cfg_bool(c, "report.std");
    const char *const tables[] = {"tex", "md", "csv"}, *const figures[] = {"png", "pdf"};
    int *const tflags[] = {&o->tex, &o->md, &o->csv}, *const fflags[] = {&o->png, &o->pdf};
    DM_CALL(parse_formats(c, "report.formats", "table", tables, tflags, 3));
    DM_CALL(parse_formats(c, "report.figure_formats", "figure", figures, fflags, 2));
    for (size_t i = 0; i < dm_cfg_len(c, "report.baselines"); i++) {
        const char *r = dm_cfg_str_at(c, "report.baselines", i), *eq = strchr(r, '=');
        if (!eq || eq == r || !eq[1]) {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: rule '%s' is not TABLE=MODEL", dm_cfg_where(c, "report.baselines", w, sizeof w), r);
            DM_HINT("e.g. \"*-llm=align\": every table whose name ends in -llm compares with align");
            return DM_ECONFIG;
        }
    }
    for (size_t i = 0; i < dm_cfg_len(c, "report.labels"); i++)
        if (!strchr(dm_cfg_str_at(c, "report.labels", i), '=')) {
            char w[256];
            DM_ERR(DM_ECONFIG, "%s: label '%s' is not name=Label", dm_cfg_where(c, "report.labels", w, sizeof w), dm_cfg_str_at(c, "report.labels", i));
            return DM_ECONFIG;
        }
    return DM_OK;
}

int rpt_lower_better(const rpt_opts *o, const char *metric)
{
    for (size_t i = 0; i < dm_cfg_len(o->cfg, "report.lower_better"); i++)
        if (dm_str_match(dm_cfg_str_at(o->cfg, "report.lower_better", i), metric)) return 1;
    return 0;
}
