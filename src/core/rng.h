/* rng.h: deterministic random numbers.
 *
 * xoshiro256** seeded through splitmix64. Randomness that must not depend on the rank count (a
 * negative drawn for user u at step s) is drawn from a generator keyed by dm_rng_key(seed, a, b)
 * rather than from a per-rank stream, so 1, 2 and 3 ranks draw the same numbers for the same
 * global work item.
 */
#ifndef DM_RNG_H
#define DM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dm_rng;

uint64_t dm_splitmix64(uint64_t *state);
uint64_t dm_rng_key(uint64_t seed, uint64_t a, uint64_t b); /* hash of (seed, a, b) */
void dm_rng_seed(dm_rng *r, uint64_t seed);
uint64_t dm_rng_u64(dm_rng *r);
double dm_rng_uniform(dm_rng *r);            /* [0, 1) with 53 bits */
uint64_t dm_rng_below(dm_rng *r, uint64_t n); /* uniform in [0, n), unbiased */
double dm_rng_normal(dm_rng *r);             /* standard normal (Box-Muller, no cache) */

#endif
