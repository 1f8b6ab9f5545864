/* cmd_sweep.c: `dynmm sweep SWEEP.cfg`: expands a sweep file into runs, a manifest and a Slurm array.
 *
 * A sweep file is an ordinary config (every setting it makes applies to every run) whose sweep.*
 * keys say what varies: sweep.base (a base config loaded first), sweep.grid (every combination of
 * the listed values), sweep.random + sweep.samples (a seeded random search, combined with every
 * grid point) and sweep.seeds (run.seed values; each configuration runs once per seed).
 *
 * Output, in sweep.dir (default runs/sweeps/<name>):
 *   base.cfg       the resolved base config (defaults + base + sweep file + --set), all keys
 *   manifest.tsv   format "dynmm-sweep-manifest" v1. Comment lines start with '#'; "# key: value"
 *                  lines give name, base, ranks, runs, workdir. Then a header line and one line per
 *                  run, tab-separated:
 *                    index  id  config  seed  dir  hash  set...
 *                  index 0..n-1 (the Slurm array index), id the run's name, config the 12-hex hash
 *                  of its varied settings (runs differing only in the seed share it), dir its run
 *                  directory, hash the sha256 of its resolved config (`dynmm config base.cfg --set
 *                  ... --hash`; the DONE marker holds it), then one column per --set assignment
 *                  applied on top of base.cfg (the varied keys, run.seed, run.dir).
 *   manifest.json  the same as JSON: {format, version, name, base, ranks, workdir, keys, seeds, runs:
 *                  [{index, id, config, seed, dir, hash, set: [...], values: {key: value}}]}
 *   sweep.sbatch   the Slurm array (one task per run) calling jobs/sweep.sbatch on the manifest
 *   logs/          Slurm output of the array tasks
 * Paths in the manifest are relative to the directory `dynmm sweep` ran in (the workdir), where the
 * jobs run too.
 *
 * Run ids are deterministic: "<values>-<h6>-s<seed>" (the varied values joined by '_', at most 40
 * characters, then the first 6 hex digits of the config hash), or "s<seed>" when nothing but the
 * seed varies. They depend only on the varied settings and the seed, so extending a grid keeps the
 * names, and the DONE markers, of runs already made.
 */
#include "cmd.h"
#include "../mpi/cli.h"

#include "../src/config/cfgtext.h"
#include "../src/core/err.h"
#include "../src/core/fs.h"
#include "../src/core/log.h"
#include "../src/core/rng.h"
#include "../src/core/sha256.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: dynmm sweep SWEEP.cfg [--set group.key=value ...]\n\n"
    "Expands a sweep file into runs: sweep.base is the base config, the file's own settings apply to\n"
    "every run, sweep.grid lists values per key ('sasrec.hidden=[32,64]'), sweep.random draws\n"
    "sweep.samples settings ('sasrec.lr=loguniform(1e-4,1e-2)', 'int(1,3)', 'uniform(0,0.5)',\n"
    "'choice(bce,ce)'), sweep.seeds repeats every configuration per seed. Writes into sweep.dir:\n"
    "base.cfg, manifest.tsv and manifest.json (run id, run dir, --set overrides) and sweep.sbatch\n"
    "(a Slurm array, one task per run). Then:\n\n"
    "  sbatch runs/sweeps/NAME/sweep.sbatch                        # on a Slurm cluster\n"
    "  jobs/sweep.sbatch runs/sweeps/NAME/manifest.tsv             # on a workstation (mpirun)\n"
    "  dynmm report runs/sweeps/NAME                               # tables and figures\n\n"
    "Runs already finished (a DONE marker holding the run's config hash) are skipped by the jobs.\n";

enum { D_CHOICE, D_UNIFORM, D_LOGUNIFORM, D_INT };

typedef struct {
    char *key;
    int random;       /* 0 grid axis, 1 random key */
    int dist;         /* random: D_* */
    double lo, hi;    /* uniform/loguniform/int */
    char **vals;      /* grid values or choices, normalised --set text */
    size_t nvals;
} axis;

typedef struct {
    char **vals; /* (naxes) value text per axis */
    char ident[65];
} conf;

static void axes_free(axis *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].key);
        dm_strv_free(a[i].vals, a[i].nvals);
    }
    free(a);
}

/* Validates `value` for `key` against a scratch config and returns its normalised text. */
static int normalise(dm_cfg *scratch, const char *key, const char *value, const char *where, char **out)
{
    dm_buf a = {0}, t = {0};
    int rc = dm_buf_printf(&a, "%s=%s", key, value);
    if (!rc) {
        rc = dm_cfg_set(scratch, a.data);
        if (rc) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", dm_error_message());
            rc = DM_ERR(rc, "%s: %s", where, msg);
        }
    }
    if (!rc) rc = dm_cfgtext_value(scratch, key, &t);
    if (!rc) *out = dm_str_dup(t.data);
    if (!rc && !*out) rc = DM_ENOMEM;
    dm_buf_free(&a);
    dm_buf_free(&t);
    return rc;
}

static int check_key(const char *key, const char *where)
{
    if (dm_key_index(key) < 0) {
        DM_ERR(DM_ECONFIG, "%s: unknown key '%s'", where, key);
        DM_HINT("every key is listed in configs/reference.cfg");
        return DM_ECONFIG;
    }
    if (!strcmp(key, "run.seed")) {
        DM_ERR(DM_ECONFIG, "%s: run.seed cannot be swept here", where);
        DM_HINT("list the seeds in sweep.seeds; the report averages over them");
        return DM_ECONFIG;
    }
    if (!strcmp(key, "run.dir") || !strncmp(key, "sweep.", 6)) {
        DM_ERR(DM_ECONFIG, "%s: '%s' cannot be swept", where, key);
        DM_HINT("run directories are <sweep.dir>/<run id>");
        return DM_ECONFIG;
    }
    return DM_OK;
}

static int parse_grid(dm_cfg *scratch, const char *entry, const char *where, axis *ax)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry) {
        DM_ERR(DM_ECONFIG, "%s: '%s' is not 'group.key=[v1,v2,...]'", where, entry);
        DM_HINT("e.g. grid = [\"sasrec.hidden=[32,64]\", \"sasrec.dropout=[0.2,0.5]\"]; on the command line --set 'sweep.grid=sasrec.hidden=32|64'");
        return DM_ECONFIG;
    }
    ax->key = dm_str_ndup(entry, (size_t)(eq - entry));
    if (!ax->key) return DM_ENOMEM;
    char *k = ax->key;
    while (*k == ' ') memmove(k, k + 1, strlen(k));
    for (size_t l = strlen(k); l && k[l - 1] == ' '; l--) k[l - 1] = '\0';
    DM_CALL(check_key(ax->key, where));
    const char *v = eq + 1;
    while (*v == ' ') v++;
    size_t L = strlen(v);
    while (L && v[L - 1] == ' ') L--;
    char **parts = NULL;
    size_t np = 0;
    if (L >= 2 && v[0] == '[' && v[L - 1] == ']') {
        char *inner = dm_str_ndup(v + 1, L - 2);
        if (!inner) return DM_ENOMEM;
        int rc = dm_strv_split(inner, ',', &parts, &np);
        free(inner);
        DM_CALL(rc);
    } else {
        /* v1|v2|... (the form that survives --set, which splits lists at commas) */
        char *one = dm_str_ndup(v, L);
        if (!one) return DM_ENOMEM;
        int rc = dm_strv_split(one, '|', &parts, &np);
        free(one);
        DM_CALL(rc);
    }
    if (np == 0) {
        DM_ERR(DM_ECONFIG, "%s: '%s' lists no values", where, entry);
        return DM_ECONFIG;
    }
    int rc = DM_OK;
    for (size_t i = 0; i < np && !rc; i++) {
        char *norm = NULL;
        rc = normalise(scratch, ax->key, parts[i], where, &norm);
        if (!rc && dm_strv_find(ax->vals, ax->nvals, norm) >= 0)
            rc = DM_ERR(DM_ECONFIG, "%s: '%s' lists the value %s twice", where, ax->key, norm);
        if (!rc) rc = dm_strv_push(&ax->vals, &ax->nvals, norm);
        free(norm);
    }
    dm_strv_free(parts, np);
    return rc;
}

static int parse_random(dm_cfg *scratch, const char *entry, const char *where, axis *ax)
{
    ax->random = 1;
    const char *eq = strchr(entry, '=');
    const char *open = eq ? strchr(eq, '(') : NULL;
    size_t L = strlen(entry);
    while (L && entry[L - 1] == ' ') L--;
    if (!eq || eq == entry || !open || entry[L - 1] != ')') {
        DM_ERR(DM_ECONFIG, "%s: '%s' is not 'group.key=DIST(...)'", where, entry);
        DM_HINT("DIST: choice(a,b,...), uniform(lo,hi), loguniform(lo,hi), int(lo,hi)");
        return DM_ECONFIG;
    }
    char key[256], dist[32];
    snprintf(key, sizeof key, "%.*s", (int)(eq - entry), entry);
    char *kk = key;
    while (*kk == ' ') kk++;
    for (size_t l = strlen(kk); l && kk[l - 1] == ' '; l--) kk[l - 1] = '\0';
    ax->key = dm_str_dup(kk);
    if (!ax->key) return DM_ENOMEM;
    DM_CALL(check_key(ax->key, where));
    const char *d0 = eq + 1;
    while (*d0 == ' ') d0++;
    snprintf(dist, sizeof dist, "%.*s", (int)(open - d0), d0);
    for (size_t l = strlen(dist); l && dist[l - 1] == ' '; l--) dist[l - 1] = '\0';
    char *inner = dm_str_ndup(open + 1, (size_t)(entry + L - 1 - (open + 1)));
    if (!inner) return DM_ENOMEM;
    char **args = NULL;
    size_t na = 0;
    /* arguments separated by ',' (or '|', the form that survives --set) */
    int rc = dm_strv_split(inner, strchr(inner, ',') ? ',' : '|', &args, &na);
    free(inner);
    DM_CALL(rc);
    int kt = dm_cfgtext_type(ax->key);
    if (!strcmp(dist, "choice")) {
        ax->dist = D_CHOICE;
        if (na == 0) rc = DM_ERR(DM_ECONFIG, "%s: choice() needs at least one value", where);
        for (size_t i = 0; i < na && !rc; i++) {
            char *norm = NULL;
            rc = normalise(scratch, ax->key, args[i], where, &norm);
            if (!rc) rc = dm_strv_push(&ax->vals, &ax->nvals, norm);
            free(norm);
        }
    } else if (!strcmp(dist, "uniform") || !strcmp(dist, "loguniform") || !strcmp(dist, "int")) {
        ax->dist = !strcmp(dist, "uniform") ? D_UNIFORM : !strcmp(dist, "int") ? D_INT : D_LOGUNIFORM;
        if (na != 2 || !dm_str_is_number(args[0], &ax->lo) || !dm_str_is_number(args[1], &ax->hi))
            rc = DM_ERR(DM_ECONFIG, "%s: %s() takes two numbers, found '%s'", where, dist, entry);
        else if (ax->dist == D_INT ? ax->lo > ax->hi : ax->lo >= ax->hi)
            rc = DM_ERR(DM_ECONFIG, "%s: %s(%g,%g): the lower bound must be below the upper", where, dist, ax->lo, ax->hi);
        else if (ax->dist == D_LOGUNIFORM && ax->lo <= 0)
            rc = DM_ERR(DM_ECONFIG, "%s: loguniform(%g,%g) needs positive bounds", where, ax->lo, ax->hi);
        else if (ax->dist == D_INT && (ax->lo != floor(ax->lo) || ax->hi != floor(ax->hi)))
            rc = DM_ERR(DM_ECONFIG, "%s: int(%g,%g) needs integer bounds", where, ax->lo, ax->hi);
        else if (kt != DM_KT_FLOAT && !(kt == DM_KT_INT && ax->dist == D_INT)) {
            rc = DM_ERR(DM_ECONFIG, "%s: %s() draws numbers but '%s' is not a float key", where, dist, ax->key);
            DM_HINT(kt == DM_KT_INT ? "use int(lo,hi) for an integer key" : "use choice(...) for this key");
        }
        /* both bounds must be valid values of the key */
        for (int b = 0; b < 2 && !rc; b++) {
            char *norm = NULL;
            rc = normalise(scratch, ax->key, args[b], where, &norm);
            free(norm);
        }
    } else {
        rc = DM_ERR(DM_ECONFIG, "%s: unknown distribution '%s' in '%s'", where, dist, entry);
        DM_HINT("use choice(a,b,...), uniform(lo,hi), loguniform(lo,hi) or int(lo,hi)");
    }
    dm_strv_free(args, na);
    return rc;
}

static int draw(dm_cfg *scratch, const axis *ax, uint64_t seed, size_t sample, const char *where, char **out)
{
    dm_rng r;
    dm_rng_seed(&r, dm_rng_key(seed, (uint64_t)sample, dm_hash_bytes(ax->key, strlen(ax->key))));
    char t[64];
    switch (ax->dist) {
    case D_CHOICE: *out = dm_str_dup(ax->vals[dm_rng_below(&r, ax->nvals)]); return *out ? DM_OK : DM_ENOMEM;
    case D_INT: snprintf(t, sizeof t, "%lld", (long long)ax->lo + (long long)dm_rng_below(&r, (uint64_t)(ax->hi - ax->lo) + 1)); break;
    case D_UNIFORM: snprintf(t, sizeof t, "%.6g", ax->lo + dm_rng_uniform(&r) * (ax->hi - ax->lo)); break;
    default: snprintf(t, sizeof t, "%.6g", exp(log(ax->lo) + dm_rng_uniform(&r) * (log(ax->hi) - log(ax->lo)))); break;
    }
    return normalise(scratch, ax->key, t, where, out);
}

/* Where jobs/sweep.sbatch lives: beside the binary's build tree, an installed share/dynmm/jobs, or
 * ./jobs. Returns an absolute path, or "" when not found. */
static void find_jobs_dir(char *out, size_t cap)
{
    char exe[PATH_MAX];
    out[0] = '\0';
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char cand[3][PATH_MAX + 64];
    int nc = 0;
    if (n > 0) {
        exe[n] = '\0';
        char *s = strrchr(exe, '/');
        if (s) *s = '\0';
        snprintf(cand[nc++], sizeof cand[0], "%s/../jobs", exe);
        snprintf(cand[nc++], sizeof cand[0], "%s/../share/dynmm/jobs", exe);
    }
    snprintf(cand[nc++], sizeof cand[0], "jobs");
    for (int i = 0; i < nc; i++) {
        char f[sizeof cand + 32], real[PATH_MAX];
        snprintf(f, sizeof f, "%s/sweep.sbatch", cand[i]);
        if (access(f, R_OK) == 0 && realpath(cand[i], real)) {
            snprintf(out, cap, "%s", real);
            return;
        }
    }
}

static int read_marker(const char *dir, char *hash, size_t cap)
{
    char p[4600];
    snprintf(p, sizeof p, "%s/DONE", dir);
    FILE *f = fopen(p, "r");
    hash[0] = '\0';
    if (!f) return 0;
    if (!fgets(hash, (int)cap, f)) hash[0] = '\0';
    fclose(f);
    hash[strcspn(hash, "\r\n")] = '\0';
    return 1;
}

static int sweep(par_ctx *ctx, const cli_args *a)
{
    int rc = DM_OK;
    if (!a->config_path) {
        DM_ERR(DM_ECONFIG, "sweep: no sweep file given");
        DM_HINT("usage: dynmm sweep configs/sweeps/NAME.cfg; see configs/sweeps/small.cfg");
        return DM_ECONFIG;
    }
    if (a->npositional) return DM_ERR(DM_ECONFIG, "sweep: unexpected argument '%s'", a->positional[0]);
    /* 1. the sweep file alone, for its sweep.* keys */
    dm_cfg probe, cfg, scratch;
    memset(&cfg, 0, sizeof cfg);
    memset(&scratch, 0, sizeof scratch);
    DM_CALL(cli_load_config(ctx, a, &probe));
    char base[4096] = "";
    const char *b = dm_cfg_str(&probe, "sweep.base");
    if (b[0]) {
        const char *slash = strrchr(a->config_path, '/');
        if (b[0] == '/' || !slash) snprintf(base, sizeof base, "%s", b);
        else snprintf(base, sizeof base, "%.*s/%s", (int)(slash - a->config_path), a->config_path, b);
    }
    dm_cfg_free(&probe);
    /* 2. defaults, base, sweep file, --set */
    rc = dm_cfg_init(&cfg);
    if (!rc && base[0]) rc = dm_cfg_load_file(&cfg, base);
    if (!rc) rc = dm_cfg_load_file(&cfg, a->config_path);
    for (int i = 0; !rc && i < a->nsets; i++) rc = dm_cfg_set(&cfg, a->sets[i]);
    if (!rc) rc = dm_cfg_copy(&scratch, &cfg);
    if (rc) {
        dm_cfg_free(&cfg);
        dm_cfg_free(&scratch);
        return rc;
    }
    char name[256], dir[4096];
    if (dm_cfg_str(&cfg, "sweep.name")[0]) snprintf(name, sizeof name, "%s", dm_cfg_str(&cfg, "sweep.name"));
    else {
        const char *s = strrchr(a->config_path, '/');
        snprintf(name, sizeof name, "%s", s ? s + 1 : a->config_path);
        size_t l = strlen(name);
        if (l > 4 && !strcmp(name + l - 4, ".cfg")) name[l - 4] = '\0';
    }
    for (char *p = name; *p; p++)
        if (*p == '/' || *p == ' ' || *p == '\t') *p = '_';
    if (dm_cfg_str(&cfg, "sweep.dir")[0]) snprintf(dir, sizeof dir, "%s", dm_cfg_str(&cfg, "sweep.dir"));
    else snprintf(dir, sizeof dir, "runs/sweeps/%s", name);
    for (size_t l = strlen(dir); l > 1 && dir[l - 1] == '/'; l--) dir[l - 1] = '\0';

    /* 3. axes */
    axis *ax = NULL;
    size_t nax = 0, ng = dm_cfg_len(&cfg, "sweep.grid"), nr = dm_cfg_len(&cfg, "sweep.random");
    char wg[256], wr[256];
    dm_cfg_where(&cfg, "sweep.grid", wg, sizeof wg);
    dm_cfg_where(&cfg, "sweep.random", wr, sizeof wr);
    ax = dm_calloc_at(ng + nr + 1, sizeof *ax, __FILE__, __LINE__);
    if (!ax) rc = DM_ENOMEM;
    for (size_t i = 0; !rc && i < ng + nr; i++) {
        char where[400];
        const char *e = dm_cfg_str_at(&cfg, i < ng ? "sweep.grid" : "sweep.random", i < ng ? i : i - ng);
        snprintf(where, sizeof where, "%s: %s entry %zu", i < ng ? wg : wr, i < ng ? "sweep.grid" : "sweep.random", (i < ng ? i : i - ng) + 1);
        rc = i < ng ? parse_grid(&scratch, e, where, &ax[i]) : parse_random(&scratch, e, where, &ax[i]);
        nax = i + 1;
        for (size_t j = 0; !rc && j < i; j++)
            if (!strcmp(ax[j].key, ax[i].key)) rc = DM_ERR(DM_ECONFIG, "%s: '%s' is swept twice", where, ax[i].key);
    }
    size_t samples = (size_t)dm_cfg_int(&cfg, "sweep.samples");
    if (!rc && nr && !samples) {
        rc = DM_ERR(DM_ECONFIG, "%s: sweep.random is set but sweep.samples = 0", wr);
        DM_HINT("set sweep.samples to the number of random draws");
    }
    if (!rc && samples && !nr) rc = DM_ERR(DM_ECONFIG, "sweep.samples = %zu but sweep.random lists no key", samples);
    uint64_t rseed = (uint64_t)dm_cfg_int(&cfg, "sweep.seed");
    if (!rseed) rseed = dm_rng_key((uint64_t)dm_cfg_int(&cfg, "run.seed"), 0x53574545ULL, 0);

    /* 4. configurations: grid points (first key slowest) x random samples */
    size_t npoints = 1;
    for (size_t i = 0; i < ng; i++) npoints *= ax[i].nvals;
    size_t ndraw = nr ? samples : 1, nconf = 0, ndup = 0;
    conf *cf = NULL;
    if (!rc && npoints * ndraw > 1000000) rc = DM_ERR(DM_ECONFIG, "sweep: %zu configurations is too many", npoints * ndraw);
    if (!rc && !(cf = dm_calloc_at(npoints * ndraw + 1, sizeof *cf, __FILE__, __LINE__))) rc = DM_ENOMEM;
    for (size_t p = 0; !rc && p < npoints; p++) {
        for (size_t s = 0; !rc && s < ndraw; s++) {
            conf *c = &cf[nconf];
            if (!(c->vals = dm_calloc_at(nax + 1, sizeof *c->vals, __FILE__, __LINE__))) {
                rc = DM_ENOMEM;
                break;
            }
            size_t rem = p;
            for (size_t i = ng; i-- > 0;) {
                c->vals[i] = dm_str_dup(ax[i].vals[rem % ax[i].nvals]);
                rem /= ax[i].nvals;
                if (!c->vals[i]) rc = DM_ENOMEM;
            }
            for (size_t i = ng; !rc && i < nax; i++) {
                char where[300];
                snprintf(where, sizeof where, "%s: sweep.random entry %zu", wr, i - ng + 1);
                rc = draw(&scratch, &ax[i], rseed, s, where, &c->vals[i]);
            }
            dm_buf id = {0};
            for (size_t i = 0; !rc && i < nax; i++) rc = dm_buf_printf(&id, "%s=%s\n", ax[i].key, c->vals[i]);
            if (!rc) dm_sha256_hex(id.data ? id.data : "", id.len, c->ident);
            dm_buf_free(&id);
            int dup = 0;
            for (size_t j = 0; !rc && j < nconf; j++)
                if (!strcmp(cf[j].ident, c->ident)) dup = 1;
            if (dup) {
                dm_strv_free(c->vals, nax);
                c->vals = NULL;
                ndup++;
            } else if (!rc)
                nconf++;
        }
    }
    /* 5. runs */
    size_t nseeds = dm_cfg_len(&cfg, "sweep.seeds");
    int64_t seed0 = dm_cfg_int(&cfg, "run.seed");
    size_t nruns = nconf * (nseeds ? nseeds : 1);
    for (size_t i = 0; !rc && i < nseeds; i++)
        for (size_t j = 0; j < i; j++)
            if (dm_cfg_int_at(&cfg, "sweep.seeds", i) == dm_cfg_int_at(&cfg, "sweep.seeds", j))
                rc = DM_ERR(DM_ECONFIG, "sweep.seeds lists %lld twice", dm_cfg_int_at(&cfg, "sweep.seeds", i));
    char jobs[PATH_MAX], cwd[PATH_MAX];
    find_jobs_dir(jobs, sizeof jobs);
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    dm_buf tsv = {0}, js = {0}, sb = {0}, bc = {0};
    size_t ndone = 0;
    char basecfg[4200], logs[4200], path[4200];
    snprintf(basecfg, sizeof basecfg, "%s/base.cfg", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    if (!rc) {
        rc = dm_buf_printf(&tsv,
                           "# dynmm-sweep-manifest v1\n# name: %s\n# sweep: %s\n# base: %s\n# ranks: %lld\n# runs: %zu\n"
                           "# workdir: %s\n"
                           "# one line per run; array task i runs the line with index i: dynmm run <base> --set ...\n"
                           "index\tid\tconfig\tseed\tdir\thash\tset...\n",
                           name, a->config_path, basecfg, dm_cfg_int(&cfg, "sweep.ranks"), nruns, cwd);
        if (!rc) rc = dm_buf_adds(&js, "{\n  \"format\": \"dynmm-sweep-manifest\",\n  \"version\": 1,\n  \"name\": ");
        if (!rc) rc = dm_str_json(&js, name);
        if (!rc) rc = dm_buf_adds(&js, ",\n  \"sweep\": ");
        if (!rc) rc = dm_str_json(&js, a->config_path);
        if (!rc) rc = dm_buf_adds(&js, ",\n  \"base\": ");
        if (!rc) rc = dm_str_json(&js, basecfg);
        if (!rc) rc = dm_buf_printf(&js, ",\n  \"ranks\": %lld,\n  \"workdir\": ", dm_cfg_int(&cfg, "sweep.ranks"));
        if (!rc) rc = dm_str_json(&js, cwd);
        if (!rc) rc = dm_buf_adds(&js, ",\n  \"keys\": [");
        for (size_t i = 0; !rc && i < nax; i++) {
            if (i) rc = dm_buf_adds(&js, ", ");
            if (!rc) rc = dm_str_json(&js, ax[i].key);
        }
        if (!rc) rc = dm_buf_adds(&js, "],\n  \"seeds\": [");
        for (size_t i = 0; !rc && i < (nseeds ? nseeds : 1); i++)
            rc = dm_buf_printf(&js, "%s%lld", i ? ", " : "", nseeds ? dm_cfg_int_at(&cfg, "sweep.seeds", i) : (long long)seed0);
        if (!rc) rc = dm_buf_adds(&js, "],\n  \"runs\": [\n");
    }
    size_t idx = 0;
    for (size_t c = 0; !rc && c < nconf; c++) {
        char slug[256] = "", tail[24];
        for (size_t i = 0; i < nax; i++) {
            char part[128];
            dm_str_slug(cf[c].vals[i], part, sizeof part);
            size_t l = strlen(slug);
            snprintf(slug + l, sizeof slug - l, "%s%s", i ? "_" : "", part);
        }
        slug[40] = '\0';
        for (size_t si = 0; !rc && si < (nseeds ? nseeds : 1); si++) {
            long long seed = nseeds ? dm_cfg_int_at(&cfg, "sweep.seeds", si) : (long long)seed0;
            char id[128], rdir[4400], hash[65], sets[4][4500];
            snprintf(tail, sizeof tail, "s%lld", seed);
            if (nax) snprintf(id, sizeof id, "%.40s-%.6s-%s", slug[0] ? slug : "c", cf[c].ident, tail);
            else snprintf(id, sizeof id, "%s", tail);
            snprintf(rdir, sizeof rdir, "%s/%s", dir, id);
            dm_cfg run;
            rc = dm_cfg_copy(&run, &cfg);
            if (rc) break;
            for (size_t i = 0; !rc && i < nax; i++) {
                dm_buf s = {0};
                rc = dm_buf_printf(&s, "%s=%s", ax[i].key, cf[c].vals[i]);
                if (!rc) rc = dm_cfg_set(&run, s.data);
                dm_buf_free(&s);
            }
            snprintf(sets[0], sizeof sets[0], "run.seed=%lld", seed);
            snprintf(sets[1], sizeof sets[1], "run.dir=%s", rdir);
            if (!rc) rc = dm_cfg_set(&run, sets[0]);
            if (!rc) rc = dm_cfg_set(&run, sets[1]);
            if (!rc) rc = dm_cfg_hash(&run, NULL, hash);
            dm_cfg_free(&run);
            if (rc) break;
            char have[80];
            if (read_marker(rdir, have, sizeof have) && !strcmp(have, hash)) ndone++;
            rc = dm_buf_printf(&tsv, "%zu\t%s\t%.12s\t%lld\t%s\t%s", idx, id, cf[c].ident, seed, rdir, hash);
            for (size_t i = 0; !rc && i < nax; i++) rc = dm_buf_printf(&tsv, "\t%s=%s", ax[i].key, cf[c].vals[i]);
            if (!rc) rc = dm_buf_printf(&tsv, "\t%s\t%s\n", sets[0], sets[1]);
            if (!rc) rc = dm_buf_printf(&js, "    {\"index\": %zu, \"id\": ", idx);
            if (!rc) rc = dm_str_json(&js, id);
            if (!rc) rc = dm_buf_printf(&js, ", \"config\": \"%.12s\", \"seed\": %lld, \"dir\": ", cf[c].ident, seed);
            if (!rc) rc = dm_str_json(&js, rdir);
            if (!rc) rc = dm_buf_printf(&js, ", \"hash\": \"%s\",\n     \"set\": [", hash);
            for (size_t i = 0; !rc && i < nax; i++) {
                dm_buf s = {0};
                rc = dm_buf_printf(&s, "%s=%s", ax[i].key, cf[c].vals[i]);
                if (!rc) rc = dm_str_json(&js, s.data);
                if (!rc) rc = dm_buf_adds(&js, ", ");
                dm_buf_free(&s);
            }
            if (!rc) rc = dm_str_json(&js, sets[0]);
            if (!rc) rc = dm_buf_adds(&js, ", ");
            if (!rc) rc = dm_str_json(&js, sets[1]);
            if (!rc) rc = dm_buf_adds(&js, "],\n     \"values\": {");
            for (size_t i = 0; !rc && i < nax; i++) {
                if (i) rc = dm_buf_adds(&js, ", ");
                if (!rc) rc = dm_str_json(&js, ax[i].key);
                if (!rc) rc = dm_buf_adds(&js, ": ");
                if (!rc) rc = dm_str_json(&js, cf[c].vals[i]);
            }
            if (!rc) rc = dm_buf_printf(&js, "}}%s\n", idx + 1 < nruns ? "," : "");
            idx++;
        }
    }
    if (!rc) rc = dm_buf_adds(&js, "  ]\n}\n");
    /* the Slurm array */
    if (!rc) {
        rc = dm_buf_printf(&sb,
                           "#!/bin/bash\n"
                           "# sweep.sbatch: Slurm job array of the sweep '%s' (%zu runs), written by `dynmm sweep %s`.\n"
                           "# Submit with `sbatch %s/sweep.sbatch` from any directory. Array task i runs line i of\n"
                           "# manifest.tsv through jobs/sweep.sbatch: finished runs (DONE) are skipped, interrupted ones\n"
                           "# resume from their checkpoints, and 60 s before the time limit the task checkpoints and\n"
                           "# requeues itself. Rerun `dynmm sweep` rather than editing this file.\n"
                           "#SBATCH --job-name=dynmm-%s\n"
                           "#SBATCH --array=0-%zu",
                           name, nruns, a->config_path, dir, name, nruns ? nruns - 1 : 0);
        if (!rc && dm_cfg_int(&cfg, "sweep.parallel") > 0) rc = dm_buf_printf(&sb, "%%%lld", dm_cfg_int(&cfg, "sweep.parallel"));
        if (!rc)
            rc = dm_buf_printf(&sb,
                               "\n#SBATCH --ntasks=%lld\n#SBATCH --cpus-per-task=%lld\n#SBATCH --time=%s\n"
                               "#SBATCH --signal=B:USR1@60\n#SBATCH --requeue\n#SBATCH --open-mode=append\n"
                               "#SBATCH --chdir=%s\n#SBATCH --output=%s/%%A_%%a.out\n",
                               dm_cfg_int(&cfg, "sweep.ranks"), dm_cfg_int(&cfg, "sweep.cpus_per_rank"),
                               dm_cfg_str(&cfg, "sweep.time"), cwd, logs);
        if (!rc && dm_cfg_str(&cfg, "sweep.mem")[0]) rc = dm_buf_printf(&sb, "#SBATCH --mem=%s\n", dm_cfg_str(&cfg, "sweep.mem"));
        if (!rc && dm_cfg_str(&cfg, "sweep.partition")[0])
            rc = dm_buf_printf(&sb, "#SBATCH --partition=%s\n", dm_cfg_str(&cfg, "sweep.partition"));
        if (!rc && dm_cfg_str(&cfg, "sweep.account")[0])
            rc = dm_buf_printf(&sb, "#SBATCH --account=%s\n", dm_cfg_str(&cfg, "sweep.account"));
        for (size_t i = 0; !rc && i < dm_cfg_len(&cfg, "sweep.sbatch"); i++)
            rc = dm_buf_printf(&sb, "#SBATCH %s\n", dm_cfg_str_at(&cfg, "sweep.sbatch", i));
        char exe[PATH_MAX] = "";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        if (!rc)
            rc = dm_buf_printf(&sb,
                               "export DM_BIN=${DM_BIN:-%s}\n"
                               "exec bash %s/sweep.sbatch %s/manifest.tsv \"$@\"\n",
                               exe, jobs[0] ? jobs : "jobs", dir);
    }
    if (!rc) {
        rc = dm_buf_printf(&bc, "# base.cfg: resolved base config of the sweep '%s', written by `dynmm sweep %s`.\n"
                                "# Every run is `dynmm run base.cfg --set ...` with the overrides in manifest.tsv.\n",
                           name, a->config_path);
        if (!rc) rc = dm_cfg_serialize(&cfg, NULL, &bc);
    }
    if (!rc) rc = dm_fs_mkdirs(logs);
    if (!rc) rc = dm_fs_write_atomic(basecfg, bc.data, bc.len, 0644);
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    if (!rc) rc = dm_fs_write_atomic(path, tsv.data, tsv.len, 0644);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (!rc) rc = dm_fs_write_atomic(path, js.data, js.len, 0644);
    snprintf(path, sizeof path, "%s/sweep.sbatch", dir);
    if (!rc) rc = dm_fs_write_atomic(path, sb.data, sb.len, 0755);
    if (!rc) {
        dm_log("sweep '%s': %zu configuration%s x %zu seed%s = %zu runs in %s/", name, nconf, nconf == 1 ? "" : "s",
               nseeds ? nseeds : 1, (nseeds ? nseeds : 1) == 1 ? "" : "s", nruns, dir);
        for (size_t i = 0; i < nax; i++) {
            dm_buf s = {0};
            for (size_t j = 0; j < ax[i].nvals && !ax[i].random; j++) dm_buf_printf(&s, "%s%s", j ? ", " : "", ax[i].vals[j]);
            if (ax[i].random) dm_buf_printf(&s, "%zu random draws", samples);
            dm_log("  %-24s %s", ax[i].key, s.data ? s.data : "");
            dm_buf_free(&s);
        }
        if (ndup) dm_log("  (%zu duplicate random draw%s dropped)", ndup, ndup == 1 ? "" : "s");
        if (ndone) dm_log("  %zu of %zu runs already finished (DONE markers); the jobs skip them", ndone, nruns);
        dm_log("wrote %s/{base.cfg,manifest.tsv,manifest.json,sweep.sbatch}", dir);
        if (!jobs[0]) dm_warn("jobs/sweep.sbatch not found beside the binary; edit %s/sweep.sbatch", dir);
        dm_log("next:\n  sbatch %s/sweep.sbatch                      # Slurm: one array task per run\n"
               "  jobs/sweep.sbatch %s/manifest.tsv          # or here, run after run (mpirun -n %lld)\n"
               "  build/dynmm report %s                        # tables and figures",
               dir, dir, dm_cfg_int(&cfg, "sweep.ranks"), dir);
    }
    for (size_t c = 0; c < nconf; c++) dm_strv_free(cf[c].vals, nax);
    free(cf);
    axes_free(ax, nax);
    dm_buf_free(&tsv);
    dm_buf_free(&js);
    dm_buf_free(&sb);
    dm_buf_free(&bc);
    dm_cfg_free(&cfg);
    dm_cfg_free(&scratch);
    return rc;
}

int cmd_sweep(par_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, USAGE)) {
        cli_args_free(&a);
        return DM_OK;
    }
    int rc = ctx->rank == 0 ? sweep(ctx, &a) : DM_OK;
    cli_args_free(&a);
    return par_agree(ctx, rc);
}
