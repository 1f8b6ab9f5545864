/* timer.c: see timer.h. */
#define _POSIX_C_SOURCE 200809L
#include "timer.h"

#include "err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

double dm_wtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dm_timer_id(dm_timers *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0) return i;
    DM_ASSERT(t->n < DM_TIMER_MAX);
    t->name[t->n] = name;
    t->total[t->n] = 0;
    t->count[t->n] = 0;
    return t->n++;
}

void dm_timer_start(dm_timers *t, int id) { t->started[id] = dm_wtime(); }

void dm_timer_stop(dm_timers *t, int id)
{
    t->total[id] += dm_wtime() - t->started[id];
    t->count[id]++;
}

size_t dm_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            sscanf(line + 6, "%zu", &kb);
            break;
        }
    fclose(f);
    return kb * 1024;
}
