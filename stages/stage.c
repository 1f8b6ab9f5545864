/* stages.c: the stage registry, stage hashes, input identities, the run.dir lock and the output
 * epilogue, see stages.h. */
#include "stage.h"

#include "../mpi/cli.h"
#include "../mpi/mpicount.h"
#include "dataset_io.h"
#include "models.h"

#include "../src/core/buf.h"
#include "../src/core/err.h"
#include "../src/core/log.h"
#include "../src/core/sha256.h"
#include "../src/core/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const stage_def *const g_stages[] = {
    &stage_ingest_def, &stage_synth_def, &stage_train_cf_def, &stage_align_def, &stage_pq_def, &stage_lm_def,
    &stage_prompt_def, &stage_explain_def, &stage_stream_def, &stage_eval_def,
};
static const int g_nstages = (int)(sizeof g_stages / sizeof g_stages[0]);

int stage_count(void) { return g_nstages; }
const stage_def *stage_at(int i) { return i >= 0 && i < g_nstages ? g_stages[i] : NULL; }

/* Keys every stage may read that cannot change its results (run.seed is hashed separately). */
static const char *const g_exempt[] = {"run.dir", "run.threads", "run.verbose", "run.resume", "run.force", "run.stages",
                                       "run.seed", "io", NULL};

const stage_def *stage_find(const char *name)
{
    for (int i = 0; i < g_nstages; i++)
        if (!strcmp(g_stages[i]->name, name)) return g_stages[i];
    return NULL;
}

const char *stage_names(void)
{
    static char buf[512];
    buf[0] = '\0';
    for (int i = 0; i < g_nstages; i++) {
        if (i) strcat(buf, ", ");
        strcat(buf, g_stages[i]->name);
    }
    return buf;
}

/* The stage that writes `file` (the first in the table: ingest for dataset.h5). */
const char *stage_maker(const char *file)
{
    for (int i = 0; i < g_nstages; i++)
        if (!strcmp(g_stages[i]->output, file)) return g_stages[i]->name;
    return "?";
}

/* ---- identities ---------------------------------------------------------------------------- */

typedef struct {
    char hash[65];        /* stage_hash */
    char dataset[65];     /* dataset_hash ("" when absent) */
    char *inputs;         /* "cf.h5=<h>;dataset.h5=<h>" (malloc'd, "" when absent) */
    int is_dataset;
} identity;

/* Reads a finished file's identity attributes. Collective. */
static int read_identity(par_ctx *ctx, const char *path, const char *maker, identity *id)
{
    memset(id, 0, sizeof *id);
    h5file f;
    int rc = h5_open(ctx, path, &f);
    if (rc) {
        if (!strcmp(maker, "ingest")) DM_HINT("run the synth or ingest stage first (dynmm synth / dynmm ingest, or add it to run.stages)");
        else DM_HINT("run the %s stage first (dynmm %s, or add it to run.stages)", maker, maker);
        return par_agree(ctx, rc);
    }
    char *h = NULL, *ds = NULL, *fmt = NULL;
    if (!h5_has_attr(&f, "/", "stage_hash")) {
        rc = DM_ERR(DM_EFORMAT, "'%s' carries no stage hash", path);
        DM_HINT("it was not made by a dynmm stage; rerun the %s stage", maker);
    }
    if (!rc) rc = h5_get_attr_str(&f, "/", "stage_hash", &h);
    if (!rc && h5_has_attr(&f, "/", "format")) rc = h5_get_attr_str(&f, "/", "format", &fmt);
    if (!rc && h5_has_attr(&f, "/", "dataset_hash")) rc = h5_get_attr_str(&f, "/", "dataset_hash", &ds);
    if (!rc && h5_has_attr(&f, "/", "inputs")) rc = h5_get_attr_str(&f, "/", "inputs", &id->inputs);
    h5_close(&f);
    rc = par_agree(ctx, rc);
    if (!rc) {
        id->is_dataset = fmt && !strcmp(fmt, DS_FORMAT);
        snprintf(id->hash, sizeof id->hash, "%s", h);
        snprintf(id->dataset, sizeof id->dataset, "%s", id->is_dataset ? h : ds ? ds : "");
        if (!id->is_dataset && !ds) {
            rc = DM_ERR(DM_EFORMAT, "'%s' does not record the dataset it was made from", path);
            DM_HINT("it was made by an older dynmm; rerun the %s stage (dynmm run reruns it when it is listed)", maker);
        }
    }
    if (!id->inputs) id->inputs = calloc(1, 1);
    free(h);
    free(ds);
    free(fmt);
    return rc;
}

/* The hash `file` recorded in an "inputs" string, or NULL. */
static const char *recorded(const char *inputs, const char *file, char out[65])
{
    size_t l = strlen(file);
    for (const char *p = inputs; p && *p;) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > l + 1 && !strncmp(p, file, l) && p[l] == '=') {
            snprintf(out, 65, "%.*s", (int)(n - l - 1), p + l + 1);
            return out;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

/* The inputs must belong together: one dataset, and each input made from the very files present. */
static int check_identities(const stage_run *sr, identity *ids)
{
    for (int k = 0; k < sr->nin; k++) {
        if (strcmp(ids[k].dataset, ids[0].dataset)) {
            DM_ERR(DM_EINPUT, "%s: '%s' and '%s' were made from different datasets", sr->def->name, sr->in[0].path, sr->in[k].path);
            DM_HINT("use the files of one run (dynmm run reruns every stage whose inputs changed)");
            return DM_EINPUT;
        }
        for (int j = 0; j < sr->nin; j++) {
            char h[65];
            if (j == k || !recorded(ids[k].inputs, sr->in[j].file, h) || !strcmp(h, ids[j].hash)) continue;
            DM_ERR(DM_EINPUT, "%s: '%s' was made from another %s (stage hash %.12s), not from '%s' (%.12s)", sr->def->name,
                   sr->in[k].path, sr->in[j].file, h, sr->in[j].path, ids[j].hash);
            DM_HINT("%s is stale: rerun the %s stage (dynmm run reruns every stage whose inputs changed)", sr->in[k].file,
                    stage_maker(sr->in[k].file));
            return DM_EINPUT;
        }
    }
    return DM_OK;
}

/* the stage's config groups with those of the models it trains or scores */
#define STAGE_MAX_GROUPS 64
static const char *const *stage_groups(const stage_def *def, const dm_cfg *cfg, const char **buf)
{
    size_t n = 0;
    for (const char *const *g = def->groups; g && *g && n + 1 < STAGE_MAX_GROUPS; g++) buf[n++] = *g;
    if (def->groups_if)
        for (const char *const *g = def->groups_if(cfg); g && *g && n + 1 < STAGE_MAX_GROUPS; g++) buf[n++] = *g;
    buf[n] = NULL;
    if (def->models_key) model_groups(cfg, def->models_key, buf, &n, STAGE_MAX_GROUPS);
    return buf;
}

/* Settings given on the command line (--set) that none of the stages about to run reads: a warning
 * naming the stages that would (a key meant for another stage is otherwise silently ignored). */
void stage_warn_unread_sets(const dm_cfg *cfg, const stage_def *const *defs, int n)
{
    size_t nk;
    const dm_key *keys = dm_keys(&nk);
    const char *gb[STAGE_MAX_GROUPS];
    for (size_t k = 0; k < nk && k < cfg->nkeys; k++) {
        if (cfg->v[k].origin != 2 || dm_cfg_in_groups(keys[k].name, g_exempt) || !strncmp(keys[k].name, "run.", 4)) continue;
        int read = 0;
        for (int i = 0; i < n && !read; i++) read = dm_cfg_in_groups(keys[k].name, stage_groups(defs[i], cfg, gb));
        if (read) continue;
        char who[256] = "";
        for (int i = 0; i < g_nstages; i++)
            if (dm_cfg_in_groups(keys[k].name, stage_groups(g_stages[i], cfg, gb))) {
                size_t l = strlen(who);
                snprintf(who + l, sizeof who - l, "%s%s", l ? ", " : "", g_stages[i]->name);
            }
        if (who[0]) dm_warn("--set %s: %s reads it (read by %s); it has no effect here", keys[k].name, n == 1 ? "this stage never" : "no stage of run.stages", who);
        else dm_warn("--set %s: no stage reads it; it has no effect here", keys[k].name);
    }
}

/* ---- hashes ----------------------------------------------------------------------------------- */

/* size and modification time of every regular file of a directory (or of one file): a cheap
 * identity for large external inputs such as LM checkpoints */
static int stamp_path(dm_buf *b, const char *key, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return dm_buf_printf(b, "%s absent\n", key);
    if (!S_ISDIR(st.st_mode))
        return dm_buf_printf(b, "%s %lld %lld.%09ld\n", key, (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    char cmd[4352];
    /* names sorted so the listing does not depend on the file system's order */
    static const char *const names[] = {"config.json", "model.safetensors", "model.safetensors.index.json", "vocab.json",
                                        "merges.txt", "tokenizer.json", "tokenizer.model", "generation_config.json", NULL};
    for (int i = 0; names[i]; i++) {
        snprintf(cmd, sizeof cmd, "%s/%s", path, names[i]);
        if (stat(cmd, &st) == 0)
            DM_CALL(dm_buf_printf(b, "%s/%s %lld %lld.%09ld\n", key, names[i], (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                  st.st_mtim.tv_nsec));
    }
    return DM_OK;
}

/* The text a stage's hash is the sha256 of (a stage with inputs; the dataset stages hash their own
 * way, ds_stage_hash): its settings, seed, name, inputs' hashes, revision and checkpoint stamp.
 * Collective (the checkpoint stamp is rank 0's). */
static int hash_input(par_ctx *ctx, stage_run *sr, dm_buf *out)
{
    const dm_cfg *cfg = sr->cfg;
    dm_buf b = {0};
    const char *gb[STAGE_MAX_GROUPS];
    int rc = dm_cfg_serialize(cfg, stage_groups(sr->def, cfg, gb), &b);
    if (!rc) rc = dm_buf_printf(&b, "run.seed = %lld;\nstage = \"%s\";\n", dm_cfg_int(cfg, "run.seed"), sr->def->name);
    for (int k = 0; !rc && k < sr->nin; k++) rc = dm_buf_printf(&b, "input %s = \"%s\";\n", sr->in[k].file, sr->in[k].hash);
    if (!rc && sr->def->revision) rc = dm_buf_printf(&b, "revision = \"%s\";\n", sr->def->revision);
    if (!rc && !strcmp(sr->def->name, "lm") && dm_cfg_str(cfg, "lm.checkpoint")[0]) {
        char stamp[65] = "";
        dm_buf s = {0};
        if (ctx->rank == 0) rc = stamp_path(&s, "lm.checkpoint", dm_cfg_str(cfg, "lm.checkpoint"));
        if (!rc && ctx->rank == 0) dm_sha256_hex(s.data ? s.data : "", s.len, stamp);
        dm_buf_free(&s);
        rc = par_agree(ctx, rc);
        if (!rc) rc = par_bcast(ctx, stamp, sizeof stamp, 0);
        if (!rc) rc = dm_buf_printf(&b, "checkpoint = \"%s\";\n", stamp);
    }
    if (rc) dm_buf_free(&b);
    *out = b;
    return rc;
}

static int compute_hash(par_ctx *ctx, stage_run *sr)
{
    if (!sr->def->inputs[0]) return ds_stage_hash(ctx, sr->cfg, sr->hash);
    dm_buf b = {0};
    int rc = hash_input(ctx, sr, &b);
    if (!rc) dm_sha256_hex(b.data ? b.data : "", b.len, sr->hash);
    dm_buf_free(&b);
    return rc;
}

int stage_begin(par_ctx *ctx, const dm_cfg *cfg, const stage_def *def, stage_run *sr)
{
    memset(sr, 0, sizeof *sr);
    sr->ctx = ctx;
    sr->cfg = cfg;
    sr->def = def;
    sr->t0 = dm_wtime();
    DM_CALL(cli_run_path(ctx, cfg, def->output, sr->out, sizeof sr->out));
    identity ids[STAGE_MAX_IN];
    int rc = DM_OK;
    for (int k = 0; !rc && def->inputs[k]; k++) {
        if (def->uses && !def->uses(cfg, def->inputs[k])) continue;
        int i = sr->nin;
        sr->in[i].file = def->inputs[k];
        rc = cli_run_path(ctx, cfg, def->inputs[k], sr->in[i].path, sizeof sr->in[i].path);
        if (!rc) rc = read_identity(ctx, sr->in[i].path, stage_maker(def->inputs[k]), &ids[i]);
        if (rc) break;
        snprintf(sr->in[i].hash, sizeof sr->in[i].hash, "%s", ids[i].hash);
        sr->nin++;
    }
    if (!rc && sr->nin) {
        rc = check_identities(sr, ids);
        snprintf(sr->dataset_hash, sizeof sr->dataset_hash, "%s", ids[0].dataset);
    }
    for (int k = 0; k < sr->nin; k++) free(ids[k].inputs);
    if (!rc) rc = compute_hash(ctx, sr);
    return par_agree(ctx, rc);
}

const char *stage_input(const stage_run *sr, const char *file)
{
    for (int k = 0; k < sr->nin; k++)
        if (!strcmp(sr->in[k].file, file)) return sr->in[k].path;
    fprintf(stderr, "dynmm: bug: stage %s reads '%s', which it does not declare or this config does not use\n", sr->def->name, file);
    DM_ASSERT(0);
    return NULL;
}

int stage_is_current(stage_run *sr, int *current)
{
    *current = 0;
    int64_t e = access(sr->out, F_OK) == 0;
    DM_CALL(par_allreduce_min_i64(sr->ctx, &e, 1));
    if (!e) return DM_OK;
    h5file f;
    int rc = h5_open(sr->ctx, sr->out, &f);
    if (rc) {
        /* a damaged output is not current: the stage makes it again */
        dm_error_clear();
        rc = par_agree(sr->ctx, DM_OK);
        return rc;
    }
    char *h = NULL;
    if (h5_has_attr(&f, "/", "stage_hash")) rc = h5_get_attr_str(&f, "/", "stage_hash", &h);
    h5_close(&f);
    DM_CALL(par_agree(sr->ctx, rc));
    *current = h && !strcmp(h, sr->hash);
    free(h);
    return DM_OK;
}

int stage_exec(stage_run *sr)
{
    dm_cfg_seen_clear(sr->cfg);
    mpicount_stage(sr->def->name); /* DM_MPI_COUNT: MPI traffic counted under the stage's name */
    int rc = sr->def->run(sr);
    mpicount_stage(NULL);
    dm_buf keys = {0};
    const char *gb[STAGE_MAX_GROUPS];
    size_t n = dm_cfg_seen_outside(sr->cfg, stage_groups(sr->def, sr->cfg, gb), g_exempt, &keys);
    if (n) {
        const char *strict = getenv("DM_STRICT_KEYS");
        if (strict && strict[0] == '1' && !rc) {
            rc = DM_ERR(DM_EINTERNAL, "stage %s read %s outside the config groups its hash covers", sr->def->name, keys.data);
            DM_HINT("add them to the stage's groups (stages/stage.h)");
        } else if (!rc)
            dm_warn("stage %s read %s outside the config groups its hash covers", sr->def->name, keys.data);
    }
    dm_buf_free(&keys);
    return par_agree(sr->ctx, rc);
}

/* ---- outputs ------------------------------------------------------------------------------------ */

int stage_write_identity(const stage_run *sr, h5file *f)
{
    dm_buf b = {0};
    int rc = DM_OK;
    for (int k = 0; !rc && k < sr->nin; k++) rc = dm_buf_printf(&b, "%s%s=%s", k ? ";" : "", sr->in[k].file, sr->in[k].hash);
    if (!rc) rc = h5_attr_str(f, "/", "inputs", b.data ? b.data : "");
    if (!rc && sr->dataset_hash[0]) rc = h5_attr_str(f, "/", "dataset_hash", sr->dataset_hash);
    dm_buf_free(&b);
    return rc;
}

int stage_output_create(stage_run *sr, const char *format, int version, h5file *f)
{
    par_ctx *ctx = sr->ctx;
    memset(f, 0, sizeof *f);
    f->id = -1;
    int rc = par_agree(ctx, h5_create(ctx, sr->out, (int)dm_cfg_int(sr->cfg, "io.compress"), (size_t)dm_cfg_int(sr->cfg, "io.chunk_rows"), f));
    if (rc) {
        f->id = -1;
        return rc;
    }
    rc = h5_write_provenance(f, format, version, sr->def->name, sr->cfg, sr->hash);
    if (!rc) rc = stage_write_identity(sr, f);
    if (sr->def->inputs[0]) { /* what stage_hash is the sha256 of: why a stage is or is not current */
        dm_buf b = {0};
        char h[65] = "";
        int r2 = hash_input(ctx, sr, &b);
        if (!rc) rc = r2;
        if (!rc) dm_sha256_hex(b.data ? b.data : "", b.len, h);
        /* stored only while it is still the text hashed (an lm.checkpoint changed since is not) */
        if (!rc && !strcmp(h, sr->hash)) rc = h5_attr_str(f, "/", "stage_hash_input", b.data ? b.data : "");
        dm_buf_free(&b);
    }
    return par_agree(ctx, rc);
}

int stage_output_finish(stage_run *sr, h5file *f, int rc)
{
    par_ctx *ctx = sr->ctx;
    double wall = dm_wtime() - sr->t0;
    if (!rc && f->id >= 0) {
        /* attribute values must agree on every rank: rank 0's wall time is recorded */
        rc = par_bcast(ctx, &wall, sizeof wall, 0);
        if (!rc) rc = h5_attr_f64(f, "/", "wall_seconds", wall);
    }
    rc = par_agree(ctx, rc);
    if (rc) {
        if (f->id >= 0) h5_discard(f);
        f->id = -1;
        return rc;
    }
    rc = par_agree(ctx, h5_commit(f));
    f->id = -1;
    if (!rc) {
        dm_log("wrote %s in %.1fs", sr->out, wall);
        par_log_peak(ctx);
    }
    return rc;
}

/* ---- the run.dir lock ------------------------------------------------------------------------- */

int stage_lock(par_ctx *ctx, const dm_cfg *cfg, stage_lock_t *lk)
{
    lk->fd = -1;
    const char *dir = dm_cfg_str(cfg, "run.dir");
    char path[4096];
    DM_CALL(cli_make_run_dir(ctx, cfg));
    DM_CALL(cli_run_path(ctx, cfg, ".dynmm.lock", path, sizeof path));
    int rc = DM_OK;
    if (ctx->rank == 0 && dir[0]) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
        if (fd < 0) rc = DM_ERR(DM_EIO, "cannot create the lock file '%s': %s", path, strerror(errno));
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (!rc && fcntl(fd, F_SETLK, &fl) != 0) {
            if (errno == EACCES || errno == EAGAIN) {
                char who[256] = "";
                ssize_t n = pread(fd, who, sizeof who - 1, 0);
                who[n > 0 ? n : 0] = '\0';
                char *nl = strchr(who, '\n');
                if (nl) *nl = '\0';
                rc = DM_ERR(DM_EIO, "run.dir '%s' is in use by another dynmm command (%s)", dir, who[0] ? who : "unknown process");
                DM_HINT("wait for it to finish, or give this command another run.dir");
            } else {
                /* file systems without POSIX locks: run unlocked rather than not at all */
                dm_warn("cannot lock '%s' (%s); running without the run.dir lock", path, strerror(errno));
            }
            if (rc) {
                close(fd);
                fd = -1;
            }
        }
        if (!rc && fd >= 0) {
            char who[256], host[128] = "?";
            gethostname(host, sizeof host - 1);
            time_t now = time(NULL);
            char ts[64];
            strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
            int n = snprintf(who, sizeof who, "pid %ld on %s since %s\n", (long)getpid(), host, ts);
            if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n) { /* the lock holds without the note */ }
            lk->fd = fd;
        }
    }
    return par_agree(ctx, rc);
}

void stage_unlock(par_ctx *ctx, stage_lock_t *lk)
{
    (void)ctx;
    if (lk->fd >= 0) {
        if (ftruncate(lk->fd, 0) != 0) { /* only the note */ }
        close(lk->fd); /* releases the fcntl lock; the file stays (removing it would race a waiting locker) */
    }
    lk->fd = -1;
}

/* ---- stage commands ------------------------------------------------------------------------- */

int stage_command(par_ctx *ctx, const stage_def *def, int argc, char **argv)
{
    cli_args a;
    DM_CALL(cli_parse(argc, argv, &a));
    if (cli_help(ctx, &a, def->usage)) {
        cli_args_free(&a);
        return DM_OK;
    }
    dm_cfg cfg;
    int rc = cli_load_config(ctx, &a, &cfg);
    if (!rc && def->prepare) rc = def->prepare(&cfg, a.positional, a.npositional);
    else if (!rc && a.npositional) {
        rc = DM_ERR(DM_ECONFIG, "%s: unexpected argument '%s'", def->name, a.positional[0]);
        DM_HINT("config files end in .cfg; settings go through --set group.key=value");
    }
    cli_args_free(&a);
    rc = par_agree(ctx, rc);
    if (!rc && def->check) rc = par_agree(ctx, def->check(&cfg));
    if (!rc) stage_warn_unread_sets(&cfg, &def, 1);
    stage_lock_t lk = {-1};
    if (!rc) rc = stage_lock(ctx, &cfg, &lk);
    stage_run sr;
    if (!rc) rc = stage_begin(ctx, &cfg, def, &sr);
    if (!rc) rc = stage_exec(&sr);
    stage_unlock(ctx, &lk);
    dm_cfg_free(&cfg);
    return rc;
}
