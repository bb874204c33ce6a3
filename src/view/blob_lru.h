/* SPDX-License-Identifier: MIT */
/*
 * blob_lru.h - the chunk cache inside: decompressed spans of the layer
 * sources, keyed (source id, chunk number), LRU-evicted, and one read-ahead
 * worker that fills chunks through the callback a source gives it.  Knows
 * nothing of the sources (no call into them but that callback).
 */
#ifndef LAYERFS_BLOB_LRU_H
#define LAYERFS_BLOB_LRU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/chunk_cache.h"

/* A decompressed span of one blob; refcounted, immutable once inserted. */
struct lf_chunk {
	atomic_uint refs;
	uint64_t blob_id, no; /* key: blob and checkpoint number */
	size_t len;
	struct lf_chunk *hnext;	      /* hash chain, protected by cc->lock */
	struct lf_chunk *prev, *next; /* LRU list, protected by cc->lock */
	unsigned char data[];
};

/* A unique id for a blob's chunks. */
uint64_t lf_chunk_cache_new_id(struct lf_chunk_cache *cc);

/* A referenced chunk, or NULL on a miss. */
struct lf_chunk *lf_chunk_get(struct lf_chunk_cache *cc, uint64_t blob_id,
			      uint64_t no);

/*
 * Insert `c` (refs = 1, owned by the caller) and return the chunk the caller
 * should use: `c` itself, or an equal one another thread inserted first (then
 * `c` is freed).  Either way the caller holds one reference.
 */
struct lf_chunk *lf_chunk_put(struct lf_chunk_cache *cc, struct lf_chunk *c);

/* Drop a reference. */
void lf_chunk_unref(struct lf_chunk *c);

/*
 * Fills chunk `no` of one source into the cache (lf_chunk_put), on the
 * worker thread; errors are dropped (a reader asking later sees them).
 */
typedef void (*lf_chunk_fill_fn)(void *ctx, uint64_t no);

/*
 * Read-ahead: ask the cache's worker thread to call fill(ctx, no) now for
 * chunk `no` of the source whose chunks are keyed `blob_id`, so that a
 * sequential reader finds it ready.  Dropped when the queue is full or the
 * chunk is cached, queued or being filled.
 */
void lf_chunk_prefetch(struct lf_chunk_cache *cc, lf_chunk_fill_fn fill,
		       void *ctx, uint64_t blob_id, uint64_t no);
/* Wait while the worker fills chunk `no` of blob_id; returns immediately
 * when it does not. */
void lf_chunk_wait_inflight(struct lf_chunk_cache *cc, uint64_t blob_id,
			    uint64_t no);
/* Drop blob_id's queued requests and wait until the worker no longer fills
 * one of its chunks (before the source, the ctx of its fills, goes). */
void lf_chunk_forget(struct lf_chunk_cache *cc, uint64_t blob_id);

#endif /* LAYERFS_BLOB_LRU_H */
