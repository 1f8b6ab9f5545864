/* log.c: see log.h. */
#include "log.h"

#include "timer.h"

#include <stdarg.h>
#include <stdio.h>

static int g_root = 1;
static int g_verbosity = 1;

void dm_log_init(int is_root, int verbosity)
{
    g_root = is_root;
    g_verbosity = verbosity;
}

int dm_log_is_root(void) { return g_root; }
int dm_log_verbosity(void) { return g_verbosity; }

/* one line on stdout, flushed, on the root at verbosity >= level */
static void log_line(int level, const char *fmt, va_list ap)
{
    if (!g_root || g_verbosity < level) return;
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void dm_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(1, fmt, ap);
    va_end(ap);
}

void dm_log_v(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, fmt, ap);
    va_end(ap);
}

void dm_warn(const char *fmt, ...)
{
    if (!g_root) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void dm_progress_start(dm_progress *p, const char *what, const char *unit, size_t total)
{
    p->what = what;
    p->unit = unit;
    p->total = total;
    p->t_start = p->t_last = dm_wtime();
    p->interval = 5.0;
}

void dm_progress_update(dm_progress *p, size_t done, const char *msg)
{
    double now = dm_wtime();
    if (done < p->total && now - p->t_last < p->interval) return;
    p->t_last = now;
    double el = now - p->t_start;
    double rate = el > 0 ? (double)done / el : 0.0;
    double eta = (rate > 0 && p->total > done) ? (double)(p->total - done) / rate : 0.0;
    dm_log_v(1, "  %s %zu/%zu%s%s  %.0f %s/s  elapsed %.1fs  eta %.1fs", p->what, done, p->total,
             msg ? "  " : "", msg ? msg : "", rate, p->unit, el, eta);
}
