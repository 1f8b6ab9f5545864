/* err.h: the error tiers of dynmm.
 *
 * 1. DM_ASSERT(cond): a broken invariant (a bug). Prints file:line and aborts; never compiled out.
 * 2. Checked calls: every fallible operation returns an int status (DM_OK == 0). A failure is
 *    recorded once with DM_ERR(code, fmt, ...) at the place that knows what went wrong (the message
 *    names the file, line, key or byte offset and what was expected) plus an optional DM_HINT(...).
 *    Callers propagate it with DM_CALL(expr), which appends file:line to the trace.
 * 3. Recoverable conditions are plain return values documented by each function.
 *
 * The error state is thread-local. Messages follow git's style: lowercase, what failed first, the
 * thing named ("cannot open 'x.cfg': no such file"). The top level (mpi/) agrees on failure across
 * ranks before anyone exits, see par_agree().
 */
#ifndef DM_ERR_H
#define DM_ERR_H

#include <stddef.h>

enum {
    DM_OK = 0,
    DM_EINPUT = 1,   /* bad input data (a file's contents) */
    DM_ECONFIG = 2,  /* bad configuration or command line */
    DM_EIO = 3,      /* cannot open/read/write a file */
    DM_ENOMEM = 4,   /* allocation failed */
    DM_EFORMAT = 5,  /* a dynmm file of the wrong format or version */
    DM_EMPI = 6,     /* MPI / ScaLAPACK failure */
    DM_EHDF5 = 7,    /* HDF5 failure */
    DM_ENUM = 8,     /* numerical failure (NaN loss, non-SPD matrix) */
    DM_EINTERNAL = 9 /* a bug caught as an error */
};

int dm_error_at(const char *file, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dm_error_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dm_error_trace(const char *file, int line);
void dm_error_clear(void);
int dm_error_code(void);
const char *dm_error_message(void);  /* "" when none */
const char *dm_error_hint_text(void); /* "" when none */
const char *dm_error_where(void);     /* "src/x.c:12 <- mpi/y.c:40" */
const char *dm_error_name(int code);
/* Prints "error: msg\n  hint: ...\n  at: ..." to stderr with a prefix. */
void dm_error_print(const char *prefix);
/* The same for users: the "at:" trace (file:line of the code) only when `trace` is set, as with
 * `dynmm -v`; the message and hint already name the file, line or key at fault. */
void dm_error_print_user(const char *prefix, int trace);
/* Replace the whole error state (used when a message arrives from another rank). */
void dm_error_set_raw(int code, const char *msg, const char *hint, const char *where);

_Noreturn void dm_assert_fail(const char *cond, const char *file, int line);

#define DM_ERR(code, ...) dm_error_at(__FILE__, __LINE__, (code), __VA_ARGS__)
#define DM_HINT(...) dm_error_hint(__VA_ARGS__)
/* Returns DM_ECONFIG from the calling function, with the message, when cond holds: the checks of a
 * model's settings (DM_CONFIG_CHECK(c->d < 1, "adapter: d = %d, expected at least 1", c->d)). */
#define DM_CONFIG_CHECK(cond, ...)                                \
    do {                                                          \
        if (cond) return DM_ERR(DM_ECONFIG, __VA_ARGS__);         \
    } while (0)
#define DM_CALL(expr)                                                  \
    do {                                                               \
        int dm_rc_ = (expr);                                           \
        if (dm_rc_ != DM_OK) {                                         \
            dm_error_trace(__FILE__, __LINE__);                        \
            return dm_rc_;                                             \
        }                                                              \
    } while (0)
/* Like DM_CALL, but jumps to a cleanup label with rc set. */
#define DM_TRY(rc, expr, label)                                        \
    do {                                                               \
        (rc) = (expr);                                                 \
        if ((rc) != DM_OK) {                                           \
            dm_error_trace(__FILE__, __LINE__);                        \
            goto label;                                                \
        }                                                              \
    } while (0)
#define DM_ASSERT(cond) ((cond) ? (void)0 : dm_assert_fail(#cond, __FILE__, __LINE__))

/* Checked allocation: zeroed, overflow-checked; on failure records DM_ENOMEM and returns NULL. */
void *dm_calloc_at(size_t n, size_t size, const char *file, int line);
void *dm_realloc_at(void *p, size_t n, size_t size, const char *file, int line);
#define DM_ALLOC(ptr, n)                                                              \
    do {                                                                              \
        (ptr) = dm_calloc_at((size_t)(n), sizeof *(ptr), __FILE__, __LINE__);         \
        if ((ptr) == NULL) return DM_ENOMEM;                                          \
    } while (0)
#define DM_REALLOC(ptr, n)                                                            \
    do {                                                                              \
        void *dm_p_ = dm_realloc_at((ptr), (size_t)(n), sizeof *(ptr), __FILE__, __LINE__); \
        if (dm_p_ == NULL) return DM_ENOMEM;                                          \
        (ptr) = dm_p_;                                                                \
    } while (0)
#define DM_FREE(p) do { free(p); (p) = NULL; } while (0)

/* The releases of an X_free function, one line for a list of members:
 *   DM_FREE_ALL(p, q, ...)     DM_FREE of each pointer, in order;
 *   DM_EACH(f, p, q, ...)      f(p); f(q); ... in order (DM_EACH(dm_strtab_free, &d->title, &d->brand)).
 * Each takes 1 to 32 arguments (their count picks DM_EACH_<n>_). */
#define DM_FREE_ALL(...) DM_EACH(DM_FREE, __VA_ARGS__)
#define DM_EACH(f, ...) do { DM_EACH_CAT_(DM_EACH_, DM_EACH_NARG_(__VA_ARGS__))(f, __VA_ARGS__) } while (0)
#define DM_EACH_CAT_(a, n) DM_EACH_CAT2_(a, n)
#define DM_EACH_CAT2_(a, n) a##n##_
#define DM_EACH_NARG_(...) DM_EACH_NTH_(__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, \
        18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define DM_EACH_NTH_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, \
        a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, n, ...) n
#define DM_EACH_1_(f, x) f(x);
#define DM_EACH_2_(f, x, ...) f(x); DM_EACH_1_(f, __VA_ARGS__)
#define DM_EACH_3_(f, x, ...) f(x); DM_EACH_2_(f, __VA_ARGS__)
#define DM_EACH_4_(f, x, ...) f(x); DM_EACH_3_(f, __VA_ARGS__)
#define DM_EACH_5_(f, x, ...) f(x); DM_EACH_4_(f, __VA_ARGS__)
#define DM_EACH_6_(f, x, ...) f(x); DM_EACH_5_(f, __VA_ARGS__)
#define DM_EACH_7_(f, x, ...) f(x); DM_EACH_6_(f, __VA_ARGS__)
#define DM_EACH_8_(f, x, ...) f(x); DM_EACH_7_(f, __VA_ARGS__)
#define DM_EACH_9_(f, x, ...) f(x); DM_EACH_8_(f, __VA_ARGS__)
#define DM_EACH_10_(f, x, ...) f(x); DM_EACH_9_(f, __VA_ARGS__)
#define DM_EACH_11_(f, x, ...) f(x); DM_EACH_10_(f, __VA_ARGS__)
#define DM_EACH_12_(f, x, ...) f(x); DM_EACH_11_(f, __VA_ARGS__)
#define DM_EACH_13_(f, x, ...) f(x); DM_EACH_12_(f, __VA_ARGS__)
#define DM_EACH_14_(f, x, ...) f(x); DM_EACH_13_(f, __VA_ARGS__)
#define DM_EACH_15_(f, x, ...) f(x); DM_EACH_14_(f, __VA_ARGS__)
#define DM_EACH_16_(f, x, ...) f(x); DM_EACH_15_(f, __VA_ARGS__)
#define DM_EACH_17_(f, x, ...) f(x); DM_EACH_16_(f, __VA_ARGS__)
#define DM_EACH_18_(f, x, ...) f(x); DM_EACH_17_(f, __VA_ARGS__)
#define DM_EACH_19_(f, x, ...) f(x); DM_EACH_18_(f, __VA_ARGS__)
#define DM_EACH_20_(f, x, ...) f(x); DM_EACH_19_(f, __VA_ARGS__)
#define DM_EACH_21_(f, x, ...) f(x); DM_EACH_20_(f, __VA_ARGS__)
#define DM_EACH_22_(f, x, ...) f(x); DM_EACH_21_(f, __VA_ARGS__)
#define DM_EACH_23_(f, x, ...) f(x); DM_EACH_22_(f, __VA_ARGS__)
#define DM_EACH_24_(f, x, ...) f(x); DM_EACH_23_(f, __VA_ARGS__)
#define DM_EACH_25_(f, x, ...) f(x); DM_EACH_24_(f, __VA_ARGS__)
#define DM_EACH_26_(f, x, ...) f(x); DM_EACH_25_(f, __VA_ARGS__)
#define DM_EACH_27_(f, x, ...) f(x); DM_EACH_26_(f, __VA_ARGS__)
#define DM_EACH_28_(f, x, ...) f(x); DM_EACH_27_(f, __VA_ARGS__)
#define DM_EACH_29_(f, x, ...) f(x); DM_EACH_28_(f, __VA_ARGS__)
#define DM_EACH_30_(f, x, ...) f(x); DM_EACH_29_(f, __VA_ARGS__)
#define DM_EACH_31_(f, x, ...) f(x); DM_EACH_30_(f, __VA_ARGS__)
#define DM_EACH_32_(f, x, ...) f(x); DM_EACH_31_(f, __VA_ARGS__)

#endif
