/* shard.h: how n rows are split into contiguous blocks over `parts` ranks.
 *
 * dm_shard_even: sizes differ by at most one, the first (n % parts) blocks are larger.
 * dm_shard_weighted: blocks of consecutive rows with roughly equal total weight (e.g. users
 * balanced by interaction count). `prefix` holds n + 1 cumulative weights (prefix[0] = 0); block k
 * starts at the first row whose cumulative weight reaches k * total / parts. Blocks may be empty
 * when a single row outweighs a share. Both are pure functions of (n, weights, parts), so every
 * rank computes every other rank's block without communication.
 */
#ifndef DM_SHARD_H
#define DM_SHARD_H

#include <stddef.h>
#include <stdint.h>

void dm_shard_even(size_t n, int parts, int part, size_t *lo, size_t *hi);
void dm_shard_weighted(const int64_t *prefix, size_t n, int parts, int part, size_t *lo, size_t *hi);

#endif
