/* sort.c: see sort.h. */
#include "sort.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

int dm_argsort_i64_of(const int64_t *key, size_t *idx, size_t n)
{
    if (n < 2) return DM_OK;
    int64_t mn = key[idx[0]], mx = mn;
    for (size_t i = 1; i < n; i++) {
        int64_t k = key[idx[i]];
        if (k < mn) mn = k;
        if (k > mx) mx = k;
    }
    uint64_t range = (uint64_t)mx - (uint64_t)mn;
    if (range == 0) return DM_OK;
    size_t *tmp;
    uint64_t *kv, *kt;
    DM_ALLOC(tmp, n);
    DM_ALLOC(kv, n);
    DM_ALLOC(kt, n);
    for (size_t i = 0; i < n; i++) kv[i] = (uint64_t)key[idx[i]] - (uint64_t)mn;
    size_t *cnt;
    DM_ALLOC(cnt, 65536 + 1);
    for (int shift = 0; shift < 64 && (range >> shift) != 0; shift += 16) {
        memset(cnt, 0, (65536 + 1) * sizeof *cnt);
        for (size_t i = 0; i < n; i++) cnt[((kv[i] >> shift) & 0xffff) + 1]++;
        for (size_t d = 0; d < 65536; d++) cnt[d + 1] += cnt[d];
        for (size_t i = 0; i < n; i++) {
            size_t p = cnt[(kv[i] >> shift) & 0xffff]++;
            tmp[p] = idx[i];
            kt[p] = kv[i];
        }
        memcpy(idx, tmp, n * sizeof *idx);
        uint64_t *sw = kv;
        kv = kt;
        kt = sw;
    }
    DM_FREE_ALL(cnt, tmp, kv, kt);
    return DM_OK;
}

int dm_argsort_i64(const int64_t *key, size_t n, size_t *idx)
{
    for (size_t i = 0; i < n; i++) idx[i] = i;
    return dm_argsort_i64_of(key, idx, n);
}

int dm_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int dm_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int dm_cmp_f64(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int dm_cmp_keyed_asc(const void *a, const void *b)
{
    const dm_keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int dm_cmp_keyed_desc(const void *a, const void *b)
{
    const dm_keyed *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int dm_in_sorted_i32(const int32_t *a, size_t n, int32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (a[m] < x) lo = m + 1;
        else if (a[m] > x) hi = m;
        else return 1;
    }
    return 0;
}

int dm_top_k_f32(const float *s, size_t n_items, const uint8_t *mark, int n, int32_t *out)
{
    int k = 0;
    for (size_t i = 0; i < n_items; i++) {
        if (mark && mark[i]) continue;
        if (k < n) out[k++] = (int32_t)i;
        else if (n > 0 && s[i] > s[out[k - 1]]) out[k - 1] = (int32_t)i;
        else continue;
        for (int j = k - 1; j > 0 && s[out[j]] > s[out[j - 1]]; j--) {
            int32_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    }
    return k;
}
