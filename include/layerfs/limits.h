/* SPDX-License-Identifier: MIT */
#ifndef LAYERFS_LIMITS_H
#define LAYERFS_LIMITS_H
/*
 * limits.h - how much one decompressed stream (a layer, or a gzip'd image
 * archive) may cost, so that a decompression bomb stops with an error
 * naming the stream instead of filling memory or the disk.
 */
#include <stdint.h>

#include "layerfs/common.h"

/*
 * Bounds on what one layer may cost, so that a decompression bomb stops
 * with an error naming the layer instead of filling memory or the disk:
 *   max_size   uncompressed bytes (default LF_MAX_LAYER_SIZE);
 *   max_ratio  uncompressed / compressed bytes, checked once the layer has
 *              produced more than ratio_floor bytes (defaults 1000, 4 GiB:
 *              deflate cannot exceed ~1032, zstd of zeros exceeds 10000);
 *   max_entries tar members (default LF_MAX_LAYER_ENTRIES).
 * A zero field takes its default, or the environment's value:
 * LAYERFS_MAX_LAYER_SIZE=SIZE, LAYERFS_MAX_RATIO=N[:FLOOR],
 * LAYERFS_MAX_ENTRIES=N (SIZE and FLOOR take K, M, G, T suffixes).
 */
#define LF_MAX_LAYER_SIZE (1ull << 40)
#define LF_MAX_LAYER_RATIO 1000u
#define LF_MAX_RATIO_FLOOR (4ull << 30)
#define LF_MAX_LAYER_ENTRIES 4000000u

struct lf_limits {
	uint64_t max_size;
	uint64_t max_ratio;
	uint64_t ratio_floor;
	uint64_t max_entries;
};

/* Fill the zero fields of *l from the environment, then the defaults.
 * -EINVAL with a message for a malformed variable. */
/* "123", "64K", "4G" (binary multiples); false when malformed or 0. */
bool lf_parse_size(const char *s, uint64_t *out);

int lf_limits_resolve(struct lf_limits *l, struct lf_err *err);

#endif
