/* testlib.c: the helpers of testlib.h, and tap.h's check counters (one pair per test binary, so
 * checks made here count with the test's own). */
#include "testlib.h"

#include "../../src/core/err.h"
#include "../../src/core/lines.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int tap_fail_count;
int tap_check_count;

/* ---- numbers --------------------------------------------------------------------------------- */

double tl_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double tl_maxabs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

double tl_maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

double tl_maxdiff_ref(const float *x, const double *ref, size_t n, double *refmax)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(x[i] - ref[i]));
        s = fmax(s, fabs(ref[i]));
    }
    if (refmax) *refmax = s;
    return d;
}

void tl_randn(dm_rng *r, float *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd * dm_rng_normal(r));
}

float *tl_randn_new(dm_rng *r, size_t n, double sd)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (p) tl_randn(r, p, n, sd);
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tl_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void tl_free_list(void *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++) free(p[i]);
}

void tl_die(const char *what)
{
    dm_error_print(what);
    exit(1);
}

/* ---- reference files ------------------------------------------------------------------------- */

/* the parse and its check; m->text holds len bytes */
static void parse_checked(tl_manifest *m, size_t len, const char *path)
{
    dm_jerr err;
    CHECK(dm_json_parse(&m->doc, m->text, len, 0, &m->root, &err) == 0, "parse %s: %s", path, err.what);
}

const char *tl_ref_dir(void)
{
    const char *ref = getenv("DM_REF_DIR");
    if (!ref) printf("# DM_REF_DIR unset: PyTorch parity not checked (run through tests/run.sh)\n");
    return ref;
}

void tl_with_ref(void (*test)(const char *ref))
{
    const char *ref = tl_ref_dir();
    if (ref) test(ref);
}

int tl_manifest_open(tl_manifest *m, const char *sub, const char *format)
{
    memset(m, 0, sizeof *m);
    const char *ref = tl_ref_dir();
    if (!ref) return 1;
    char path[1100];
    snprintf(m->dir, sizeof m->dir, "%s/%s", ref, sub);
    snprintf(path, sizeof path, "%s/manifest.json", m->dir);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s (run tests/reference/gen_%s.py first)", path, sub);
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    m->text = malloc(n + 1);
    CHECK(fread(m->text, 1, n, f) == n, "read %s", path);
    fclose(f);
    parse_checked(m, n, path);
    const dm_json *fmt = m->root ? dm_json_get(m->root, "format") : NULL;
    CHECK(fmt && fmt->type == DM_JSTR && !strcmp(fmt->str, format) && tl_jint(m->root, "version") == 1,
          "%s: format %s version 1 expected", path, format);
    return 0;
}

void tl_manifest_close(tl_manifest *m)
{
    dm_jdoc_free(&m->doc);
    free(m->text);
    memset(m, 0, sizeof *m);
}

int tl_each_case(const tl_manifest *m, const char *key, tl_case_fn run, int naive_too)
{
    int n = 0;
    for (const dm_json *cs = tl_json_first(m->root, key); cs; cs = cs->next, n++) {
        run(m->dir, cs, 0);
        if (naive_too) run(m->dir, cs, 1);
    }
    return n;
}

int tl_parity(const char *sub, const char *format, tl_case_fn run, int naive_too, int min_cases)
{
    tl_manifest m;
    if (tl_manifest_open(&m, sub, format)) return -1;
    int n = tl_each_case(&m, "cases", run, naive_too);
    CHECK(n >= min_cases, "%s: only %d reference cases, expected %d or more", m.dir, n, min_cases);
    tl_manifest_close(&m);
    return n;
}

const dm_json *tl_json_first(const dm_json *o, const char *k)
{
    const dm_json *a = o ? dm_json_get(o, k) : NULL;
    return a ? a->child : NULL;
}

int tl_ref_json(tl_manifest *m, const char *name, const char *gen)
{
    memset(m, 0, sizeof *m);
    const char *dir = getenv("DM_REF_DIR");
    snprintf(m->dir, sizeof m->dir, "%s", dir ? dir : "build/ref");
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", m->dir, name);
    size_t len = 0;
    if (dm_read_file(path, &m->text, &len) != DM_OK) {
        CHECK(0, "cannot read %s (run tests/reference/%s first)", path, gen);
        dm_error_clear();
        return 1;
    }
    parse_checked(m, len, path);
    return 0;
}

void *tl_slurp(const char *dir, const char *name, const char *suffix, size_t want)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("# cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(p, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n || (want && (size_t)n != want)) {
        printf("# %s has %ld bytes, expected %zu\n", path, n, want);
        free(p);
        return NULL;
    }
    return p;
}

void *tl_load(const char *dir, const char *name, const char *suffix, size_t bytes)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "rb");
    void *p = calloc(bytes ? bytes : 1, 1);
    size_t got = f ? fread(p, 1, bytes, f) : 0;
    int extra = f ? fgetc(f) != EOF : 0;
    CHECK(f && got == bytes && !extra, "cannot read %zu bytes from %s", bytes, path);
    if (f) fclose(f);
    return p;
}

long long tl_jint(const dm_json *o, const char *k)
{
    int64_t v = 0;
    const dm_json *x = dm_json_get(o, k);
    if (!x || dm_json_int(x, &v)) printf("# manifest: missing integer %s\n", k);
    return v;
}

double tl_jnum(const dm_json *o, const char *k)
{
    double v = NAN;
    const dm_json *x = dm_json_get(o, k);
    if (!x || dm_json_double(x, &v)) printf("# manifest: missing number %s\n", k);
    return v;
}

long long tl_jat(const dm_json *arr, size_t i)
{
    int64_t v = 0;
    const dm_json *x = dm_json_at(arr, i);
    if (!x || dm_json_int(x, &v)) printf("# manifest: missing array element %zu\n", i);
    return v;
}

/* ---- small datasets -------------------------------------------------------------------------- */

dm_process_opts tl_process_opts(const double *edges, int n_edges, int cat_levels, int windows)
{
    dm_process_opts o = {0};
    o.loo_min_len = 3;
    o.window_count = windows;
    if (windows == 2) {
        o.temporal_valid = 0.2;
        o.temporal_test = 0.2;
        o.window_start = 0.5;
    }
    o.price_edges = edges;
    o.n_price_edges = (size_t)n_edges;
    o.max_cat_levels = cat_levels;
    o.min_attr_count = 1;
    return o;
}

dm_dataset tl_dataset_view(int n_users, int n_items, int64_t *user_off, int32_t *item)
{
    dm_dataset d;
    memset(&d, 0, sizeof d);
    d.n_users = (size_t)n_users;
    d.n_items = (size_t)n_items;
    d.n_inter = (size_t)user_off[n_users];
    d.user_off = user_off;
    d.item = item;
    return d;
}

double tl_check_ref(const float *x, const double *ref, size_t n, double rtol, const char *what)
{
    double rmax, d = tl_maxdiff_ref(x, ref, n, &rmax);
    printf("# %s: max |C - PyTorch| = %.3g (max |ref| %.3g)\n", what, d, rmax);
    CHECK(d <= rtol * rmax, "%s against PyTorch: %.3g > %.3g", what, d, rtol * rmax);
    return rmax;
}

double tl_fd_maxdiff(float *w, size_t n, size_t stride, double h, double norm, const double *grad, double (*f)(void *ctx), void *ctx)
{
    double worst = 0;
    for (size_t k = 0; k < n; k += stride) {
        float keep = w[k];
        w[k] = keep + (float)h;
        double lp = f(ctx);
        w[k] = keep - (float)h;
        double lm = f(ctx);
        w[k] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) / norm - grad[k]));
    }
    return worst;
}

void tl_model_shares(const dm_model_ops *ops, void *self, const size_t *ex, size_t n, const int64_t *gidx, uint64_t seed, uint64_t step, double gtol,
                     double ltol)
{
    size_t np;
    float *g = ops->grads(self, &np), *whole = malloc(np * sizeof *whole + 4);
    double norm = ops->batch_norm(self, ex, n), lw = 0, l1 = 0, l2 = 0;
    memset(g, 0, np * sizeof *g);
    int rc = ops->grad(self, ex, n, gidx, seed, step, norm, &lw);
    memcpy(whole, g, np * sizeof *g);
    memset(g, 0, np * sizeof *g);
    rc |= ops->grad(self, ex, 1, gidx, seed, step, norm, &l1);
    rc |= ops->grad(self, ex + 1, n - 1, gidx + 1, seed, step, norm, &l2);
    double dmax = tl_maxdiff(whole, g, np), gmax = tl_maxabs(whole, np);
    printf("# %s: shares {0} + {1..%zu} vs the whole batch: max gradient difference %.3g (max %.3g), losses %.9g vs %.9g\n", ops->name, n - 1, dmax,
           gmax, l1 + l2, lw);
    CHECK(rc == 0 && dmax <= gtol * gmax, "%s: the shares' gradients add up to the batch's: %.3g > %.3g", ops->name, dmax, gtol * gmax);
    CHECK(fabs(l1 + l2 - lw) <= ltol * fabs(lw), "%s: the shares' losses add up to the batch's: %.9g vs %.9g", ops->name, l1 + l2, lw);
    memset(g, 0, np * sizeof *g);
    free(whole);
}

const char *tl_str(const dm_strtab *t, size_t i)
{
    static char b[4][256];
    static int k;
    size_t l;
    const char *s = dm_strtab_get(t, i, &l);
    k = (k + 1) % 4;
    snprintf(b[k], sizeof b[k], "%.*s", (int)l, s);
    return b[k];
}

/* ---- safetensors references ---- */

int tl_st_open_ref(safetensors_file *f, char *dir, size_t cap, const char *root, const char *sub, const char *test)
{
    snprintf(dir, cap, "%s/%s", root, sub);
    char path[4200];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (!safetensors_open(f, path)) return 0;
    dm_error_print(test);
    printf("FAIL: no reference (tests/reference/gen_%s.py writes it)\n", sub);
    return 1;
}

float *tl_st_get(safetensors_file *f, const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t) {
        printf("FAIL: reference tensor '%s' missing\n", name);
        exit(1);
    }
    float *x = malloc(t->numel * sizeof *x + 1);
    if (safetensors_read_f32(f, t, x)) exit(1);
    if (n) *n = t->numel;
    return x;
}

int *tl_st_get_int(safetensors_file *f, const char *name, size_t *n)
{
    size_t k;
    float *v = tl_st_get(f, name, &k);
    int *x = malloc(k * sizeof *x + 1);
    for (size_t i = 0; i < k; i++) x[i] = (int)v[i];
    free(v);
    if (n) *n = k;
    return x;
}

double tl_maxdiff_nan(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ---- text corpora ---- */

int tl_each_json_line(const char *path, int strict, void (*fn)(const dm_json *root, void *ctx), void *ctx)
{
    dm_lines r;
    if (dm_lines_open(&r, path)) return -1;
    dm_jdoc doc = {0};
    char *line;
    size_t len;
    int rc = 0;
    while (dm_lines_next(&r, &line, &len) == DM_OK && line) {
        dm_json *root;
        dm_jerr err;
        dm_jdoc_reset(&doc);
        if (!dm_json_parse(&doc, line, len, 1, &root, &err)) {
            fn(root, ctx);
        } else if (strict) {
            printf("FAIL: %s:%lld: %s\n", path, (long long)r.lineno, err.what);
            rc = -1;
            break;
        }
    }
    dm_jdoc_free(&doc);
    dm_lines_close(&r);
    return rc;
}

int tl_beauty_meta(char *path, size_t cap)
{
    const char *data = getenv("DM_DATA");
    snprintf(path, cap, "%s/amazon-beauty/meta_Beauty.json.gz", data ? data : "");
    return data && *data && access(path, R_OK) == 0;
}

int tl_length_records(dm_buf *out, const dm_strtab *texts)
{
    for (size_t i = 0; i < texts->n; i++) {
        size_t n;
        const char *s = dm_strtab_get(texts, i, &n);
        unsigned char l[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
        if (dm_buf_add(out, l, 4) || dm_buf_add(out, s, n)) return DM_ENOMEM;
    }
    return DM_OK;
}
