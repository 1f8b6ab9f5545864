/* cmd_status.c: `dynmm status SWEEP_DIR|MANIFEST.tsv`: where each run of a sweep stands.
 *
 * The manifest (cmd_sweep.c) lists each run's directory and config hash. A run is
 *   done         its DONE marker holds its hash (the jobs write it after `dynmm run` succeeded)
 *   running      a dynmm command holds its run.dir lock (<dir>/.dynmm.lock, stage.h) now
 *   failed       it started (its directory holds a stage output, a checkpoint or the lock file) but
 *                is neither done nor running: it failed, was killed, or stopped at a time limit
 *                (the jobs resume it from its checkpoints)
 *   changed      its DONE marker holds another hash: made with other settings, to be rerun
 *   not started  nothing yet
 * and "stages k/n" says how many outputs of its run.stages exist. For failed runs the last error
 * line of the newest Slurm log of its array task (<sweep>/logs/<job>_<index>.out) is shown. Nothing
 * is written; rank 0 reads.
 */
#include "cmd.h"
#include "../mpi/cli.h"
#include "stage.h"

#include "../src/core/err.h"
#include "../src/core/lines.h"
#include "../src/core/log.h"
#include "../src/core/str.h"
#include "../src/core/strv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: dynmm status SWEEP_DIR|MANIFEST.tsv [--only done|running|failed|changed|pending]\n\n"
    "Shows where each run of a sweep (written by `dynmm sweep`) stands: done (its DONE marker holds\n"
    "its config hash), running (a dynmm command holds its run.dir lock), failed (started, then\n"
    "stopped: an error, a kill or a time limit; the jobs resume it from its checkpoints), changed (a\n"
    "DONE marker of other settings) or not started, with how many of its stages' outputs exist and,\n"
    "for failed runs, the last error line of its Slurm log. Ends with the command that reruns the\n"
    "runs not done. --only lists the runs in one state. Example:\n\n"
    "  dynmm status runs/sweeps/small\n";

enum { ST_DONE, ST_RUNNING, ST_FAILED, ST_CHANGED, ST_PENDING, ST_N };
static const char *const ST_NAME[ST_N] = {"done", "running", "failed", "changed", "not started"};
static const char *const ST_KEY[ST_N] = {"done", "running", "failed", "changed", "pending"};

typedef struct {
    char index[32], id[256], dir[4096], hash[80];
    char **sets;
    size_t nsets;
    int state, stages_done, stages_total;
    char note[512];
} run_status;

typedef struct {
    char manifest[4096], sweep_dir[4096], workdir[4096], base[4096], name[256];
    run_status *runs;
    size_t n;
} status_ws;

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* who holds the fcntl lock of <dir>/.dynmm.lock ("" = nobody); -1 no lock file */
static int lock_holder(const char *dir, char *who, size_t cap)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/.dynmm.lock", dir);
    who[0] = '\0';
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    if (held) {
        ssize_t n = pread(fd, who, cap - 1, 0);
        who[n > 0 ? n : 0] = '\0';
        char *nl = strchr(who, '\n');
        if (nl) *nl = '\0';
        if (!who[0]) snprintf(who, cap, "pid %ld", (long)fl.l_pid);
    }
    close(fd);
    return held;
}

/* ---- the manifest ---------------------------------------------------------------------------- */

/* p under dir unless absolute; 0 when it does not fit */
static int join(char *out, size_t cap, const char *dir, const char *p)
{
    int n = p[0] == '/' || !dir[0] ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", dir, p);
    return n >= 0 && (size_t)n < cap;
}

static int status_paths(status_ws *w, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        DM_ERR(DM_ECONFIG, "status: no sweep '%s': %s", arg, strerror(errno));
        DM_HINT("give the sweep.dir that `dynmm sweep` wrote (it holds manifest.tsv), e.g. runs/sweeps/small");
        return DM_ECONFIG;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(w->sweep_dir, sizeof w->sweep_dir, "%s", arg);
        snprintf(w->manifest, sizeof w->manifest, "%s/manifest.tsv", arg);
    } else {
        snprintf(w->manifest, sizeof w->manifest, "%s", arg);
        const char *s = strrchr(arg, '/');
        snprintf(w->sweep_dir, sizeof w->sweep_dir, "%.*s", s ? (int)(s - arg) : 1, s ? arg : ".");
    }
    return DM_OK;
}

static int parse_run(status_ws *w, char *line, const char *path, int lineno)
{
    char **f = NULL;
    size_t nf = 0;
    DM_CALL(dm_strv_split(line, '\t', &f, &nf));
    int rc = DM_OK;
    if (nf < 6) rc = DM_ERR(DM_EFORMAT, "'%s' line %d: expected at least 6 tab-separated columns, found %zu", path, lineno, nf);
    run_status *r = rc ? NULL : &w->runs[w->n];
    if (r) {
        memset(r, 0, sizeof *r);
        snprintf(r->index, sizeof r->index, "%s", f[0]);
        snprintf(r->id, sizeof r->id, "%s", f[1]);
        if (!join(r->dir, sizeof r->dir, w->workdir, f[4])) rc = DM_ERR(DM_EFORMAT, "'%s' line %d: the run directory is too long", path, lineno);
        snprintf(r->hash, sizeof r->hash, "%s", f[5]);
        for (size_t k = 6; k < nf && !rc; k++) rc = dm_strv_push(&r->sets, &r->nsets, f[k]);
        w->n++;
    }
    dm_strv_free(f, nf);
    return rc;
}

static int status_manifest(status_ws *w)
{
    char *text = NULL;
    size_t len = 0;
    if (dm_read_file(w->manifest, &text, &len) != DM_OK) {
        DM_HINT("give the sweep.dir that `dynmm sweep` wrote (it holds manifest.tsv)");
        return DM_ECONFIG;
    }
    int rc = DM_OK;
    if (strncmp(text, "# dynmm-sweep-manifest v1", 25) != 0) {
        rc = DM_ERR(DM_EFORMAT, "'%s' is not a dynmm sweep manifest (v1): its first line is not '# dynmm-sweep-manifest v1'", w->manifest);
        DM_HINT("`dynmm sweep SWEEP.cfg` writes the manifest");
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (!rc && !(w->runs = calloc(lines, sizeof *w->runs))) rc = DM_ERR(DM_ENOMEM, "out of memory");
    int lineno = 0;
    for (char *s = text; !rc && s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        lineno++;
        if (!strncmp(s, "# workdir: ", 11)) snprintf(w->workdir, sizeof w->workdir, "%s", s + 11);
        else if (!strncmp(s, "# base: ", 8)) snprintf(w->base, sizeof w->base, "%s", s + 8);
        else if (!strncmp(s, "# name: ", 8)) snprintf(w->name, sizeof w->name, "%s", s + 8);
        else if (s[0] && s[0] != '#' && strncmp(s, "index\t", 6)) rc = parse_run(w, s, w->manifest, lineno);
        s = nl ? nl + 1 : NULL;
    }
    free(text);
    return rc;
}

/* ---- one run --------------------------------------------------------------------------------- */

/* the last "error" line of the newest Slurm log of array task `index` */
static void log_error(const status_ws *w, const char *index, char *out, size_t cap)
{
    char logs[4200], best[4600] = "";
    snprintf(logs, sizeof logs, "%s/logs", w->sweep_dir);
    DIR *dp = opendir(logs);
    if (!dp) return;
    char suffix[64];
    snprintf(suffix, sizeof suffix, "_%s.out", index);
    time_t newest = 0;
    for (struct dirent *de; (de = readdir(dp));) {
        size_t l = strlen(de->d_name), ls = strlen(suffix);
        if (l <= ls || strcmp(de->d_name + l - ls, suffix)) continue;
        char p[4600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", logs, de->d_name);
        if (stat(p, &st) == 0 && st.st_mtime >= newest) {
            newest = st.st_mtime;
            snprintf(best, sizeof best, "%s", p);
        }
    }
    closedir(dp);
    char *text = NULL;
    size_t len = 0;
    if (!best[0] || dm_read_file(best, &text, &len) != DM_OK) {
        dm_error_clear();
        return;
    }
    /* the last error message, else the job script's exit line */
    const char *err = NULL, *exit_line = NULL;
    for (char *s = text; s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        if (strstr(s, "error:")) err = s;
        else if (strstr(s, "exited with status")) exit_line = s;
        s = nl ? nl + 1 : NULL;
    }
    /* a message longer than the line is cut, and says so with "..." */
    if ((err || exit_line) && snprintf(out, cap, "%s (%s)", err ? err : exit_line, best) >= (int)cap && cap > 4)
        memcpy(out + cap - 4, "...", 4);
    free(text);
}

/* stages whose output exists, of the run's run.stages (base.cfg, then its --set) */
static void run_stages(const dm_cfg *base, run_status *r)
{
    dm_cfg c;
    if (dm_cfg_copy(&c, base) != DM_OK) {
        dm_error_clear();
        return;
    }
    for (size_t k = 0; k < r->nsets; k++) dm_cfg_set(&c, r->sets[k]);
    dm_error_clear();
    size_t n = dm_cfg_len(&c, "run.stages");
    r->stages_total = (int)n;
    for (size_t i = 0; i < n; i++) {
        const stage_def *s = stage_find(dm_cfg_str_at(&c, "run.stages", i));
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", r->dir, s ? s->output : "");
        r->stages_done += s && exists(p);
    }
    dm_cfg_free(&c);
}

/* anything of a run in its directory: the lock, a stage output, a checkpoint */
static int started(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int any = 0;
    for (struct dirent *de; !any && (de = readdir(dp));) any = de->d_name[0] != '.' || !strcmp(de->d_name, ".dynmm.lock");
    closedir(dp);
    return any;
}

static void run_state(const status_ws *w, const dm_cfg *base, run_status *r)
{
    char p[4200], who[256];
    snprintf(p, sizeof p, "%s/DONE", r->dir);
    char *done = NULL;
    size_t len = 0;
    if (exists(p) && dm_read_file(p, &done, &len) == DM_OK) {
        char *nl = strchr(done, '\n');
        if (nl) {
            *nl = '\0';
            char *nl2 = strchr(nl + 1, '\n');
            if (nl2) *nl2 = '\0';
            snprintf(r->note, sizeof r->note, "%s", nl + 1);
        }
        r->state = !strcmp(done, r->hash) ? ST_DONE : ST_CHANGED;
        if (r->state == ST_CHANGED) snprintf(r->note, sizeof r->note, "DONE holds another config hash (%.12s)", done);
        free(done);
    } else {
        dm_error_clear();
        int held = lock_holder(r->dir, who, sizeof who);
        if (held > 0) {
            r->state = ST_RUNNING;
            snprintf(r->note, sizeof r->note, "%s", who);
        } else if (started(r->dir)) {
            r->state = ST_FAILED;
            log_error(w, r->index, r->note, sizeof r->note);
        } else
            r->state = ST_PENDING;
    }
    run_stages(base, r);
}

/* ---- the command ------------------------------------------------------------------------------ */

/* the job script that runs manifest lines: beside the binary's build tree, the installed
 * share/dynmm/jobs, else ./jobs */
static void jobs_script(char *out, size_t cap)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(out, cap, "jobs/sweep.sbatch");
    if (n <= 0) return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    static const char *const rel[] = {"/../jobs/sweep.sbatch", "/../share/dynmm/jobs/sweep.sbatch"};
    for (int k = 0; k < 2; k++) {
        char p[4200], real[4096];
        snprintf(p, sizeof p, "%s%s", exe, rel[k]);
        if (access(p, R_OK) == 0 && realpath(p, real)) {
            snprintf(out, cap, "%s", real);
            return;
        }
    }
}

static void status_print(const status_ws *w, int only)
{
    size_t cnt[ST_N] = {0}, wid = 2;
    for (size_t i = 0; i < w->n; i++) {
        cnt[w->runs[i].state]++;
        if (strlen(w->runs[i].id) > wid) wid = strlen(w->runs[i].id);
    }
    printf("sweep '%s' (%s): %zu runs: %zu done, %zu running, %zu failed, %zu changed, %zu not started\n", w->name, w->manifest, w->n,
           cnt[ST_DONE], cnt[ST_RUNNING], cnt[ST_FAILED], cnt[ST_CHANGED], cnt[ST_PENDING]);
    printf("  %5s  %-*s  %-11s  %-6s  %s\n", "index", (int)wid, "id", "state", "stages", "note");
    for (size_t i = 0; i < w->n; i++) {
        const run_status *r = &w->runs[i];
        if (only >= 0 && r->state != only) continue;
        char st[32];
        snprintf(st, sizeof st, "%d/%d", r->stages_done, r->stages_total);
        printf("  %5s  %-*s  %-11s  %-6s  %s\n", r->index, (int)wid, r->id, ST_NAME[r->state], st, r->note);
    }
    size_t todo = cnt[ST_FAILED] + cnt[ST_CHANGED] + cnt[ST_PENDING];
    if (todo && todo < w->n) {
        char jobs[4200];
        jobs_script(jobs, sizeof jobs);
        printf("to run the %zu runs not done or running here, one after the other:\n  %s %s", todo, jobs, w->manifest);
        for (size_t i = 0; i < w->n; i++)
            if (w->runs[i].state >= ST_FAILED) printf(" %s", w->runs[i].index);
        printf("\n");
    }
    fflush(stdout);
}

static int status(const cli_args *a)
{
    const char *arg = NULL;
    int only = -1;
    for (int i = 0; i < a->npositional; i++) {
        const char *s = a->positional[i], *v = NULL;
        if (!strncmp(s, "--only=", 7)) v = s + 7;
        else if (!strcmp(s, "--only") && i + 1 < a->npositional) v = a->positional[++i];
        if (v) {
            for (int k = 0; k < ST_N; k++)
                if (!strcmp(v, ST_KEY[k])) only = k;
            if (only < 0) return DM_ERR(DM_ECONFIG, "status --only: '%s' is not one of done, running, failed, changed, pending", v);
        } else if (s[0] == '-' && s[1] == '-') {
            DM_ERR(DM_ECONFIG, "status: unknown option '%s'", s);
            DM_HINT("see `dynmm status --help`");
            return DM_ECONFIG;
        } else if (arg)
            return DM_ERR(DM_ECONFIG, "status: one sweep at a time ('%s', then '%s')", arg, s);
        else
            arg = s;
    }
    if (!arg) {
        DM_ERR(DM_ECONFIG, "status: which sweep? usage: dynmm status SWEEP_DIR");
        DM_HINT("e.g. dynmm status runs/sweeps/small (the sweep.dir of `dynmm sweep`)");
        return DM_ECONFIG;
    }
    status_ws w;
    memset(&w, 0, sizeof w);
    dm_cfg base = {0};
    int rc = status_paths(&w, arg);
    if (!rc) rc = status_manifest(&w);
    char bp[8400];
    if (!rc && !join(bp, sizeof bp, w.workdir, w.base)) rc = DM_ERR(DM_EFORMAT, "'%s': the base config's path is too long", w.manifest);
    if (!rc) rc = dm_cfg_init(&base);
    if (!rc && w.base[0] && (rc = dm_cfg_load_file(&base, bp)))
        DM_HINT("the manifest's base config is missing or no longer loads; rerun `dynmm sweep`");
    for (size_t i = 0; !rc && i < w.n; i++) run_state(&w, &base, &w.runs[i]);
    if (!rc) status_print(&w, only);
    for (size_t i = 0; i < w.n; i++) dm_strv_free(w.runs[i].sets, w.runs[i].nsets);
    free(w.runs);
    dm_cfg_free(&base);
    return rc;
}

static int status_command(par_ctx *ctx, const cli_args *a)
{
    int rc = DM_OK;
    if (a->nconfigs || a->nsets) {
        rc = DM_ERR(DM_ECONFIG, "status takes a sweep directory, not a config");
        DM_HINT("usage: dynmm status SWEEP_DIR (the sweep.dir of `dynmm sweep SWEEP.cfg`)");
    }
    if (!rc && ctx->rank == 0) rc = status(a);
    return par_agree(ctx, rc);
}

int cmd_status(par_ctx *ctx, int argc, char **argv) { return cli_command(ctx, argc, argv, USAGE, status_command); }
