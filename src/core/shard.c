/* shard.c: see shard.h. */
#include "shard.h"

void dm_shard_even(size_t n, int parts, int part, size_t *lo, size_t *hi)
{
    size_t p = (size_t)parts, k = (size_t)part;
    size_t base = n / p, extra = n % p;
    *lo = k * base + (k < extra ? k : extra);
    *hi = *lo + base + (k < extra ? 1 : 0);
}

/* first row index r in [0, n] with prefix[r] >= target */
static size_t lower(const int64_t *prefix, size_t n, double target)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((double)prefix[mid] < target) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void dm_shard_weighted(const int64_t *prefix, size_t n, int parts, int part, size_t *lo, size_t *hi)
{
    double total = (double)prefix[n];
    if (total <= 0) {
        dm_shard_even(n, parts, part, lo, hi);
        return;
    }
    *lo = part == 0 ? 0 : lower(prefix, n, total * part / parts);
    *hi = part == parts - 1 ? n : lower(prefix, n, total * (part + 1) / parts);
    if (*hi < *lo) *hi = *lo;
}
