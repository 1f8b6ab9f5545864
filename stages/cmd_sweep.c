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
 *
 * The command is a table of contents (sweep): sweep_load, sweep_paths, sweep_axes, sweep_expand
 * (sweep_conf per configuration), sweep_seeds, sweep_manifest (sweep_run per run), sweep_sbatch,
 * sweep_base_cfg; only then sweep_write_files writes them all.
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

/* ---- the command: a workspace and the steps over it ---- */

typedef struct {
    const cli_args *a;
    dm_cfg cfg;                 /* defaults + sweep.base + the sweep file + --set */
    dm_cfg scratch;             /* a copy that swept values are validated against */
    char name[256], dir[4096];  /* sweep.name (or the sweep file's), sweep.dir (or runs/sweeps/<name>) */
    char basecfg[4200], logs[4200]; /* <dir>/base.cfg, <dir>/logs */
    char jobs[PATH_MAX];        /* where jobs/sweep.sbatch is ("": not found) */
    char cwd[PATH_MAX];         /* the workdir */
    axis *ax;                   /* (nax) the grid axes (ng of them), then the random keys (nr) */
    size_t nax, ng, nr;
    char wg[256], wr[256];      /* where sweep.grid and sweep.random are set, for messages */
    size_t samples;             /* sweep.samples */
    uint64_t rseed;             /* the random search's seed */
    conf *cf;                   /* (nconf) the distinct configurations, room for ncap */
    size_t nconf, ncap, ndup;
    size_t nseeds, nper, nruns; /* sweep.seeds; seeds per configuration (1 without); runs */
    int64_t seed0;              /* run.seed: the seed when sweep.seeds is empty */
    size_t ndone;               /* runs whose DONE marker holds their hash */
    dm_buf tsv, js, sb, bc;     /* manifest.tsv, manifest.json, sweep.sbatch, base.cfg */
} sweep_ws;

/* the seed of run si of a configuration */
static long long sweep_seed(const sweep_ws *w, size_t si)
{
    return w->nseeds ? dm_cfg_int_at(&w->cfg, "sweep.seeds", si) : (long long)w->seed0;
}

/* The configuration: defaults, sweep.base (relative to the sweep file), the sweep file, --set; and
 * a copy to validate swept values against. */
static int sweep_load(par_ctx *ctx, sweep_ws *w)
{
    const cli_args *a = w->a;
    if (!a->config_path) {
        DM_ERR(DM_ECONFIG, "sweep: no sweep file given");
        DM_HINT("usage: dynmm sweep configs/sweeps/NAME.cfg; see configs/sweeps/small.cfg");
        return DM_ECONFIG;
    }
    if (a->npositional) return DM_ERR(DM_ECONFIG, "sweep: unexpected argument '%s'", a->positional[0]);
    /* the sweep file alone, for sweep.base */
    dm_cfg probe;
    DM_CALL(cli_load_config(ctx, a, &probe));
    char base[4096] = "";
    const char *b = dm_cfg_str(&probe, "sweep.base");
    if (b[0]) {
        const char *slash = strrchr(a->config_path, '/');
        if (b[0] == '/' || !slash) snprintf(base, sizeof base, "%s", b);
        else snprintf(base, sizeof base, "%.*s/%s", (int)(slash - a->config_path), a->config_path, b);
    }
    dm_cfg_free(&probe);
    int rc = dm_cfg_init(&w->cfg);
    if (!rc && base[0]) rc = dm_cfg_load_file(&w->cfg, base);
    if (!rc) rc = dm_cfg_load_file(&w->cfg, a->config_path);
    for (int i = 0; !rc && i < a->nsets; i++) rc = dm_cfg_set(&w->cfg, a->sets[i]);
    if (!rc) rc = dm_cfg_copy(&w->scratch, &w->cfg);
    return rc;
}

/* The sweep's name (sweep.name, or the sweep file's name without .cfg) and its paths. */
static void sweep_paths(sweep_ws *w)
{
    const char *path = w->a->config_path, *nm = dm_cfg_str(&w->cfg, "sweep.name"), *dir = dm_cfg_str(&w->cfg, "sweep.dir");
    if (nm[0]) snprintf(w->name, sizeof w->name, "%s", nm);
    else {
        const char *s = strrchr(path, '/');
        snprintf(w->name, sizeof w->name, "%s", s ? s + 1 : path);
        size_t l = strlen(w->name);
        if (l > 4 && !strcmp(w->name + l - 4, ".cfg")) w->name[l - 4] = '\0';
    }
    for (char *p = w->name; *p; p++)
        if (*p == '/' || *p == ' ' || *p == '\t') *p = '_';
    if (dir[0]) snprintf(w->dir, sizeof w->dir, "%s", dir);
    else snprintf(w->dir, sizeof w->dir, "runs/sweeps/%s", w->name);
    for (size_t l = strlen(w->dir); l > 1 && w->dir[l - 1] == '/'; l--) w->dir[l - 1] = '\0';
    snprintf(w->basecfg, sizeof w->basecfg, "%s/base.cfg", w->dir);
    snprintf(w->logs, sizeof w->logs, "%s/logs", w->dir);
    find_jobs_dir(w->jobs, sizeof w->jobs);
    if (!getcwd(w->cwd, sizeof w->cwd)) snprintf(w->cwd, sizeof w->cwd, ".");
}

/* The swept keys: the axes of sweep.grid, then the keys of sweep.random, each key once; the number
 * of random draws and their seed. */
static int sweep_axes(sweep_ws *w)
{
    const dm_cfg *cfg = &w->cfg;
    w->ng = dm_cfg_len(cfg, "sweep.grid");
    w->nr = dm_cfg_len(cfg, "sweep.random");
    dm_cfg_where(cfg, "sweep.grid", w->wg, sizeof w->wg);
    dm_cfg_where(cfg, "sweep.random", w->wr, sizeof w->wr);
    w->ax = dm_calloc_at(w->ng + w->nr + 1, sizeof *w->ax, __FILE__, __LINE__);
    int rc = w->ax ? DM_OK : DM_ENOMEM;
    for (size_t i = 0; !rc && i < w->ng + w->nr; i++) {
        int grid = i < w->ng;
        const char *list = grid ? "sweep.grid" : "sweep.random";
        size_t k = grid ? i : i - w->ng;
        char where[400];
        snprintf(where, sizeof where, "%s: %s entry %zu", grid ? w->wg : w->wr, list, k + 1);
        const char *e = dm_cfg_str_at(cfg, list, k);
        rc = grid ? parse_grid(&w->scratch, e, where, &w->ax[i]) : parse_random(&w->scratch, e, where, &w->ax[i]);
        w->nax = i + 1;
        for (size_t j = 0; !rc && j < i; j++)
            if (!strcmp(w->ax[j].key, w->ax[i].key)) rc = DM_ERR(DM_ECONFIG, "%s: '%s' is swept twice", where, w->ax[i].key);
    }
    w->samples = (size_t)dm_cfg_int(cfg, "sweep.samples");
    if (!rc && w->nr && !w->samples) {
        rc = DM_ERR(DM_ECONFIG, "%s: sweep.random is set but sweep.samples = 0", w->wr);
        DM_HINT("set sweep.samples to the number of random draws");
    }
    if (!rc && w->samples && !w->nr) rc = DM_ERR(DM_ECONFIG, "sweep.samples = %zu but sweep.random lists no key", w->samples);
    w->rseed = (uint64_t)dm_cfg_int(cfg, "sweep.seed");
    if (!w->rseed) w->rseed = dm_rng_key((uint64_t)dm_cfg_int(cfg, "run.seed"), 0x53574545ULL, 0);
    return rc;
}

/* Configuration (grid point p, random draw s) into cf[nconf], identified by the sha256 of its
 * settings; dropped when it repeats an earlier one. */
static int sweep_conf(sweep_ws *w, size_t p, size_t s)
{
    conf *c = &w->cf[w->nconf];
    size_t ng = w->ng, nax = w->nax;
    if (!(c->vals = dm_calloc_at(nax + 1, sizeof *c->vals, __FILE__, __LINE__))) return DM_ENOMEM;
    int rc = DM_OK;
    size_t rem = p;
    for (size_t i = ng; i-- > 0;) {
        c->vals[i] = dm_str_dup(w->ax[i].vals[rem % w->ax[i].nvals]);
        rem /= w->ax[i].nvals;
        if (!c->vals[i]) rc = DM_ENOMEM;
    }
    for (size_t i = ng; !rc && i < nax; i++) {
        char where[300];
        snprintf(where, sizeof where, "%s: sweep.random entry %zu", w->wr, i - ng + 1);
        rc = draw(&w->scratch, &w->ax[i], w->rseed, s, where, &c->vals[i]);
    }
    dm_buf id = {0};
    for (size_t i = 0; !rc && i < nax; i++) rc = dm_buf_printf(&id, "%s=%s\n", w->ax[i].key, c->vals[i]);
    if (!rc) dm_sha256_hex(id.data ? id.data : "", id.len, c->ident);
    dm_buf_free(&id);
    if (rc) return rc;
    for (size_t j = 0; j < w->nconf; j++)
        if (!strcmp(w->cf[j].ident, c->ident)) {
            dm_strv_free(c->vals, nax);
            c->vals = NULL;
            w->ndup++;
            return DM_OK;
        }
    w->nconf++;
    return DM_OK;
}

/* The configurations: every grid point (the first key slowest) times the random draws. */
static int sweep_expand(sweep_ws *w)
{
    size_t npoints = 1, ndraw = w->nr ? w->samples : 1;
    for (size_t i = 0; i < w->ng; i++) npoints *= w->ax[i].nvals;
    if (npoints * ndraw > 1000000) return DM_ERR(DM_ECONFIG, "sweep: %zu configurations is too many", npoints * ndraw);
    w->ncap = npoints * ndraw + 1;
    if (!(w->cf = dm_calloc_at(w->ncap, sizeof *w->cf, __FILE__, __LINE__))) return DM_ENOMEM;
    int rc = DM_OK;
    for (size_t p = 0; !rc && p < npoints; p++)
        for (size_t s = 0; !rc && s < ndraw; s++) rc = sweep_conf(w, p, s);
    return rc;
}

/* sweep.seeds, each once, and the number of runs. */
static int sweep_seeds(sweep_ws *w)
{
    w->nseeds = dm_cfg_len(&w->cfg, "sweep.seeds");
    w->seed0 = dm_cfg_int(&w->cfg, "run.seed");
    w->nper = w->nseeds ? w->nseeds : 1;
    w->nruns = w->nconf * w->nper;
    for (size_t i = 0; i < w->nseeds; i++)
        for (size_t j = 0; j < i; j++)
            if (sweep_seed(w, i) == sweep_seed(w, j)) return DM_ERR(DM_ECONFIG, "sweep.seeds lists %lld twice", sweep_seed(w, i));
    return DM_OK;
}

/* The manifests' heads: manifest.tsv's comment lines and column names, manifest.json's fields
 * before its runs. */
static int sweep_manifest_head(sweep_ws *w)
{
    const char *sweepfile = w->a->config_path;
    long long ranks = dm_cfg_int(&w->cfg, "sweep.ranks");
    dm_buf *js = &w->js;
    DM_CALL(dm_buf_printf(&w->tsv,
                          "# dynmm-sweep-manifest v1\n# name: %s\n# sweep: %s\n# base: %s\n# ranks: %lld\n# runs: %zu\n"
                          "# workdir: %s\n"
                          "# one line per run; array task i runs the line with index i: dynmm run <base> --set ...\n"
                          "index\tid\tconfig\tseed\tdir\thash\tset...\n",
                          w->name, sweepfile, w->basecfg, ranks, w->nruns, w->cwd));
    DM_CALL(dm_buf_adds(js, "{\n  \"format\": \"dynmm-sweep-manifest\",\n  \"version\": 1,\n  \"name\": "));
    DM_CALL(dm_str_json(js, w->name));
    DM_CALL(dm_buf_adds(js, ",\n  \"sweep\": "));
    DM_CALL(dm_str_json(js, sweepfile));
    DM_CALL(dm_buf_adds(js, ",\n  \"base\": "));
    DM_CALL(dm_str_json(js, w->basecfg));
    DM_CALL(dm_buf_printf(js, ",\n  \"ranks\": %lld,\n  \"workdir\": ", ranks));
    DM_CALL(dm_str_json(js, w->cwd));
    DM_CALL(dm_buf_adds(js, ",\n  \"keys\": ["));
    for (size_t i = 0; i < w->nax; i++) {
        if (i) DM_CALL(dm_buf_adds(js, ", "));
        DM_CALL(dm_str_json(js, w->ax[i].key));
    }
    DM_CALL(dm_buf_adds(js, "],\n  \"seeds\": ["));
    for (size_t i = 0; i < w->nper; i++) DM_CALL(dm_buf_printf(js, "%s%lld", i ? ", " : "", sweep_seed(w, i)));
    return dm_buf_adds(js, "],\n  \"runs\": [\n");
}

/* the varied values of configuration c as one part of its runs' ids: slugs joined by '_', at most
 * 40 bytes */
static void sweep_slug(const sweep_ws *w, const conf *c, char slug[256])
{
    slug[0] = '\0';
    for (size_t i = 0; i < w->nax; i++) {
        char part[128];
        dm_str_slug(c->vals[i], part, sizeof part);
        size_t l = strlen(slug);
        snprintf(slug + l, 256 - l, "%s%s", i ? "_" : "", part);
    }
    slug[40] = '\0';
}

/* A run's --set assignments on top of base.cfg: the varied keys, run.seed, run.dir. */
static int sweep_sets(const sweep_ws *w, const conf *c, long long seed, const char *rdir, char ***set, size_t *n)
{
    dm_buf s = {0};
    int rc = DM_OK;
    for (size_t i = 0; !rc && i < w->nax + 2; i++) {
        dm_buf_reset(&s);
        if (i < w->nax) rc = dm_buf_printf(&s, "%s=%s", w->ax[i].key, c->vals[i]);
        else if (i == w->nax) rc = dm_buf_printf(&s, "run.seed=%lld", seed);
        else rc = dm_buf_printf(&s, "run.dir=%s", rdir);
        if (!rc) rc = dm_strv_push(set, n, s.data);
    }
    dm_buf_free(&s);
    return rc;
}

/* The run's line of manifest.tsv and its entry of manifest.json. */
static int sweep_manifest_row(sweep_ws *w, const conf *c, size_t idx, const char *id, long long seed, const char *rdir,
                              const char *hash, char *const *set, size_t nset)
{
    dm_buf *js = &w->js;
    DM_CALL(dm_buf_printf(&w->tsv, "%zu\t%s\t%.12s\t%lld\t%s\t%s", idx, id, c->ident, seed, rdir, hash));
    for (size_t i = 0; i < nset; i++) DM_CALL(dm_buf_printf(&w->tsv, "\t%s", set[i]));
    DM_CALL(dm_buf_adds(&w->tsv, "\n"));
    DM_CALL(dm_buf_printf(js, "    {\"index\": %zu, \"id\": ", idx));
    DM_CALL(dm_str_json(js, id));
    DM_CALL(dm_buf_printf(js, ", \"config\": \"%.12s\", \"seed\": %lld, \"dir\": ", c->ident, seed));
    DM_CALL(dm_str_json(js, rdir));
    DM_CALL(dm_buf_printf(js, ", \"hash\": \"%s\",\n     \"set\": [", hash));
    for (size_t i = 0; i < nset; i++) {
        if (i) DM_CALL(dm_buf_adds(js, ", "));
        DM_CALL(dm_str_json(js, set[i]));
    }
    DM_CALL(dm_buf_adds(js, "],\n     \"values\": {"));
    for (size_t i = 0; i < w->nax; i++) {
        if (i) DM_CALL(dm_buf_adds(js, ", "));
        DM_CALL(dm_str_json(js, w->ax[i].key));
        DM_CALL(dm_buf_adds(js, ": "));
        DM_CALL(dm_str_json(js, c->vals[i]));
    }
    return dm_buf_printf(js, "}}%s\n", idx + 1 < w->nruns ? "," : "");
}

/* Run idx, configuration c (whose values make `slug`) with seed si: its id, directory and the hash
 * of its resolved config, its manifest rows; counted as done when its DONE marker holds that hash. */
static int sweep_run(sweep_ws *w, const conf *c, const char *slug, size_t si, size_t idx)
{
    long long seed = sweep_seed(w, si);
    char id[128], rdir[4400], hash[65], have[80];
    if (w->nax) snprintf(id, sizeof id, "%.40s-%.6s-s%lld", slug[0] ? slug : "c", c->ident, seed);
    else snprintf(id, sizeof id, "s%lld", seed);
    snprintf(rdir, sizeof rdir, "%s/%s", w->dir, id);
    char **set = NULL;
    size_t nset = 0;
    dm_cfg run;
    memset(&run, 0, sizeof run);
    int rc = sweep_sets(w, c, seed, rdir, &set, &nset);
    if (!rc) rc = dm_cfg_copy(&run, &w->cfg);
    for (size_t i = 0; !rc && i < nset; i++) rc = dm_cfg_set(&run, set[i]);
    if (!rc) rc = dm_cfg_hash(&run, NULL, hash);
    dm_cfg_free(&run);
    if (!rc && read_marker(rdir, have, sizeof have) && !strcmp(have, hash)) w->ndone++;
    if (!rc) rc = sweep_manifest_row(w, c, idx, id, seed, rdir, hash, set, nset);
    dm_strv_free(set, nset);
    return rc;
}

/* manifest.tsv and manifest.json: the heads, one row per run (configuration by configuration, seed
 * by seed, in the order of the Slurm array), the end. */
static int sweep_manifest(sweep_ws *w)
{
    DM_CALL(sweep_manifest_head(w));
    size_t idx = 0;
    for (size_t c = 0; c < w->nconf; c++) {
        char slug[256];
        sweep_slug(w, &w->cf[c], slug);
        for (size_t si = 0; si < w->nper; si++) DM_CALL(sweep_run(w, &w->cf[c], slug, si, idx++));
    }
    return dm_buf_adds(&w->js, "  ]\n}\n");
}

/* sweep.sbatch: the Slurm array, one task per run, calling jobs/sweep.sbatch on the manifest. */
static int sweep_sbatch(sweep_ws *w)
{
    const dm_cfg *cfg = &w->cfg;
    dm_buf *sb = &w->sb;
    size_t nruns = w->nruns;
    DM_CALL(dm_buf_printf(sb,
                          "#!/bin/bash\n"
                          "# sweep.sbatch: Slurm job array of the sweep '%s' (%zu runs), written by `dynmm sweep %s`.\n"
                          "# Submit with `sbatch %s/sweep.sbatch` from any directory. Array task i runs line i of\n"
                          "# manifest.tsv through jobs/sweep.sbatch: finished runs (DONE) are skipped, interrupted ones\n"
                          "# resume from their checkpoints, and 60 s before the time limit the task checkpoints and\n"
                          "# requeues itself. Rerun `dynmm sweep` rather than editing this file.\n"
                          "#SBATCH --job-name=dynmm-%s\n"
                          "#SBATCH --array=0-%zu",
                          w->name, nruns, w->a->config_path, w->dir, w->name, nruns ? nruns - 1 : 0));
    if (dm_cfg_int(cfg, "sweep.parallel") > 0) DM_CALL(dm_buf_printf(sb, "%%%lld", dm_cfg_int(cfg, "sweep.parallel")));
    DM_CALL(dm_buf_printf(sb,
                          "\n#SBATCH --ntasks=%lld\n#SBATCH --cpus-per-task=%lld\n#SBATCH --time=%s\n"
                          "#SBATCH --signal=B:USR1@60\n#SBATCH --requeue\n#SBATCH --open-mode=append\n"
                          "#SBATCH --chdir=%s\n#SBATCH --output=%s/%%A_%%a.out\n",
                          dm_cfg_int(cfg, "sweep.ranks"), dm_cfg_int(cfg, "sweep.cpus_per_rank"), dm_cfg_str(cfg, "sweep.time"),
                          w->cwd, w->logs));
    static const char *const opt[3][2] = {{"sweep.mem", "mem"}, {"sweep.partition", "partition"}, {"sweep.account", "account"}};
    for (int k = 0; k < 3; k++)
        if (dm_cfg_str(cfg, opt[k][0])[0]) DM_CALL(dm_buf_printf(sb, "#SBATCH --%s=%s\n", opt[k][1], dm_cfg_str(cfg, opt[k][0])));
    for (size_t i = 0; i < dm_cfg_len(cfg, "sweep.sbatch"); i++)
        DM_CALL(dm_buf_printf(sb, "#SBATCH %s\n", dm_cfg_str_at(cfg, "sweep.sbatch", i)));
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    return dm_buf_printf(sb,
                         "export DM_BIN=${DM_BIN:-%s}\n"
                         "exec bash %s/sweep.sbatch %s/manifest.tsv \"$@\"\n",
                         exe, w->jobs[0] ? w->jobs : "jobs", w->dir);
}

/* base.cfg: the resolved base config, every key. */
static int sweep_base_cfg(sweep_ws *w)
{
    DM_CALL(dm_buf_printf(&w->bc,
                          "# base.cfg: resolved base config of the sweep '%s', written by `dynmm sweep %s`.\n"
                          "# Every run is `dynmm run base.cfg --set ...` with the overrides in manifest.tsv.\n",
                          w->name, w->a->config_path));
    return dm_cfg_serialize(&w->cfg, NULL, &w->bc);
}

/* sweep.dir/logs/, then base.cfg, manifest.tsv, manifest.json and sweep.sbatch, each written to a
 * temporary name and renamed over the old. */
static int sweep_write_files(const sweep_ws *w)
{
    const struct {
        const char *name;
        const dm_buf *b;
        int mode;
    } out[] = {{"base.cfg", &w->bc, 0644}, {"manifest.tsv", &w->tsv, 0644}, {"manifest.json", &w->js, 0644}, {"sweep.sbatch", &w->sb, 0755}};
    DM_CALL(dm_fs_mkdirs(w->logs));
    for (size_t k = 0; k < sizeof out / sizeof *out; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", w->dir, out[k].name);
        DM_CALL(dm_fs_write_atomic(path, out[k].b->data, out[k].b->len, out[k].mode));
    }
    return DM_OK;
}

/* what was written, and what to do next */
static void sweep_log(const sweep_ws *w)
{
    const char *dir = w->dir;
    dm_log("sweep '%s': %zu configuration%s x %zu seed%s = %zu runs in %s/", w->name, w->nconf, w->nconf == 1 ? "" : "s", w->nper,
           w->nper == 1 ? "" : "s", w->nruns, dir);
    for (size_t i = 0; i < w->nax; i++) {
        const axis *ax = &w->ax[i];
        dm_buf s = {0};
        for (size_t j = 0; j < ax->nvals && !ax->random; j++) dm_buf_printf(&s, "%s%s", j ? ", " : "", ax->vals[j]);
        if (ax->random) dm_buf_printf(&s, "%zu random draws", w->samples);
        dm_log("  %-24s %s", ax->key, s.data ? s.data : "");
        dm_buf_free(&s);
    }
    if (w->ndup) dm_log("  (%zu duplicate random draw%s dropped)", w->ndup, w->ndup == 1 ? "" : "s");
    if (w->ndone) dm_log("  %zu of %zu runs already finished (DONE markers); the jobs skip them", w->ndone, w->nruns);
    dm_log("wrote %s/{base.cfg,manifest.tsv,manifest.json,sweep.sbatch}", dir);
    if (!w->jobs[0]) dm_warn("jobs/sweep.sbatch not found beside the binary; edit %s/sweep.sbatch", dir);
    dm_log("next:\n  sbatch %s/sweep.sbatch                      # Slurm: one array task per run\n"
           "  %s/sweep.sbatch %s/manifest.tsv          # or here, run after run (mpirun -n %lld)\n"
           "  %s report %s                        # tables and figures",
           dir, w->jobs[0] ? w->jobs : "jobs", dir, dm_cfg_int(&w->cfg, "sweep.ranks"), cli_program(), dir);
}

static void sweep_ws_free(sweep_ws *w)
{
    DM_EACH(dm_buf_free, &w->tsv, &w->js, &w->sb, &w->bc);
    dm_cfg_free(&w->cfg);
    dm_cfg_free(&w->scratch);
    for (size_t c = 0; c < w->ncap; c++) dm_strv_free(w->cf[c].vals, w->nax);
    free(w->cf);
    axes_free(w->ax, w->nax);
    memset(w, 0, sizeof *w);
}

/* The command, as a table of contents: the config, the axes, the configurations, the runs; the
 * texts of the manifests, the Slurm array and base.cfg, and only then the files. */
static int sweep(par_ctx *ctx, const cli_args *a)
{
    sweep_ws w = {.a = a};
    int rc = sweep_load(ctx, &w);
    if (!rc) {
        sweep_paths(&w);
        rc = sweep_axes(&w);
        if (!rc) rc = sweep_expand(&w);
        if (!rc) rc = sweep_seeds(&w);
        if (!rc) rc = sweep_manifest(&w);
        if (!rc) rc = sweep_sbatch(&w);
        if (!rc) rc = sweep_base_cfg(&w);
        if (!rc) rc = sweep_write_files(&w);
        if (!rc) sweep_log(&w);
    }
    sweep_ws_free(&w);
    return rc;
}

/* rank 0 writes the sweep; every rank learns the outcome */
static int sweep_command(par_ctx *ctx, const cli_args *a)
{
    return par_agree(ctx, ctx->rank == 0 ? sweep(ctx, a) : DM_OK);
}

int cmd_sweep(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, sweep_command); }
