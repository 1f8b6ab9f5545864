/* err.c: thread-local error state, see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_CAP 2048
#define WHERE_CAP 1024

static _Thread_local int g_code;
static _Thread_local char g_msg[MSG_CAP];
static _Thread_local char g_hint[MSG_CAP];
static _Thread_local char g_where[WHERE_CAP];

static const char *short_path(const char *file)
{
    /* keep "src/x/y.c" or "mpi/y.c" rather than an absolute path */
    const char *p = strstr(file, "src/");
    if (!p) p = strstr(file, "mpi/");
    if (!p) p = strstr(file, "tests/");
    return p ? p : file;
}

int dm_error_at(const char *file, int line, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    g_code = code ? code : DM_EINTERNAL;
    g_hint[0] = '\0';
    snprintf(g_where, sizeof g_where, "%s:%d", short_path(file), line);
    return g_code;
}

void dm_error_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_hint, sizeof g_hint, fmt, ap);
    va_end(ap);
}

void dm_error_trace(const char *file, int line)
{
    size_t n = strlen(g_where);
    if (n + 8 < sizeof g_where)
        snprintf(g_where + n, sizeof g_where - n, " <- %s:%d", short_path(file), line);
}

void dm_error_clear(void)
{
    g_code = 0;
    g_msg[0] = g_hint[0] = g_where[0] = '\0';
}

int dm_error_code(void) { return g_code; }
const char *dm_error_message(void) { return g_msg; }
const char *dm_error_hint_text(void) { return g_hint; }
const char *dm_error_where(void) { return g_where; }

const char *dm_error_name(int code)
{
    switch (code) {
    case DM_OK: return "ok";
    case DM_EINPUT: return "bad input";
    case DM_ECONFIG: return "bad configuration";
    case DM_EIO: return "i/o error";
    case DM_ENOMEM: return "out of memory";
    case DM_EFORMAT: return "wrong file format";
    case DM_EMPI: return "mpi error";
    case DM_EHDF5: return "hdf5 error";
    case DM_ENUM: return "numerical error";
    default: return "internal error";
    }
}

void dm_error_set_raw(int code, const char *msg, const char *hint, const char *where)
{
    g_code = code;
    snprintf(g_msg, sizeof g_msg, "%s", msg ? msg : "");
    snprintf(g_hint, sizeof g_hint, "%s", hint ? hint : "");
    snprintf(g_where, sizeof g_where, "%s", where ? where : "");
}

void dm_error_print_user(const char *prefix, int trace)
{
    fprintf(stderr, "%serror: %s\n", prefix ? prefix : "", g_msg[0] ? g_msg : "(no message)");
    if (g_hint[0]) fprintf(stderr, "  hint: %s\n", g_hint);
    if (trace && g_where[0]) fprintf(stderr, "  at: %s\n", g_where);
    fflush(stderr);
}

void dm_error_print(const char *prefix) { dm_error_print_user(prefix, 1); }

void dm_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "dynmm: assertion failed: %s (%s:%d)\n", cond, short_path(file), line);
    fflush(stderr);
    abort();
}

void *dm_calloc_at(size_t n, size_t size, const char *file, int line)
{
    if (n == 0 || size == 0) {
        n = 1;
        size = 1;
    }
    if (size && n > SIZE_MAX / size) {
        dm_error_at(file, line, DM_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = calloc(n, size);
    if (!p) {
        dm_error_at(file, line, DM_ENOMEM, "cannot allocate %zu bytes", n * size);
        dm_error_hint("reduce the problem size or use more ranks (memory is per rank)");
    }
    return p;
}

void *dm_realloc_at(void *p, size_t n, size_t size, const char *file, int line)
{
    if (n == 0) n = 1;
    if (size && n > SIZE_MAX / size) {
        dm_error_at(file, line, DM_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *q = realloc(p, n * size);
    if (!q) dm_error_at(file, line, DM_ENOMEM, "cannot grow a buffer to %zu bytes", n * size);
    return q;
}
