/* tap.h: a minimal test harness. CHECK prints and counts failures; NEAR compares numbers with a
 * stated tolerance and prints the difference; tap_done() returns the exit status. The counters are
 * defined in testlib.c, which every test links, so the checks of testlib's helpers count too. */
#ifndef DM_TAP_H
#define DM_TAP_H

#include <math.h>
#include <stdio.h>

extern int tap_fail_count;
extern int tap_check_count;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        tap_check_count++;                                                        \
        if (!(cond)) {                                                            \
            tap_fail_count++;                                                     \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            printf(__VA_ARGS__);                                                  \
            printf("\n");                                                         \
        }                                                                         \
    } while (0)

#define NEAR(a, b, tol, what)                                                     \
    do {                                                                          \
        double tap_a_ = (double)(a), tap_b_ = (double)(b);                        \
        CHECK(fabs(tap_a_ - tap_b_) <= (tol) || (isnan(tap_a_) && isnan(tap_b_)), \
              "%s: %.10g vs %.10g (diff %.3g > tol %.3g)", what, tap_a_, tap_b_,  \
              fabs(tap_a_ - tap_b_), (double)(tol));                              \
    } while (0)

static inline int tap_done(const char *name)
{
    printf("%s %s: %d checks, %d failed\n", tap_fail_count ? "FAIL" : "ok", name, tap_check_count,
           tap_fail_count);
    return tap_fail_count ? 1 : 0;
}

#endif
