/* pq_fastscan.c: ADC over 4-bit codes with the table lookups in SIMD registers (pq.h, "fast scan"):
 * packing, table quantisation, the scan's paths (scalar, SSSE3, AVX2, AVX-512BW, chosen at run time
 * so the portable build uses what the CPU has) and their drivers. Every path computes the same
 * exact uint16 sums; the naive twins are in pq_naive.c.
 *
 * The vector paths, per block of 32 items and group of g sub-spaces (g = 1, 2, 4 by register width):
 * one load of g x 16 code bytes and one of the g tables; lo = c & 15 (items 0-15), hi = (c >> 4) &
 * 15 (items 16-31); r = pshufb(table, lo|hi) gives each item's byte entry, lane l for sub-space
 * m + l. The bytes are summed as uint16 pairs without unpacking (Faiss's accumulation):
 *     a0 += r (as uint16: even byte + 256 odd byte, mod 2^16),  a1 += r >> 8 (odd bytes)
 * and at the end even = a0 - (a1 << 8) mod 2^16, which is exact because the even items' true sums
 * are below 2^16 (pq.h's bound); the lanes of the g sub-space groups are then added (still within
 * the bound) and even/odd interleaved back into item order. */
#include "pq.h"

#include "../core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PQ_FS_X86 1
#include <immintrin.h>
#else
#define PQ_FS_X86 0
#endif

/* blocks per chunk: 1024 items, whose codes (32 Mp 16 bytes: 16 KiB at M = 32) stay in L1 while
 * every query of a batch scans them; the chunk's sums are 2 KiB */
#define PQ_FS_CHUNK 32

int pq_fs_pack(pq_fs_codes *fc, const uint8_t *codes, size_t n, int M)
{
    memset(fc, 0, sizeof *fc);
    const size_t Mz = (size_t)M, Mp = (size_t)pq_fs_mpad(M), nb = (n + PQ_FS_BLOCK - 1) / PQ_FS_BLOCK;
    for (size_t q = 0; q < n * Mz; q++)
        if (codes[q] >= PQ_FS_KMAX)
            return DM_ERR(DM_EINPUT, "pq: code %d of item %zu, sub-space %zu is not a 4-bit code (below %d)", codes[q], q / Mz, q % Mz,
                          PQ_FS_KMAX);
    DM_ALLOC(fc->codes, nb * Mp * 16 + 1);
    fc->M = M;
    fc->Mp = (int)Mp;
    fc->n = n;
    fc->nb = nb;
    for (size_t i = 0; i < n; i++) {
        const size_t j = i % PQ_FS_BLOCK;
        uint8_t *blk = fc->codes + (i / PQ_FS_BLOCK) * Mp * 16 + j % 16;
        for (size_t m = 0; m < Mz; m++) blk[m * 16] |= (uint8_t)(j < 16 ? codes[i * Mz + m] : codes[i * Mz + m] << 4);
    }
    return DM_OK;
}

void pq_fs_free(pq_fs_codes *fc)
{
    free(fc->codes);
    memset(fc, 0, sizeof *fc);
}

void pq_fs_quantise(const float *lut, int M, int K, uint8_t *qlut, pq_fs_scale *sc)
{
    DM_ASSERT(M >= 1 && K >= 1 && K <= PQ_FS_KMAX);
    const size_t Mz = (size_t)M, Kz = (size_t)K;
    const int qmax = 65535 / M < 255 ? 65535 / M : 255; /* M qmax <= 65535: no uint16 sum wraps */
    double rmax = 0.0, base = 0.0;
    int nan = 0; /* fminf and fmaxf skip a NaN entry: it reaches the scores through delta below */
    for (size_t m = 0; m < Mz; m++) {
        float lo = lut[m * Kz], hi = lut[m * Kz];
        for (size_t k = 0; k < Kz; k++) {
            lo = fminf(lo, lut[m * Kz + k]);
            hi = fmaxf(hi, lut[m * Kz + k]);
            nan |= isnan(lut[m * Kz + k]);
        }
        rmax = fmax(rmax, (double)hi - (double)lo);
        base += lo;
    }
    /* the step: qmax steps cover the widest sub-space (rounded up, so no entry exceeds qmax) */
    float delta = (float)(rmax / qmax);
    while (isfinite(delta) && (double)delta * qmax < rmax) delta = nextafterf(delta, INFINITY);
    memset(qlut, 0, (size_t)pq_fs_mpad(M) * 16);
    for (size_t m = 0; m < Mz; m++) {
        float lo = lut[m * Kz];
        for (size_t k = 1; k < Kz; k++) lo = fminf(lo, lut[m * Kz + k]);
        for (size_t k = 0; k < Kz; k++) {
            double t = delta > 0.0f && isfinite(delta) ? ((double)lut[m * Kz + k] - (double)lo) / (double)delta : 0.0;
            qlut[m * 16 + k] = (uint8_t)(t > 0.0 ? lrint(fmin(t, (double)qmax)) : 0);
        }
    }
    sc->delta = nan ? NAN : delta;
    sc->base = (float)base;
}

/* ---- the paths: sums (nblk 32) of the blocks codes (nblk, Mp, 16) under qlut (Mp, 16) ---------- */

typedef void pq_fs_kernel(const uint8_t *codes, size_t nblk, int Mp, const uint8_t *qlut, uint16_t *sums);

static void fs_scalar(const uint8_t *codes, size_t nblk, int Mp, const uint8_t *qlut, uint16_t *sums)
{
    for (size_t b = 0; b < nblk; b++, codes += (size_t)Mp * 16, sums += PQ_FS_BLOCK) {
        memset(sums, 0, PQ_FS_BLOCK * sizeof *sums);
        for (size_t m = 0; m < (size_t)Mp; m++) {
            const uint8_t *c = codes + m * 16, *l = qlut + m * 16;
            for (int j = 0; j < 16; j++) {
                sums[j] = (uint16_t)(sums[j] + l[c[j] & 15]);
                sums[j + 16] = (uint16_t)(sums[j + 16] + l[c[j] >> 4]);
            }
        }
    }
}

#if PQ_FS_X86
/* the even and odd sums of items 0-15 (ev0, od0) and 16-31 (ev1, od1) -> 32 sums in item order */
static inline void fs_store32(__m128i ev0, __m128i od0, __m128i ev1, __m128i od1, uint16_t *s)
{
    _mm_storeu_si128((__m128i *)s, _mm_unpacklo_epi16(ev0, od0));
    _mm_storeu_si128((__m128i *)(s + 8), _mm_unpackhi_epi16(ev0, od0));
    _mm_storeu_si128((__m128i *)(s + 16), _mm_unpacklo_epi16(ev1, od1));
    _mm_storeu_si128((__m128i *)(s + 24), _mm_unpackhi_epi16(ev1, od1));
}

/* one sub-space per instruction */
__attribute__((target("ssse3"))) static void fs_ssse3(const uint8_t *codes, size_t nblk, int Mp, const uint8_t *qlut, uint16_t *sums)
{
    const __m128i low = _mm_set1_epi8(15);
    for (size_t b = 0; b < nblk; b++, codes += (size_t)Mp * 16, sums += PQ_FS_BLOCK) {
        __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t m = 0; m < (size_t)Mp; m++) {
            const __m128i c = _mm_loadu_si128((const __m128i *)(codes + m * 16)), l = _mm_loadu_si128((const __m128i *)(qlut + m * 16));
            const __m128i r0 = _mm_shuffle_epi8(l, _mm_and_si128(c, low)), r1 = _mm_shuffle_epi8(l, _mm_and_si128(_mm_srli_epi16(c, 4), low));
            a0 = _mm_add_epi16(a0, r0);
            a1 = _mm_add_epi16(a1, _mm_srli_epi16(r0, 8));
            a2 = _mm_add_epi16(a2, r1);
            a3 = _mm_add_epi16(a3, _mm_srli_epi16(r1, 8));
        }
        fs_store32(_mm_sub_epi16(a0, _mm_slli_epi16(a1, 8)), a1, _mm_sub_epi16(a2, _mm_slli_epi16(a3, 8)), a3, sums);
    }
}

/* the two 128-bit lanes (sub-space groups) of a 256-bit accumulator added */
__attribute__((target("avx2"))) static inline __m128i fs_fold256(__m256i a)
{
    return _mm_add_epi16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
}

/* two sub-spaces per instruction (Mp is even) */
__attribute__((target("avx2"))) static void fs_avx2(const uint8_t *codes, size_t nblk, int Mp, const uint8_t *qlut, uint16_t *sums)
{
    const __m256i low = _mm256_set1_epi8(15);
    for (size_t b = 0; b < nblk; b++, codes += (size_t)Mp * 16, sums += PQ_FS_BLOCK) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t m = 0; m < (size_t)Mp; m += 2) {
            const __m256i c = _mm256_loadu_si256((const __m256i *)(codes + m * 16)), l = _mm256_loadu_si256((const __m256i *)(qlut + m * 16));
            const __m256i r0 = _mm256_shuffle_epi8(l, _mm256_and_si256(c, low));
            const __m256i r1 = _mm256_shuffle_epi8(l, _mm256_and_si256(_mm256_srli_epi16(c, 4), low));
            a0 = _mm256_add_epi16(a0, r0);
            a1 = _mm256_add_epi16(a1, _mm256_srli_epi16(r0, 8));
            a2 = _mm256_add_epi16(a2, r1);
            a3 = _mm256_add_epi16(a3, _mm256_srli_epi16(r1, 8));
        }
        /* each lane's even sums first (exact mod 2^16), then the lanes added */
        const __m256i e0 = _mm256_sub_epi16(a0, _mm256_slli_epi16(a1, 8)), e2 = _mm256_sub_epi16(a2, _mm256_slli_epi16(a3, 8));
        fs_store32(fs_fold256(e0), fs_fold256(a1), fs_fold256(e2), fs_fold256(a3), sums);
    }
}

/* the two 256-bit halves of a 512-bit accumulator added */
__attribute__((target("avx512f,avx512bw"))) static inline __m256i fs_fold512(__m512i a)
{
    return _mm256_add_epi16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

/* four sub-spaces per instruction (Mp is a multiple of 4) */
__attribute__((target("avx512f,avx512bw"))) static void fs_avx512(const uint8_t *codes, size_t nblk, int Mp, const uint8_t *qlut,
                                                                   uint16_t *sums)
{
    const __m512i low = _mm512_set1_epi8(15);
    for (size_t b = 0; b < nblk; b++, codes += (size_t)Mp * 16, sums += PQ_FS_BLOCK) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t m = 0; m < (size_t)Mp; m += 4) {
            const __m512i c = _mm512_loadu_si512(codes + m * 16), l = _mm512_loadu_si512(qlut + m * 16);
            const __m512i r0 = _mm512_shuffle_epi8(l, _mm512_and_si512(c, low));
            const __m512i r1 = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16(c, 4), low));
            a0 = _mm512_add_epi16(a0, r0);
            a1 = _mm512_add_epi16(a1, _mm512_srli_epi16(r0, 8));
            a2 = _mm512_add_epi16(a2, r1);
            a3 = _mm512_add_epi16(a3, _mm512_srli_epi16(r1, 8));
        }
        /* each lane's even sums first (exact mod 2^16), then 4 lanes -> 2 -> 1 */
        const __m512i e0 = _mm512_sub_epi16(a0, _mm512_slli_epi16(a1, 8)), e2 = _mm512_sub_epi16(a2, _mm512_slli_epi16(a3, 8));
        fs_store32(fs_fold256(fs_fold512(e0)), fs_fold256(fs_fold512(a1)), fs_fold256(fs_fold512(e2)), fs_fold256(fs_fold512(a3)), sums);
    }
}
#endif

/* ---- dispatch ------------------------------------------------------------------------------------ */

static int g_forced = PQ_FS_AUTO; /* pq_fs_isa_force's choice */

int pq_fs_isa_supported(pq_fs_isa isa)
{
#if PQ_FS_X86
    __builtin_cpu_init();
    switch (isa) {
    case PQ_FS_SCALAR: return 1;
    case PQ_FS_SSSE3: return __builtin_cpu_supports("ssse3") != 0;
    case PQ_FS_AVX2: return __builtin_cpu_supports("avx2") != 0;
    case PQ_FS_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    default: return 0;
    }
#else
    return isa == PQ_FS_SCALAR;
#endif
}

pq_fs_isa pq_fs_isa_current(void)
{
    if (g_forced != PQ_FS_AUTO) return (pq_fs_isa)g_forced;
    static int best = -1; /* set once; a benign race (every thread stores the same value) */
    if (best < 0) {
        int b = PQ_FS_AVX512;
        while (b > PQ_FS_SCALAR && !pq_fs_isa_supported((pq_fs_isa)b)) b--;
        best = b;
    }
    return (pq_fs_isa)best;
}

const char *pq_fs_isa_name(pq_fs_isa isa)
{
    static const char *const names[] = {"scalar", "ssse3", "avx2", "avx512bw", "auto"};
    return isa >= PQ_FS_SCALAR && isa <= PQ_FS_AUTO ? names[isa] : "?";
}

int pq_fs_isa_force(pq_fs_isa isa)
{
    if (isa != PQ_FS_AUTO && !pq_fs_isa_supported(isa))
        return DM_ERR(DM_EINPUT, "pq: this CPU does not run the %s fast-scan path", pq_fs_isa_name(isa));
    g_forced = isa;
    return DM_OK;
}

static pq_fs_kernel *kernel_of(pq_fs_isa isa)
{
#if PQ_FS_X86
    switch (isa) {
    case PQ_FS_SSSE3: return fs_ssse3;
    case PQ_FS_AVX2: return fs_avx2;
    case PQ_FS_AVX512: return fs_avx512;
    default: break;
    }
#endif
    (void)isa;
    return fs_scalar;
}

/* ---- drivers ------------------------------------------------------------------------------------- */

void pq_fs_sums(const pq_fs_codes *fc, const uint8_t *qlut, uint16_t *sums)
{
    pq_fs_kernel *kern = kernel_of(pq_fs_isa_current());
    const size_t blk = (size_t)fc->Mp * 16, full = fc->n / PQ_FS_BLOCK;
    kern(fc->codes, full, fc->Mp, qlut, sums);
    if (full < fc->nb) { /* the last, partial block */
        uint16_t s[PQ_FS_BLOCK];
        kern(fc->codes + full * blk, 1, fc->Mp, qlut, s);
        memcpy(sums + full * PQ_FS_BLOCK, s, (fc->n - full * PQ_FS_BLOCK) * sizeof *s);
    }
}

void pq_fs_scores(const pq_fs_codes *fc, const uint8_t *qluts, const pq_fs_scale *sc, size_t B, float *out)
{
    pq_fs_kernel *kern = kernel_of(pq_fs_isa_current());
    const size_t blk = (size_t)fc->Mp * 16, n = fc->n, nc = (fc->nb + PQ_FS_CHUNK - 1) / PQ_FS_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < nc; ch++) {
        uint16_t s[PQ_FS_CHUNK * PQ_FS_BLOCK];
        const size_t b0 = ch * PQ_FS_CHUNK, nblk = fc->nb - b0 < PQ_FS_CHUNK ? fc->nb - b0 : PQ_FS_CHUNK;
        const size_t i0 = b0 * PQ_FS_BLOCK, i1 = i0 + nblk * PQ_FS_BLOCK < n ? i0 + nblk * PQ_FS_BLOCK : n;
        for (size_t b = 0; b < B; b++) {
            kern(fc->codes + b0 * blk, nblk, fc->Mp, qluts + b * blk, s);
            const pq_fs_scale q = sc[b];
            float *o = out + b * n;
            for (size_t i = i0; i < i1; i++) o[i] = pq_fs_score(q, s[i - i0]);
        }
    }
}

uint16_t pq_fs_sum_item(const pq_fs_codes *fc, const uint8_t *qlut, size_t i)
{
    /* item i is byte i % 16 of its block's rows, in the low nibble for i % 32 < 16 */
    const uint8_t *blk = fc->codes + (i / PQ_FS_BLOCK) * (size_t)fc->Mp * 16 + i % 16;
    const int hi = (int)(i % PQ_FS_BLOCK) >= 16;
    unsigned s = 0;
    for (int m = 0; m < fc->Mp; m++) {
        const uint8_t b = blk[(size_t)m * 16];
        s += qlut[(size_t)m * 16 + (hi ? b >> 4 : b & 15)];
    }
    return (uint16_t)s;
}
