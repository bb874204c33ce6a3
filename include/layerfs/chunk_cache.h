/* SPDX-License-Identifier: MIT */
/*
 * chunk_cache.h - the LRU of decompressed chunks shared by all layer sources
 * of a mount (src/view/blob_lru.c), so neighbouring reads do not inflate
 * the same span twice; it also runs the read-ahead worker.  Sources put and
 * get chunks through blob_lru.h; holders of a stack only create, free and
 * count it.
 *
 * Thread safety: every call may run on many threads at once (one lock).
 */
#ifndef LAYERFS_CHUNK_CACHE_H
#define LAYERFS_CHUNK_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct lf_chunk_cache;

/* Default chunk cache capacity (bytes of decompressed data). */
#define LF_CHUNK_CACHE_DEFAULT (64u << 20)

/* A cache holding at most `capacity` bytes of chunks (LRU eviction). */
int lf_chunk_cache_new(size_t capacity, struct lf_chunk_cache **out);
void lf_chunk_cache_free(struct lf_chunk_cache *cc);
/* Hits and misses so far (for statistics and tests). */
void lf_chunk_cache_stats(const struct lf_chunk_cache *cc, uint64_t *hits,
			  uint64_t *misses);

#endif /* LAYERFS_CHUNK_CACHE_H */
