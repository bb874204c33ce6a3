/* SPDX-License-Identifier: MIT */
/*
 * hash.h - a keyed hash for tables whose keys an image chooses (names,
 * paths): SipHash-2-4 (Aumasson and Bernstein), so that no set of names
 * made in advance collides for a key drawn at random.
 *
 * lf_hash_key() draws a key from the kernel (getrandom; the clock and pid
 * when that fails).  lf_siphash() hashes `prefix` (8 bytes, little-endian,
 * e.g. a directory number) followed by data[0..len).  Reentrant.
 */
#ifndef LAYERFS_HASH_H
#define LAYERFS_HASH_H

#include <stddef.h>
#include <stdint.h>

struct lf_hash_key {
	uint64_t k0, k1;
};

void lf_hash_key(struct lf_hash_key *key);
uint64_t lf_siphash(const struct lf_hash_key *key, uint64_t prefix,
		    const void *data, size_t len);

#endif /* LAYERFS_HASH_H */
