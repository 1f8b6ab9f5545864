/* rng.c: xoshiro256** (Blackman & Vigna, 2018) with splitmix64 seeding. */
#include "rng.h"

#include <math.h>

uint64_t dm_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t dm_rng_key(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t s = seed;
    uint64_t h = dm_splitmix64(&s);
    s = h ^ (a * 0xd1342543de82ef95ULL);
    h = dm_splitmix64(&s);
    s = h ^ (b * 0xa0761d6478bd642fULL + 0x2545f4914f6cdd1dULL);
    return dm_splitmix64(&s);
}

void dm_rng_seed(dm_rng *r, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < 4; i++) r->s[i] = dm_splitmix64(&s);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dm_rng_u64(dm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dm_rng_uniform(dm_rng *r) { return (double)(dm_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t dm_rng_below(dm_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    /* Lemire's nearly-divisionless method with rejection for exact uniformity */
    uint64_t x = dm_rng_u64(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = dm_rng_u64(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double dm_rng_normal(dm_rng *r)
{
    double u1 = dm_rng_uniform(r), u2 = dm_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
