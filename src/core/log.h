/* log.h: rank-0 logging and progress lines.
 *
 * Kernels never see ranks: the MPI layer calls dm_log_init(is_root, verbosity) once and every
 * module then logs through these functions, which print only where is_root is set. Warnings go to
 * stderr; info and progress to stdout. dm_progress rate-limits its lines (at most one per
 * interval) and prints step/total, a caller-supplied message, throughput and ETA.
 */
#ifndef DM_LOG_H
#define DM_LOG_H

#include <stddef.h>

void dm_log_init(int is_root, int verbosity);
int dm_log_is_root(void);
int dm_log_verbosity(void);
void dm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dm_log_v(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef struct {
    const char *what;    /* "sasrec epoch 3" */
    const char *unit;    /* "seq" */
    double t_start;
    double t_last;
    double interval;     /* seconds between lines */
    size_t total;
} dm_progress;

void dm_progress_start(dm_progress *p, const char *what, const char *unit, size_t total);
/* Prints when `interval` has passed or done == total; `msg` may be NULL. */
void dm_progress_update(dm_progress *p, size_t done, const char *msg);

#endif
