/* timer.h: wall clock and named accumulating timers (count, total) reported per rank.
 * The MPI layer reduces them to min/max with rank ids (see par_timer_report). */
#ifndef DM_TIMER_H
#define DM_TIMER_H

#include <stddef.h>

double dm_wtime(void); /* monotonic seconds */

#define DM_TIMER_MAX 32
typedef struct {
    const char *name[DM_TIMER_MAX];
    double total[DM_TIMER_MAX];
    double started[DM_TIMER_MAX];
    long count[DM_TIMER_MAX];
    int n;
} dm_timers;

/* Returns the timer's index, creating it on first use (names are string literals). */
int dm_timer_id(dm_timers *t, const char *name);
void dm_timer_start(dm_timers *t, int id);
void dm_timer_stop(dm_timers *t, int id);

/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
size_t dm_peak_rss(void);

#endif
